"""The tariff table (DESIGN.md) and the server-side check for gated features."""
from dataclasses import dataclass

from flask import abort, make_response, render_template
from flask_babel import lazy_gettext as _l


@dataclass(frozen=True)
class Tariff:
    name: str
    label: str
    sms: bool
    screen_sharing: bool
    max_participants: int

    @property
    def participants(self) -> bool:
        """Further people beyond the staff member and the patient."""
        return self.max_participants > 2

    @property
    def extra_participants(self) -> int:
        return max(self.max_participants - 2, 0)


TARIFFS = {
    "basis": Tariff("basis", "Basis", sms=False, screen_sharing=False, max_participants=2),
    "standard": Tariff("standard", "Standard", sms=True, screen_sharing=False, max_participants=2),
    "premium": Tariff("premium", "Premium", sms=True, screen_sharing=True, max_participants=5),
}

FEATURE_MESSAGES = {
    "sms": _l("SMS-Einladungen sind in den Tarifen Standard und Premium enthalten."),
    "screen_sharing": _l("Bildschirm teilen ist im Tarif Premium enthalten."),
    "participants": _l("Weitere Teilnehmer einladen ist im Tarif Premium enthalten."),
}


def tariff_of(practice) -> Tariff:
    return TARIFFS[practice.tariff]


def has_feature(practice, feature: str) -> bool:
    return bool(getattr(tariff_of(practice), feature))


def require_feature(practice, feature: str):
    """Abort with 403 and the tariff's message when the practice lacks a feature."""
    if not has_feature(practice, feature):
        message = str(FEATURE_MESSAGES[feature])
        response = make_response(
            render_template("_message.html", message=message, level="error"), 403
        )
        abort(response)
