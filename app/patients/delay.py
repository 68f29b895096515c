"""The delay notice (issue 11): "ca. 10 Min. später" or a short text of the practice's
own, shown at once in the patient's (and the guests') waiting room.

The text is plain text: the waiting room sets it as text, never as markup, and
markup typed here is refused rather than silently changed, so that what the patient
reads is what the practice typed.
"""
import logging

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import ValidationError

from app.extensions import db, hub
from app.hub import HubUnavailable
from app.patients import progress
from app.roles import Role
from app.text import hidden_characters
from app.timeutil import utcnow

log = logging.getLogger(__name__)

PRESETS = (5, 10, 15, 30)
MAX_TEXT = 200


class DelayForm(FlaskForm):
    # "5", "10", "15", "30" from the pick buttons, "text" for the typed notice, "clear".
    action = HiddenField()
    text = StringField(_l("Eigener Hinweis an den Patienten"))

    def validate_action(self, field):
        if field.data not in {str(n) for n in PRESETS} | {"text", "clear"}:
            raise ValidationError(_l("Bitte wählen Sie eine Verspätung aus."))

    def validate_text(self, field):
        value = (field.data or "").strip()
        field.data = value
        if self.action.data != "text":
            return
        if not value:
            raise ValidationError(_l("Bitte geben Sie einen Hinweis ein."))
        if len(value) > MAX_TEXT:
            raise ValidationError(_l("Der Hinweis darf höchstens %(n)d Zeichen lang sein.",
                                     n=MAX_TEXT))
        if "<" in value or ">" in value:
            raise ValidationError(_l("Bitte ohne spitze Klammern (< >): Der Hinweis wird als "
                                     "einfacher Text angezeigt."))
        if hidden_characters(value):
            raise ValidationError(_l("Der Hinweis enthält unsichtbare Steuerzeichen. Bitte "
                                     "tippen Sie ihn neu ein."))


def message_of(appointment):
    """What the waiting room gets: the pick, the text, or nothing (cleared)."""
    message = {"type": "delay"}
    if appointment.delay_minutes:
        message["minutes"] = appointment.delay_minutes
    elif appointment.delay_notice:
        message["text"] = appointment.delay_notice
    return message


def set_delay(appointment, form):
    action = form.action.data
    appointment.delay_minutes = int(action) if action.isdigit() else None
    appointment.delay_notice = form.text.data if action == "text" else None
    appointment.delay_notice_at = None if action == "clear" else utcnow()
    db.session.commit()
    log.info("delay notice appointment=%s kind=%s", appointment.id, action)
    try:
        hub.broadcast(appointment.id, message_of(appointment), roles=(Role.PATIENT, Role.GUEST))
    except HubUnavailable:
        # Stored: the waiting room shows it when its page loads again.
        log.info("delay notice not published appointment=%s hub=unavailable", appointment.id)
    progress.notify(appointment, "delay")
