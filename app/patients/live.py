"""The staff's board socket (issue 11): one per open Patienten page, per practice.

It only says "the board changed" (which appointment, what kind of change); the page
fetches the board fragment itself, so that what it shows is rendered with the same
checks as every other request and no patient data travels on the socket. The hub
carries the news across processes (Redis), like the call's signalling.
"""
import logging
import time

from flask import current_app

from app.auth import sessions
from app.extensions import db, hub
from app.hub import HUB_LOST, LOGIN_ENDED, HubUnavailable, board_channel, staff_channel
from app.hub.socket import HubSocket
from logfmt import IdLogger

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008  # logged out: the page reloads to the login
CLOSE_TRY_AGAIN = 1013  # the hub is away: the page comes back with backoff
MAX_MESSAGE = 200  # the page only pings


class BoardSocket(HubSocket):
    def __init__(self, ws, practice_id, session_id, config):
        super().__init__(ws, IdLogger(log, practice=practice_id, session=session_id))
        self.practice_id = practice_id
        self.session_id = session_id
        self.config = config

    def deliver(self, message):
        """Hub callback (any thread)."""
        if message.get("type") == HUB_LOST:
            self.close(CLOSE_TRY_AGAIN, "try again later")
            return
        self.send({"type": "board", "appointment_id": message.get("appointment_id"),
                   "what": message.get("what"), "change": message.get("change")})

    def logins_ended(self, message):
        """Hub callback: the account's logins ended (logout, deactivation, role change)."""
        if message.get("type") == LOGIN_ENDED and self.session_id in message.get("sessions", ()):
            self.log.info("board closing reason=logged-out")
            self.close(CLOSE_POLICY, "logged out")

    def logged_in(self):
        try:
            return sessions.keep_alive(self.session_id, touch=False)
        finally:
            db.session.close()

    def run(self):
        check_every = self.config["SESSION_CHECK_SECONDS"]
        checked = time.monotonic()
        while not self.closed:
            raw = self.ws.receive(timeout=min(2, check_every))
            if raw is None:
                if not self.ws.connected:
                    return
            elif len(raw) > MAX_MESSAGE:
                self.close(CLOSE_POLICY, "too big")
                return
            elif raw == '{"type":"ping"}':
                self.send({"type": "pong"})
            if time.monotonic() - checked >= check_every:
                checked = time.monotonic()
                if not self.logged_in():
                    self.log.info("board closing reason=logged-out")
                    self.close(CLOSE_POLICY, "logged out")
                    return


def serve(ws, practice_id, staff_id, session_id):
    db.session.close()  # the socket lives long: no database connection held meanwhile
    board = BoardSocket(ws, practice_id, session_id, current_app.config)
    subscriptions = []
    try:
        subscriptions.append(hub.get().subscribe(board_channel(practice_id), board.deliver))
        subscriptions.append(hub.get().subscribe(staff_channel(staff_id), board.logins_ended))
    except HubUnavailable:
        for subscription in subscriptions:
            subscription.close()
        board.close(CLOSE_TRY_AGAIN, "try again later")
        return
    board.log.info("board connected")
    try:
        if not board.logged_in():  # ended before the staff channel listened
            board.close(CLOSE_POLICY, "logged out")
            return
        board.send({"type": "welcome"})
        board.run()
    finally:
        for subscription in subscriptions:
            subscription.close()
        board.log.info("board disconnected")
