"""Login attempts per account (issue 12), beside the limit per address in routes.py.

An attacker with many addresses guesses one account's password slowly; so failures
count per e-mail address as typed (lower-cased), known or not: after LOGIN_ACCOUNT_LIMIT
failures the address is locked for the rest of the window, whatever the password, and
the account (if there is one) gets an e-mail. Unknown addresses count and lock the same
way and get the same words, so the lock tells nobody whether an account exists.

The counts live in Flask-Limiter's storage (RATELIMIT_STORAGE_URI): in memory for one
process, in Redis shared by every web process when configured. Keys hold a hash of the
address, never the address.
"""
import hashlib
import math
import time

from flask import current_app
from limits import parse

from app.extensions import limiter

NAMESPACE = "login-account"


def _item():
    return parse(current_app.config["LOGIN_ACCOUNT_LIMIT"])


def _key(email):
    digest = hashlib.sha256((email or "").strip().lower().encode("utf-8")).hexdigest()
    return [current_app.config.get("RATELIMIT_KEY_PREFIX", ""), NAMESPACE, digest]


def locked(email) -> bool:
    return not limiter.limiter.test(_item(), *_key(email))


def failed(email) -> bool:
    """Count a failed attempt; True when this one locked the address."""
    limiter.limiter.hit(_item(), *_key(email))
    return locked(email)


def succeeded(email):
    """The right password before the lock: the failures so far no longer count."""
    limiter.limiter.clear(_item(), *_key(email))


def minutes_left(email) -> int:
    reset_at, _ = limiter.limiter.get_window_stats(_item(), *_key(email))
    return max(1, math.ceil((reset_at - time.time()) / 60))
