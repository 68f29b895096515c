from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms.validators import ValidationError


class ConsentForm(FlaskForm):
    """The patient's or a guest's own consent on the device check (patients/consent.py)."""

    consent = BooleanField(_l("Ich habe die Datenschutzhinweise gelesen und bin mit der "
                              "Videosprechstunde einverstanden."))

    def validate_consent(self, field):
        if not field.data:
            raise ValidationError(_l("Bitte setzen Sie das Häkchen, wenn Sie einverstanden "
                                     "sind. Ohne Ihre Einwilligung ist keine Videosprechstunde "
                                     "möglich."))

