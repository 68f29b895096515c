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
from app.auth import audit
from app.consultation import group, people, relay
from app.hub import ACCEPTED, DECLINED, ENDED, IDLE, OFFLINE, RINGING, HubUnavailable, channel
from app.patients import progress
from app.roles import Role, member_key

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
    # Recorded before the pages hear of it: the next move (an accept answers the ring, a
    # hangup the accept) can only come after, so the record's writes keep the call's order.
    progress.call_state(appointment_id, state)  # the board and the consultation record
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
        if hub.subscribers(channel(appointment_id, Role.PATIENT)) > 0:
            new = hub.compare_and_set(appointment_id, current, RINGING,
                                      ring_timeout=timeout_seconds)
        else:
            new = hub.compare_and_set(appointment_id, current, OFFLINE)
        if new is not None:
            break
    _changed(hub, appointment_id, new.state)
    return new


def transition(hub, appointment_id, allowed_from, target, group_calls=False):
    """Move to ``target`` from one of ``allowed_from``; the new state or None."""
    while True:
        current = hub.call_state(appointment_id)
        if current.state not in allowed_from:
            return None
        new = hub.compare_and_set(appointment_id, current, target)
        if new is not None:
            if target == ENDED:
                hub.forget_joined(appointment_id)
                if group_calls:
                    group.end(appointment_id)
            _changed(hub, appointment_id, target)
            return new


def ring_now(appointment, staff_id):
    """"Anruf starten" over HTTP: ring at once, before the call page has its socket."""
    return start(extensions.hub.get(), appointment.id, current_app.config["RING_TIMEOUT_SECONDS"],
                 appointment.practice_id, staff_id)


def start(hub, appointment_id, timeout_seconds, practice_id, staff_id):
    """Ring as a staff member starts the call; a fresh ring (not a reloaded page's) is a
    call.start in the audit log. Returns the state, as ring() does."""
    fresh = hub.call_state(appointment_id).state not in (RINGING, ACCEPTED)
    rang = []

    def step():
        rang.append(ring(hub, appointment_id, timeout_seconds))
        return rang[0].state == RINGING

    entry = (practice_id, audit.CALL_START, audit.STAFF, staff_id, "appointment", appointment_id)
    audited(entry if fresh else None, step)
    return rang[0]


def audited(entry, step):
    """Run step() (True: it happened) with its audit entry (audit.record's arguments, or
    None for none). The entry is written before the step, whose broadcast makes the others
    act and log: the log keeps the order things happened in. Kept if the step happened,
    dropped if not. Returns what step() returned."""
    if entry is None:
        return step()
    audit.record(*entry)
    extensions.db.session.flush()
    try:
        happened = step()
    except BaseException:
        extensions.db.session.rollback()
        raise
    if happened:
        extensions.db.session.commit()
    else:
        extensions.db.session.rollback()
    return happened


@events.appointment_deleted.connect
def _end_with_the_appointment(appointment_id, **_):
    """Tell the appointment's open pages (their sockets close on it), forget the call
    and free the relay's room."""
    try:
        hub = extensions.hub.get()
        hub.broadcast(appointment_id, {"type": "appointment-deleted"})
        hub.reset(appointment_id)
    except HubUnavailable:
        # The appointment is gone already: its pages' sockets are closed meanwhile and
        # are refused (1008) when they come back.
        log.info("call not told of the deletion appointment=%s hub=unavailable", appointment_id)
    group.end(appointment_id)


@events.participant_added.connect
def _new_guest_on_the_staff_list(participant_id, appointment_id, **_):
    # A staff call page open meanwhile lists them as waiting at once, not at the next change.
    try:
        people.changed(extensions.hub.get(), appointment_id)
    except HubUnavailable:
        log.info("staff not told of the new guest appointment=%s hub=unavailable", appointment_id)


@events.participant_removed.connect
def _close_the_removed_guests_pages(participant_id, appointment_id, **_):
    # On the guests' shared channel: only that guest's sockets act on it.
    try:
        # Gone for good, not away: their tile goes when their socket does.
        extensions.hub.get().set_joined(appointment_id, member_key(Role.GUEST, participant_id),
                                        False)
        extensions.hub.broadcast(appointment_id, {"type": "participant-removed",
                                                  "participant_id": participant_id},
                                 roles=(Role.GUEST,))
        people.changed(extensions.hub.get(), appointment_id)  # off the staff's list
    except HubUnavailable:
        # Removed already; the guest's socket is closed meanwhile and refused on return.
        log.info("guest not told of the removal appointment=%s hub=unavailable", appointment_id)


@events.link_device_replaced.connect
def _cut_off_the_earlier_device(appointment_id, participant_id=None, device_id=None, **_):
    """One device per link (issue 12): the earlier device's pages close, the practice is
    told, and no media goes on to a device nobody sees: a running call with the patient
    ends (staff call again, and it rings on the new device); a guest leaves the relay."""
    hub = extensions.hub.get()
    role = Role.PATIENT if participant_id is None else Role.GUEST
    key = member_key(role, participant_id)
    hub.broadcast(appointment_id, {"type": "device-replaced", "key": key, "device": device_id},
                  roles=(role,))
    hub.broadcast(appointment_id, {"type": "device-changed", "key": key}, roles=(Role.STAFF,))
    if role == Role.PATIENT:
        if hub.call_state(appointment_id).state == ACCEPTED:
            transition(hub, appointment_id, {ACCEPTED}, ENDED, group.is_active(appointment_id))
    else:
        hub.set_joined(appointment_id, key, False)  # the new device joins anew
        try:
            relay.leave(relay.room_id(appointment_id), key)
        except relay.RelayError:
            return  # not in a group call
        group.publish_roster(hub, appointment_id)


@events.consent_withdrawn.connect
def _end_for_the_withdrawn(appointment_id, participant_id=None, **_):
    """The patient or a guest withdrew their consent (issue 12): their pages close (on
    every device and tab), the practice is told, and media stops: the patient's
    withdrawal ends a running call as a hangup would; a guest only leaves the relay."""
    role = Role.PATIENT if participant_id is None else Role.GUEST
    key = member_key(role, participant_id)
    try:
        hub = extensions.hub.get()
        news = {"type": "consent-withdrawn", "key": key}
        hub.broadcast(appointment_id, news, roles=(role,))
        hub.broadcast(appointment_id, news, roles=(Role.STAFF,))
        if role == Role.PATIENT:
            transition(hub, appointment_id, {RINGING, ACCEPTED}, ENDED,
                       group.is_active(appointment_id))
            return
        hub.set_joined(appointment_id, key, False)
    except HubUnavailable:
        # Stored already: the pages' sockets are closed meanwhile and refused on return.
        log.info("call not told of the withdrawal appointment=%s hub=unavailable", appointment_id)
        return
    try:
        relay.leave(relay.room_id(appointment_id), key)
    except relay.RelayError:
        return  # not in a group call
    group.publish_roster(hub, appointment_id)
