"""Encryption at rest with a key derived from SECRET_KEY, one key per purpose: outbox
payloads hold link tokens until delivery, chat messages hold what patients write
(issue 12). A copy of the database alone (a backup, a dump) shows neither."""
import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

_cache = {}


def _fernet(purpose=b"outbox"):
    secret = current_app.config["SECRET_KEY"]
    fernet = _cache.get((purpose, secret))
    if fernet is None:
        digest = hashlib.sha256(b"sprechzimmer-" + purpose + b":" + secret.encode()).digest()
        fernet = _cache[(purpose, secret)] = Fernet(base64.urlsafe_b64encode(digest))
    return fernet


def seal(data: dict) -> str:
    return _fernet().encrypt(json.dumps(data).encode()).decode("ascii")


def unseal(token: str) -> dict:
    return json.loads(_fernet().decrypt(token.encode("ascii")))


def seal_text(text: str) -> str:
    return _fernet(b"chat").encrypt(text.encode()).decode("ascii")


def open_text(token: str) -> str:
    """The text, or None when it cannot be read (SECRET_KEY changed since)."""
    try:
        return _fernet(b"chat").decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError):
        return None
