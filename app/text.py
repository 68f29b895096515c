"""Checks of text that people type and others read: names of patients, participants,
staff and practices (issue 12).

A name is shown to the other side (staff read the patient's name in the list and the
call, the patient reads the practice's in e-mails and SMS). Invisible characters can
make it read as something else: "Erika", U+202E (right-to-left override), "anneD"
shows as "ErikaDenna", and zero-width characters make two equal looking names differ.
None of them belongs in a name, so they are refused, never silently removed: what is
saved is what the user saw in the field.
"""
import unicodedata

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from wtforms.validators import ValidationError

# Cc control (C0, DEL, C1), Cf format (bidi embeddings, overrides and isolates, marks,
# zero-width characters, BOM, soft hyphen), Cs surrogates, Co private use, Cn unassigned,
# Zl/Zp line and paragraph separators.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def hidden_characters(value: str) -> list[str]:
    """The characters of ``value`` that do not show as themselves (``U+202E`` style)."""
    return [f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) in HIDDEN_CATEGORIES]


# The languages patients and guests get their e-mails and SMS in: German, or English for
# those who do not read German (templates/email/en/, templates/sms/en/). Each named in itself.
MESSAGE_LANGUAGES = (("de", "Deutsch"), ("en", "English"))

NAME_MAX = 100
HIDDEN_IN_NAME = _l("Der Name enthält unsichtbare Steuerzeichen (z. B. eine Umkehr der "
                    "Schreibrichtung). Bitte tippen Sie ihn neu ein.")


def check_name(field, required_msg):
    """A form's name field (patients, participants, colleagues), cleaned of extra spaces."""
    value = " ".join((field.data or "").split())
    field.data = value
    if not value:
        raise ValidationError(required_msg)
    if len(value) > NAME_MAX:
        raise ValidationError(_l("Höchstens %(n)d Zeichen.", n=NAME_MAX))
    # Whitespace controls are gone with the split; any other control character (C0, DEL,
    # C1) would end up in e-mail headers and SMS texts.
    if (any(ch in value for ch in "<>\"@\\/{}")
            or any(unicodedata.category(ch) == "Cc" for ch in value)):
        raise ValidationError(_l("Bitte nur Buchstaben, Leerzeichen, Bindestrich und Apostroph."))
    if hidden_characters(value):
        raise ValidationError(HIDDEN_IN_NAME)


def check_email(field):
    """A form's e-mail field, normalised to lower case (addresses are looked up by it)."""
    value = (field.data or "").strip()
    field.data = value
    if not value:
        raise ValidationError(_l("Bitte geben Sie die E-Mail-Adresse ein."))
    if len(value) > 254:
        raise ValidationError(_l("Die E-Mail-Adresse ist zu lang."))
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise ValidationError(_l("Bitte geben Sie eine gültige E-Mail-Adresse ein, "
                                 "z. B. name@beispiel.de.")) from None
    field.data = result.normalized.lower()
