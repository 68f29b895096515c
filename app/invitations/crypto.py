"""Outbox payloads hold link tokens until delivery: encrypt them at rest."""
import base64
import hashlib
import json

from cryptography.fernet import Fernet
from flask import current_app

_cache = {}


def _fernet():
    secret = current_app.config["SECRET_KEY"]
    fernet = _cache.get(secret)
    if fernet is None:
        digest = hashlib.sha256(b"sprechzimmer-outbox:" + secret.encode()).digest()
        key = base64.urlsafe_b64encode(digest)
        fernet = _cache[secret] = Fernet(key)
    return fernet


def seal(data: dict) -> str:
    return _fernet().encrypt(json.dumps(data).encode()).decode("ascii")


def unseal(token: str) -> dict:
    return json.loads(_fernet().decrypt(token.encode("ascii")))
