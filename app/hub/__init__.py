"""The hub: publish/subscribe per appointment and each appointment's call state.

Every socket of the app goes through it: the signalling, the chat, and whatever else
must reach an open page live. ``broadcast`` is the one way to fan a message out to an
appointment's roles. The in-process hub (app/hub/base.py) serves one web process;
``RedisHub`` (app/hub/redis_hub.py) implements the same interface when several
processes serve the websockets (HUB_URL).
"""
import logging
import secrets
import threading

from flask import current_app

from app.hub.base import (
    ACCEPTED,
    DECLINED,
    ENDED,
    EVERYONE,
    HUB_LOST,
    IDLE,
    LOGIN_ENDED,
    OFFLINE,
    RINGING,
    STATES,
    TIMEOUT,
    CallState,
    Hub,
    HubUnavailable,
    InProcessHub,
    Subscription,
    board_channel,
    channel,
    ring_timed_out,
    staff_channel,
)
from app.hub.redis_hub import RedisHub

log = logging.getLogger(__name__)

__all__ = [
    "ACCEPTED", "DECLINED", "ENDED", "EVERYONE", "HUB_LOST", "IDLE", "LOGIN_ENDED", "OFFLINE",
    "RINGING", "STATES", "TIMEOUT", "CallState", "Hub", "HubExtension", "HubUnavailable",
    "InProcessHub", "RedisHub",
    "Subscription", "board_channel", "channel", "ring_timed_out", "staff_channel",
]


class HubExtension:
    """``hub.init_app(app)``; then ``hub.get()`` is the current app's hub (in-process, or
    Redis when HUB_URL is set) and ``hub.broadcast(...)`` publishes through it.

    The hub is built at first use, not in ``init_app``: gunicorn forks after the factory
    ran, and the Redis hub's listener thread must start in the worker.
    """

    KEY = "sprechzimmer.hub"

    def __init__(self):
        self._lock = threading.Lock()

    def init_app(self, app):
        app.extensions[self.KEY] = None

    def get(self, app=None) -> Hub:
        app = app or current_app._get_current_object()
        hub = app.extensions.get(self.KEY)
        if hub is None:
            with self._lock:
                hub = app.extensions.get(self.KEY)
                if hub is None:
                    hub = app.extensions[self.KEY] = _make_hub(app.config)
        return hub

    def broadcast(self, appointment_id, message, roles=EVERYONE):
        return self.get().broadcast(appointment_id, message, roles)

    def board_changed(self, practice_id, appointment_id, what):
        """Tell the practice's open "Heute" boards that an appointment's line changed
        (``what``: a short word, e.g. "waiting"). Never fails its caller: a board that
        missed it catches up on its next refresh."""
        # "change": this news' own id; every board that fetches after it asks for the board
        # as of it, and one render serves them all (patients/board.py, ``shared_render``).
        message = {"type": "board", "appointment_id": appointment_id, "what": what,
                   "change": secrets.token_hex(8)}
        try:
            return self.get().publish(board_channel(practice_id), message)
        except HubUnavailable:
            log.info("board not told practice=%s appointment=%s hub=unavailable",
                     practice_id, appointment_id)
            return 0

    def logins_ended(self, staff_id, session_ids):
        """Tell the account's open sockets that these login sessions (ids) ended. Never
        fails its caller: a socket that missed it finds out at its next check."""
        message = {"type": LOGIN_ENDED, "sessions": list(session_ids)}
        try:
            return self.get().publish(staff_channel(staff_id), message)
        except HubUnavailable:
            log.info("sockets not told staff=%s hub=unavailable", staff_id)
            return 0

    def close(self, app):
        """Close the app's hub if it was built; the next use builds a new one."""
        hub = app.extensions.get(self.KEY)
        app.extensions[self.KEY] = None
        if hub is not None:
            hub.close()


def _make_hub(config):
    url = config.get("HUB_URL")
    if not url:
        return InProcessHub()
    return RedisHub(url, prefix=config.get("HUB_PREFIX") or "sprechzimmer:")
