"""Group calls (Premium, 3–5 people): moving a call onto the media relay, joining and
leaving it, and the roster that tells each browser whose media arrives where
(docs/signalling.md, "Group calls through the media relay").

The relay is the record of who is in the call: this module keeps no state of its own,
so several web processes and a restarted relay see the same truth.
"""
import logging

from app.auth.models import Practice
from app.consultation import relay
from app.extensions import db
from app.patients.models import Appointment
from app.roles import Role, guest_key

log = logging.getLogger(__name__)


def is_active(appointment_id):
    """The call runs through the relay now: the relay holds its room."""
    try:
        relay.room(relay.room_id(appointment_id))
        return True
    except relay.RelayError:
        return False


def start(identity):
    """A guest joins: make sure the room exists, then move everyone there. Raises
    relay.RelayError (with a message for the practice) and changes nothing then."""
    relay.create_room(identity.appointment_id, identity.max_participants)
    log.info("group call on the relay appointment=%s", identity.appointment_id)


def join(identity, offer_sdp):
    """One member's offer to the relay; returns the relay's answer SDP. The room is
    created again if the relay lost it (restart)."""
    room = relay.create_room(identity.appointment_id, identity.max_participants)
    joined = relay.join(room, identity.key, offer_sdp)
    log.info("joined the relay appointment=%s role=%s", identity.appointment_id, identity.role)
    return joined.sdp


def leave(identity):
    try:
        relay.leave(relay.room_id(identity.appointment_id), identity.key)
    except relay.RelayError as exc:
        log.info("leaving the relay failed appointment=%s reason=%s",
                 identity.appointment_id, exc.reason)
        return False
    return True


def end(appointment_id):
    relay.close_room(appointment_id)


def members(appointment_id):
    """The keys on the relay now: the call's members whose media goes through it (empty
    when the relay holds no room, or cannot be asked)."""
    try:
        room = relay.room(relay.room_id(appointment_id))
    except relay.RelayError:
        return set()
    return {peer["participant"] for peer in room["participants"]}


def roster(appointment_id, joined=()):
    """{"type": "roster", ...} for everybody, or None when the relay holds no room.
    ``joined``: the guests who joined the call and did not leave it (hub.joined)."""
    try:
        room = relay.room(relay.room_id(appointment_id))
    except relay.RelayError:
        return None
    names = _names(appointment_id)
    # The control API's and the roster's "participants" are the call's members (peers).
    members, slots = [], {}
    for peer in room["participants"]:
        key = peer["participant"]
        role = key if key in (Role.STAFF, Role.PATIENT) else Role.GUEST
        member = {"key": key, "name": names.get(key, ""), "role": role}
        if role == Role.GUEST:
            member["call_role"] = names.get(key + ":role", "other")
        members.append(member)
        slots[key] = {s["mid"]: s["participant"] for s in peer["slots"] if s["participant"]}
    # Staff and patient belong to an accepted call even while their page is off the relay
    # (a network cut, a reload): the others keep their tiles, marked as away.
    away = [{"key": key, "name": names.get(key, ""), "role": key}
            for key in (Role.STAFF, Role.PATIENT) if key not in slots]
    # So do guests who joined and did not hang up (issue 9): a cut network is not a goodbye.
    away += [{"key": key, "name": names.get(key, ""), "role": Role.GUEST,
              "call_role": names.get(key + ":role", "other")}
             for key in sorted(joined) if key not in slots and key in names]
    # The practice's choice for browsers without frame encryption as it is now (issue 13):
    # pages opened before a change learn it here.
    e2ee = "warn" if names.get("allow_unencrypted") else "required"
    return {"type": "roster", "version": room.get("version", 0), "participants": members,
            "slots": slots, "away": away, "e2ee": e2ee}


def publish_roster(hub, appointment_id):
    message = roster(appointment_id, hub.joined(appointment_id))
    if message is not None:
        hub.broadcast(appointment_id, message)


def _names(appointment_id):
    try:
        appointment = db.session.get(Appointment, appointment_id)
        if appointment is None:
            return {}
        practice = db.session.get(Practice, appointment.practice_id)
        names = {
            Role.STAFF: practice.name,
            Role.PATIENT: appointment.contact.full_name,
            "allow_unencrypted": practice.allow_unencrypted_group_calls,
        }
        for participant in appointment.participants:
            names[guest_key(participant.id)] = participant.full_name
            # The role's code; each page words it in its own language (grid.js).
            names[guest_key(participant.id) + ":role"] = participant.call_role
        return names
    finally:
        # Sockets live long: never hold a database connection between messages.
        db.session.remove()
