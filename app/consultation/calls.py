"""The call state machine (docs/signalling.md, "Call state"): ring, answer, end.

The state lives in the hub (compare-and-set on a version), so every web process sees
one state per appointment; this module decides which moves are allowed and tells every
page of the appointment about each move. A call also ends when its appointment goes,
and a guest's pages close when the guest is removed: those news come up from patients
as events and are answered here.
"""
import logging

from flask import current_app

from app import events, extensions
from app.consultation import group
from app.hub import ACCEPTED, DECLINED, ENDED, IDLE, OFFLINE, RINGING, channel
from app.roles import Role

log = logging.getLogger(__name__)

# (role, message type) -> (states it may leave, state it leads to)
TRANSITIONS = {
    (Role.STAFF, "cancel"): ({RINGING}, IDLE),
    (Role.STAFF, "hangup"): ({RINGING, ACCEPTED}, ENDED),
    (Role.PATIENT, "accept"): ({RINGING}, ACCEPTED),
    (Role.PATIENT, "decline"): ({RINGING}, DECLINED),
    (Role.PATIENT, "hangup"): ({ACCEPTED}, ENDED),
}


def _changed(hub, appointment_id, state):
    log.info("call state appointment=%s state=%s", appointment_id, state)
    hub.broadcast(appointment_id, {"type": "call-state", "state": state})


def ring(hub, appointment_id, timeout_seconds):
    """Ring the patient's open pages, or note that none is open. Returns the state.

    Ringing or connected calls are left alone: a second click or a reloaded call page
    must not ring twice or break a running call.
    """
    while True:
        current = hub.call_state(appointment_id)
        if current.state in (RINGING, ACCEPTED):
            return current
        online = hub.subscribers(channel(appointment_id, Role.PATIENT)) > 0
        new = hub.compare_and_set(appointment_id, current, RINGING if online else OFFLINE)
        if new is not None:
            break
    _changed(hub, appointment_id, new.state)
    if new.state == RINGING:
        hub.time_out_ring(appointment_id, new, timeout_seconds)
    return new


def transition(hub, appointment_id, allowed_from, target, group_calls=False):
    """Move to ``target`` from one of ``allowed_from``; the new state or None."""
    while True:
        current = hub.call_state(appointment_id)
        if current.state not in allowed_from:
            return None
        new = hub.compare_and_set(appointment_id, current, target)
        if new is not None:
            if target == ENDED and group_calls:
                group.end(appointment_id)
            _changed(hub, appointment_id, target)
            return new


def ring_now(appointment):
    """"Anruf starten" over HTTP: ring at once, before the call page has its socket."""
    return ring(extensions.hub.get(), appointment.id, current_app.config["RING_TIMEOUT_SECONDS"])


@events.appointment_deleted.connect
def _end_with_the_appointment(appointment_id, **_):
    """Tell the appointment's open pages (their sockets close on it), forget the call
    and free the relay's room."""
    hub = extensions.hub.get()
    hub.broadcast(appointment_id, {"type": "appointment-deleted"})
    hub.reset(appointment_id)
    group.end(appointment_id)


@events.participant_removed.connect
def _close_the_removed_guests_pages(participant_id, appointment_id, **_):
    # On the guests' shared channel: only that guest's sockets act on it.
    extensions.hub.broadcast(appointment_id, {"type": "participant-removed",
                                              "participant_id": participant_id},
                             roles=(Role.GUEST,))
