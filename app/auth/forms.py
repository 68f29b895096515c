
import phonenumbers
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from app.auth.models import ROLE_LABELS, ROLES
from app.auth.services import PASSWORD_MAX, PASSWORD_MIN
from app.text import check_email, check_name, hidden_characters


class LoginForm(FlaskForm):
    email = EmailField(_l("E-Mail"), validators=[
        DataRequired(_l("Bitte geben Sie Ihre E-Mail-Adresse ein.")), Length(max=254)])
    password = PasswordField(_l("Passwort"), validators=[
        DataRequired(_l("Bitte geben Sie Ihr Passwort ein.")), Length(max=1000)])


class PracticeSettingsForm(FlaskForm):
    """Einstellungen (issue 11): reminders before an appointment, and the number patients
    call when something does not work (shown in invitations, updates and reminders)."""

    remind_day_before = BooleanField(_l("Erinnerung 24 Stunden vor dem Termin senden"))
    remind_shortly_before = BooleanField(_l("Erinnerung 15 Minuten vor dem Termin senden"))
    phone = StringField(_l("Telefonnummer der Praxis bei Problemen"))
    allow_unencrypted_group_calls = BooleanField(
        _l("Browser ohne Ende-zu-Ende-Verschlüsselung in Gruppengespräche lassen"))

    def validate_phone(self, field):
        value = " ".join((field.data or "").split())
        field.data = value or None
        if not value:
            return
        try:
            # phonenumbers skips what it cannot read (a NUL, a bidi override): such input
            # is refused, not silently cleaned.
            number = (phonenumbers.parse(value, "DE")
                      if len(value) <= 30 and not hidden_characters(value) else None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValidationError(_l("Bitte geben Sie eine gültige Telefonnummer ein, "
                                     "z. B. 030 1234567."))
        field.data = phonenumbers.format_number(number,
                                                phonenumbers.PhoneNumberFormat.INTERNATIONAL)


ROLE_MISSING = _l("Bitte wählen Sie eine Rolle.")


def _role(field):
    if field.data not in ROLES:
        raise ValidationError(ROLE_MISSING)


def role_choices():
    return [(role, ROLE_LABELS[role]) for role in ROLES]


class InviteForm(FlaskForm):
    """Konto einladen: the new colleague's name, e-mail address and role."""

    first_name = StringField(_l("Vorname"))
    last_name = StringField(_l("Nachname"))
    email = StringField(_l("E-Mail"))
    role = SelectField(_l("Rolle"), choices=role_choices, validate_choice=False)

    def validate_first_name(self, field):
        check_name(field, _l("Bitte geben Sie den Vornamen ein."))

    def validate_last_name(self, field):
        check_name(field, _l("Bitte geben Sie den Nachnamen ein."))

    def validate_email(self, field):
        check_email(field)

    def validate_role(self, field):
        _role(field)


class RoleForm(FlaskForm):
    role = SelectField(_l("Rolle"), choices=role_choices, validate_choice=False)

    def validate_role(self, field):
        _role(field)


class SetPasswordForm(FlaskForm):
    password = PasswordField(_l("Neues Passwort"))
    confirm = PasswordField(_l("Passwort wiederholen"))

    def validate_password(self, field):
        value = field.data or ""
        if not value:
            raise ValidationError(_l("Bitte geben Sie ein Passwort ein."))
        if len(value) < PASSWORD_MIN:
            raise ValidationError(_l("Das Passwort muss mindestens %(n)d Zeichen lang sein.",
                                     n=PASSWORD_MIN))
        if len(value) > PASSWORD_MAX:
            raise ValidationError(_l("Höchstens %(n)d Zeichen.", n=PASSWORD_MAX))

    def validate_confirm(self, field):
        if (field.data or "") != (self.password.data or ""):
            raise ValidationError(_l("Die beiden Passwörter stimmen nicht überein."))
