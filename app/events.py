"""News that travels up between the domains (docs/architecture.md).

A lower domain never imports a higher one. When something happened there that a
higher one must react to, the lower one sends a signal here and the higher one
connects its receiver in its own module, where the reaction lives (as Indico's
core/signals do). The factory imports every domain, so every receiver is connected
before the first request.

Rules for every signal here:
- sent after the commit: a receiver sees what everybody sees, and may tell the outside
  world (sockets, the relay) without that being undone by a rollback;
- the sender is the id of the object, never the object: after a delete there is no row;
- keyword arguments carry further ids, never names, addresses or tokens;
- receivers run in the sender's thread and must be quick (publish, not wait).
"""
from blinker import Namespace

_signals = Namespace()

appointment_deleted = _signals.signal("appointment-deleted", doc="""
The appointment (sender: its id) is gone with its link, participants and chat.
Keyword: practice_id.
""")

participant_removed = _signals.signal("participant-removed", doc="""
A further participant (sender: its id) was taken off an appointment; its link is dead.
Keyword: appointment_id.
""")
