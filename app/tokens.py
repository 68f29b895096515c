"""Patient link tokens: 256 random bits in the link, only their SHA-256 in the database."""
import hashlib
import re
import secrets

JOIN_PATH = "/j/"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_token():
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: str) -> bool:
    return bool(token) and bool(_TOKEN_RE.match(token))
