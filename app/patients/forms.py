"""The appointment form: every rule with its German message beside the field."""
import re
from datetime import date, datetime, time, timedelta

import phonenumbers
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from app.patients import guest_roles
from app.patients.submissions import new_submit_key
from app.text import MESSAGE_LANGUAGES, check_email, check_name
from app.timeutil import local_to_utc, to_local, utcnow

DURATION_MIN, DURATION_MAX = 5, 180
DURATION_CHOICES = (10, 15, 20, 30, 45, 60, 90)
CONSENT_TEXT = _l("Der Nutzer hat eingewilligt, SMS- und E-Mail-Nachrichten von mir zu erhalten")
# How far ahead an appointment may be booked; beyond that it is most likely a typo.
MAX_DAYS_AHEAD = 366
INVALID_MOBILE = _l("Bitte geben Sie eine gültige Mobilnummer ein, z. B. 0151 23456789.")


class PersonForm(FlaskForm):
    """Who is invited and how: the patient of an appointment or a further participant."""

    first_name = StringField(_l("Vorname"))
    last_name = StringField(_l("Nachname"))
    email = StringField(_l("E-Mail"))
    mobile = StringField(_l("Mobilnummer"))
    send_sms = BooleanField(_l("Einladung per SMS versenden"))
    # Checked below with a German message, not WTForms' English "Not a valid choice".
    language = SelectField(_l("Sprache der Nachrichten"), default="de", validate_choice=False,
                           choices=[SelectChoice(code, name) for code, name in MESSAGE_LANGUAGES])
    consent = BooleanField(CONSENT_TEXT)

    def validate_first_name(self, field):
        check_name(field, _l("Bitte geben Sie den Vornamen ein."))

    def validate_last_name(self, field):
        check_name(field, _l("Bitte geben Sie den Nachnamen ein."))

    def validate_email(self, field):
        check_email(field)

    def validate_mobile(self, field):
        value = (field.data or "").strip()
        field.data = value or None
        if not value:
            if self.send_sms.data:
                raise ValidationError(_l("Für die SMS-Einladung wird eine Mobilnummer benötigt."))
            return
        if len(value) > 30:
            raise ValidationError(INVALID_MOBILE)
        try:
            number = phonenumbers.parse(value, "DE")
        except phonenumbers.NumberParseException:
            raise ValidationError(INVALID_MOBILE) from None
        if not phonenumbers.is_valid_number(number):
            raise ValidationError(INVALID_MOBILE)
        if phonenumbers.number_type(number) not in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            raise ValidationError(
                _l("Das ist keine Mobilnummer; SMS können nur an Mobilnummern gehen."))
        field.data = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def validate_language(self, field):
        if field.data not in dict(MESSAGE_LANGUAGES):
            raise ValidationError(_l("Bitte wählen Sie Deutsch oder Englisch."))

    def validate_consent(self, field):
        if not field.data:
            raise ValidationError(_l("Ohne Einwilligung kann keine Einladung verschickt werden."))


class ParticipantForm(PersonForm):
    """A further person in a Premium call; consent and SMS as for the patient."""

    submit_key = HiddenField("", default=new_submit_key)
    call_role = SelectField(
        _l("Rolle im Gespräch"), default=guest_roles.DEFAULT, validate_choice=False,
        choices=[SelectChoice(code, words) for code, words in guest_roles.GUEST_ROLES.items()])

    def validate_call_role(self, field):
        if field.data not in guest_roles.GUEST_ROLES:
            raise ValidationError(_l("Bitte wählen Sie eine der Rollen aus der Liste."))


class AppointmentForm(PersonForm):
    # Without a label WTForms translates a made-up one, loading its message catalog on every
    # request.
    contact_id = HiddenField("")
    submit_key = HiddenField("", default=new_submit_key)
    date = StringField(_l("Datum"))
    time = StringField(_l("Uhrzeit"))
    duration = StringField(_l("Voraussichtliche Dauer (Minuten)"), default="15")
    # Shown with the message about a double booking (patients/editing.py).
    confirm_overlap = BooleanField(_l("Trotzdem anlegen"))

    def __init__(self, *args, practice_tz="Europe/Berlin", **kwargs):
        super().__init__(*args, **kwargs)
        self.practice_tz = practice_tz
        self.starts_at_utc = None
        self.double_booked = False
        if "formdata" in kwargs and kwargs["formdata"] is None and not self.date.data:
            # A new form: most appointments are made for today, in the practice's zone.
            self.date.data = to_local(utcnow(), practice_tz).date().isoformat()

    def validate_date(self, field):
        try:
            field.parsed = date.fromisoformat((field.data or "").strip())
        except ValueError:
            field.parsed = None
            raise ValidationError(_l("Bitte wählen Sie ein Datum.")) from None

    def validate_time(self, field):
        raw = (field.data or "").strip()
        try:
            field.parsed = time.fromisoformat(raw) if len(raw) in (5, 8) else None
        except ValueError:
            field.parsed = None
        if field.parsed is None:
            raise ValidationError(_l("Bitte geben Sie eine Uhrzeit ein, z. B. 09:30."))
        day = getattr(self.date, "parsed", None)
        if day is None:
            return
        try:
            local = datetime.combine(day, field.parsed.replace(second=0))
            starts = local_to_utc(local, self.practice_tz)
        except OverflowError:
            # 0001-01-01 00:30 in Berlin lies before year 1 in UTC.
            starts = datetime.min
        now = utcnow()
        if starts <= now:
            raise ValidationError(_l("Der Termin muss in der Zukunft liegen."))
        if starts > now + timedelta(days=MAX_DAYS_AHEAD):
            raise ValidationError(_l("Der Termin darf höchstens ein Jahr im Voraus liegen."))
        self.starts_at_utc = starts

    def validate_duration(self, field):
        raw = (field.data or "").strip()
        # isdigit() alone lets "²" through, which int() refuses.
        if not re.fullmatch(r"[0-9]{1,3}", raw) or not DURATION_MIN <= int(raw) <= DURATION_MAX:
            raise ValidationError(
                _l("Bitte geben Sie eine Dauer zwischen %(lo)d und %(hi)d Minuten an.",
                   lo=DURATION_MIN, hi=DURATION_MAX)
            )
        field.parsed = int(raw)

    def validate_contact_id(self, field):
        raw = (field.data or "").strip()
        field.data = int(raw) if raw.isdigit() else None


class AppointmentEditForm(AppointmentForm):
    """Bearbeiten: date, time, duration and contact of an appointment. The consent and
    the channels stay as given at Einladen; the link stays the same."""

    consent = None
    contact_id = None
    submit_key = None
    confirm_overlap = BooleanField(_l("Trotzdem speichern"))

    def __init__(self, *args, sms_requested=False, **kwargs):
        super().__init__(*args, **kwargs)
        # Invited by SMS: the update goes by SMS too, so the number stays required.
        self.send_sms.data = sms_requested
