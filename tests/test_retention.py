"""Retention (issue 12): an appointment and everything about it goes RETENTION_DAYS after
it took place, at most three months (KBV Anlage 31b). Appointments are made through
Einladen as staff make them; the purge runs with a fixed clock, and the tables are
counted before and after, on SQLite and PostgreSQL."""
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import create_app
from app.auth.audit import AuditEntry
from app.auth.models import LoginSession
from app.chat.models import ChatMessage
from app.extensions import db
from app.invitations.models import OutboxMessage
from app.ops import retention
from app.patients.models import Appointment, Contact, Participant, VisitorConsent
from app.timeutil import utcnow
from tests.support.forms import created_ids
from tests.support.outbox import invitation_token, opened_link, start_sender
from tests.support.waiting import wait_until
from tests.support.webapp import make_config

TABLES = {"appointments": Appointment, "contacts": Contact, "participants": Participant,
          "chat": ChatMessage, "outbox": OutboxMessage, "consents": VisitorConsent}


def counts(app):
    with app.app_context():
        return {name: db.session.scalar(select(func.count()).select_from(model))
                for name, model in TABLES.items()}


def starts(app, appointment_id):
    with app.app_context():
        return db.session.get(Appointment, appointment_id).starts_at


@pytest.fixture
def day(app, make_practice, auth, make_appointment):
    """A Premium practice's day three days ahead: Erika twice (now and 30 days later, so
    her contact outlives the first), Max once with a guest, chat in Erika's first; every
    patient and the guest opened their link and consented on the device check."""
    _, email = make_practice(tariff="premium")
    assert auth.login(email).status_code == 302
    first, erika = created_ids(make_appointment())
    later, _ = created_ids(make_appointment(date=(utcnow() + timedelta(days=33)).strftime("%Y-%m-%d")))
    other, max_ = created_ids(make_appointment(first_name="Max", last_name="Muster", email="max@example.org"))
    for appointment_id in (first, later, other):
        opened_link(app, invitation_token(app, appointment_id=appointment_id))
    guest = {"first_name": "Gerd", "last_name": "Gast", "email": "gerd@example.org", "mobile": "", "consent": "y"}
    response = auth.post(f"/patienten/termine/{other}/teilnehmer",
                         data={f"a{other}-{key}": value for key, value in guest.items()})
    assert response.status_code == 201, response.get_data(as_text=True)
    with app.app_context():
        guest_id = db.session.scalar(select(Participant.id))
    opened_link(app, invitation_token(app, participant_id=guest_id))
    for text in ("Guten Tag", "Bis gleich"):
        assert auth.post(f"/chat/{first}/nachrichten", data={"text": text}).status_code in (200, 201)
    return {"first": first, "later": later, "other": other, "erika": erika, "max": max_}


def test_nothing_goes_before_the_retention_and_everything_after(app, day):
    assert app.config["RETENTION_DAYS"] == 90
    before = counts(app)
    assert before == {"appointments": 3, "contacts": 2, "participants": 1, "chat": 2, "outbox": 4,
                      "consents": 4}
    first = starts(app, day["first"])
    with app.app_context():
        done = retention.purge(now=first + timedelta(days=89))
        # Today's login and audit entries are 92 days old by then (test_dead_logins and
        # test_audit_entries_go_after_the_retention): they go, the appointments stay.
        assert {kind: n for kind, n in done.items() if kind not in ("sessions", "audit")} == {
            "appointments": 0, "cancellations": 0, "contacts": 0, "messages": 0}
    assert counts(app) == before

    # 91 days on: Erika's first appointment and Max's go, with the guest, the chat, the
    # consents and the invitations; Max's contact has nothing left, Erika's keeps her later appointment.
    with app.app_context():
        done = retention.purge(now=first + timedelta(days=91))
        assert done["appointments"] == 2 and done["contacts"] == 1
        assert db.session.get(Appointment, day["later"]) is not None
        assert db.session.get(Contact, day["erika"]) is not None
        assert db.session.get(Contact, day["max"]) is None
    assert counts(app) == {"appointments": 1, "contacts": 1, "participants": 0, "chat": 0, "outbox": 1,
                           "consents": 1}

    with app.app_context():
        assert retention.purge(now=starts(app, day["later"]) + timedelta(days=91))["appointments"] == 1
    assert counts(app) == dict.fromkeys(TABLES, 0)


def test_a_shorter_retention_and_the_command(app, day, runner):
    first = starts(app, day["first"])
    with app.app_context():
        assert retention.purge(now=first + timedelta(days=8), days=7)["appointments"] == 2
    # The command with the clock as it is: nothing is seven days old yet.
    result = runner.invoke(args=["retention", "purge", "--days", "7"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "appointments=0 cancellations=0 contacts=0 messages=0 sessions=0 audit=0"
    # More than three months is refused, by the command and at the start.
    assert runner.invoke(args=["retention", "purge", "--days", "93"]).exit_code != 0


@pytest.mark.parametrize("days", [0, 93, 365])
def test_a_start_with_a_retention_beyond_three_months_is_refused(tmp_path, database_url, days):
    with pytest.raises(SystemExit, match="RETENTION_DAYS"):
        create_app(make_config(tmp_path, database_url, RETENTION_DAYS=days))


def test_audit_entries_go_after_the_retention(app, day):
    with app.app_context():
        logged = db.session.scalar(select(func.count()).select_from(AuditEntry))
        assert logged >= 5  # the login, three appointments, the guest
        assert retention.purge(now=utcnow() + timedelta(days=89))["audit"] == 0
        assert retention.purge(now=utcnow() + timedelta(days=91))["audit"] == logged
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_dead_logins_and_old_lock_mails_go_too(app, day, auth):
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginSession)) >= 1
        now = utcnow() + timedelta(hours=13)
        assert retention.purge(now=now)["sessions"] >= 1
        assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 0
    # The login ended with its row.
    assert auth.get("/patienten", htmx=False).status_code == 302


def test_the_outbox_sender_purges_once_at_start_and_then_daily(app, day, tmp_path, smtp_port):
    # Erika's first appointment as if it had been 3 days ago, with a retention of 2 days.
    with app.app_context():
        appointment = db.session.get(Appointment, day["first"])
        appointment.starts_at = utcnow() - timedelta(days=3)
        db.session.commit()
    log = tmp_path / "sender.log"
    # Rounds every 0.2 s: the purge is daily all the same.
    sender = start_sender(app, smtp_port, log, lease=30, poll=0.2, RETENTION_DAYS="2", OUTBOX_REMINDER_SECONDS="0.2")
    try:
        wait_until(lambda: counts(app)["appointments"] == 2, "the sender purged the old appointment", 30)
        time.sleep(1)  # several rounds
    finally:
        sender.kill()
        sender.wait()
    text = log.read_text()
    assert text.count("retention purge appointments=1 ") == 1, text
    assert "Traceback" not in text
