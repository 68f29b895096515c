"""The consultation record (issue 11): per appointment when the call started, was
connected and ended, how long it ran and who took part, by role; never what was said
or shown. Shown in the panel and exported per month as CSV for billing.

Who may export: every staff role. The record holds no content, and in German
practices the quarterly billing (KV-Abrechnung) is usually prepared by the MFA, so
keeping it from them would only move the work to the doctor.
"""
import csv
import io
from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _

from app.extensions import db
from app.patients import guest_roles
from app.patients.models import Appointment
from app.timeutil import local_to_utc, to_local

# German Excel reads ';'-separated UTF-8 only with a byte order mark.
BOM = "\ufeff"


@dataclass
class Record:
    started: datetime | None  # local times
    connected: datetime | None
    ended: datetime | None
    seconds: int
    members: list  # role words, e.g. ["Patient", "Weitere Person (Dolmetscher)"]

    @property
    def held(self):
        return self.connected is not None

    @property
    def duration(self):
        """"12:05" (minutes:seconds), as the panel shows it."""
        return f"{self.seconds // 60}:{self.seconds % 60:02d}"

    @property
    def minutes_decimal(self):
        """"12,1": minutes with a German decimal comma, as Excel in Germany reads them."""
        return f"{self.seconds / 60:.1f}".replace(".", ",")


def _member_words(appointment, participants):
    words = []
    for key in (appointment.call_members or "").split(","):
        if key == "patient":
            words.append(_("Patient"))
        elif key.startswith("guest-"):
            participant = participants.get(key)
            # A person removed since then: the record keeps that they took part.
            words.append(str(guest_roles.label(participant.call_role)) if participant
                         else _("Weitere Person"))
    return words


def _local(value, tz):
    return to_local(value, tz) if value else None


def _clock(value):
    return value.strftime("%H:%M:%S") if value else ""


def record_of(appointment, tz):
    def local(value):
        return _local(value, tz)
    participants = {f"guest-{p.id}": p for p in appointment.participants}
    return Record(local(appointment.call_started_at), local(appointment.call_connected_at),
                  local(appointment.call_ended_at), appointment.call_seconds or 0,
                  _member_words(appointment, participants))


def month_bounds(practice, year, month):
    start = local_to_utc(datetime(year, month, 1), practice.timezone)
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return start, local_to_utc(following, practice.timezone)


def month_csv(practice, year, month):
    """Every appointment of the month whose call was connected, soonest first."""
    start, end = month_bounds(practice, year, month)
    appointments = db.session.execute(
        db.select(Appointment)
        .where(Appointment.practice_id == practice.id, Appointment.starts_at >= start,
               Appointment.starts_at < end, Appointment.call_connected_at.is_not(None))
        .options(db.joinedload(Appointment.contact), db.selectinload(Appointment.participants))
        .order_by(Appointment.starts_at, Appointment.id)
    ).scalars().all()
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([_("Termin-Nr."), _("Datum"), _("Uhrzeit"), _("Patient"), _("Begonnen"),
                     _("Verbunden"), _("Beendet"), _("Dauer (Minuten)"), _("Teilnehmende")])
    for a in appointments:
        r = record_of(a, practice.timezone)
        local = to_local(a.starts_at, practice.timezone)
        writer.writerow([a.id, local.strftime("%d.%m.%Y"), local.strftime("%H:%M"),
                         _safe_cell(a.contact.full_name), _clock(r.started), _clock(r.connected),
                         _clock(r.ended), r.minutes_decimal, ", ".join(r.members)])
    return BOM + out.getvalue()


def _safe_cell(value):
    # A name that starts like a formula must not run as one in Excel (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
