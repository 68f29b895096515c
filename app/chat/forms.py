from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import ValidationError

from app.chat.models import MAX_TEXT


def _text(form, field):
    # Keep line breaks (a patient may list symptoms) but no blank message.
    value = (field.data or "").strip()
    field.data = value
    if not value:
        raise ValidationError(_l("Bitte geben Sie eine Nachricht ein."))
    if len(value) > MAX_TEXT:
        raise ValidationError(
            _l("Die Nachricht ist zu lang (höchstens %(n)d Zeichen).", n=MAX_TEXT))
    if "\x00" in value:
        raise ValidationError(_l("Die Nachricht enthält ungültige Zeichen."))


class ChatForm(FlaskForm):
    text = TextAreaField(_l("Nachricht"), validators=[_text])
