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

participant_added = _signals.signal("participant-added", doc="""
A further participant (sender: its id) was added to an appointment and invited.
Keyword: appointment_id.
""")

participant_removed = _signals.signal("participant-removed", doc="""
A further participant (sender: its id) was taken off an appointment; its link is dead.
Keyword: appointment_id.
""")

link_device_replaced = _signals.signal("link-device-replaced", doc="""
A patient's or participant's link was opened on another device, which took it over
(sender: the appointment's id). Keywords: participant_id (None for the patient's own
link), device_id (the new device's LinkDevice id; any other device of the link is out).
""")

consent_withdrawn = _signals.signal("consent-withdrawn", doc="""
The patient or a guest withdrew their own consent to the Videosprechstunde (sender: the
appointment's id). Keyword: participant_id (None for the patient). Their pages must
close and a call with them end.
""")

login_locked = _signals.signal("login-locked", doc="""
Too many failed logins for a staff account's address: it is locked for a while
(sender: the staff member's id). Keyword: practice_id.
""")

outbox_round = _signals.signal("outbox-round", doc="""
The outbox sender's periodic round (sender: "outbox"), every OUTBOX_REMINDER_SECONDS:
a higher domain does what is due now beside the sender, not in a web request (patients:
queues the reminders; ops: the daily retention purge, which decides itself whether a
day has passed) and commits. Keyword: now (naive UTC). Each receiver runs on its own: one
that fails is logged, the sender goes on.
""")

contact_export = _signals.signal("contact-export", doc="""
A practice exports what it stores about a person (DSGVO Art. 15 and 20; sender: the
contact's id). Keyword: appointment_ids. A higher domain that keeps data of those
appointments returns it as {section name: JSON-ready list} (chat: the messages); the
export joins the answers. Only reads: nothing is changed.
""")

password_link_requested = _signals.signal("password-link-requested", doc="""
A staff account needs a set-password link by e-mail (sender: the staff member's id):
it was invited, or its password was reset by the practice's admin. Keywords:
practice_id, reason ("invite" or "reset"). The receiver makes the link
(auth.accounts.issue_link) and queues the e-mail in one transaction.
""")
