"""Why a further person takes part in a call (issue 11): staff pick it when they add the
person, and see it in the panel, on the call's tiles and in the consultation record.
Stored as a code (Participant.call_role); the words are the reader's language."""
from flask_babel import lazy_gettext as _l

GUEST_ROLES = {
    "interpreter": _l("Dolmetscher/in"),
    "relative": _l("Angehörige/r"),
    "carer": _l("Betreuer/in"),
    "colleague": _l("Kollegin/Kollege"),
    "other": _l("Weitere Person"),
}
DEFAULT = "other"


def label(code):
    return GUEST_ROLES.get(code, GUEST_ROLES[DEFAULT])
