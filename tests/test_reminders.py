"""Issue 11, reminders: e-mail (and SMS where the invitation went by SMS) 24 hours and
15 minutes before the appointment, queued by the outbox sender's periodic round, with
the same link; once per appointment and kind, also across a kill -9 of a real sender
process; none for deleted or past appointments, none the practice switched off.

Appointments are moved into a reminder's window by writing their times in the
database: the reminder job reads the clock, the test does not fake it."""
import signal
import time
from datetime import timedelta

import pytest

from app.auth.models import Practice
from app.extensions import db
from app.invitations import sender
from app.invitations.models import OutboxMessage
from app.patients.models import Appointment, ReminderMark
from app.patients.reminders import reset_for_new_time
from app.timeutil import utcnow
from tests.support.fakes import SmtpServer
from tests.support.forms import appointment_form, created_ids, future_slot
from tests.support.outbox import deliver, link_in, outbox, start_sender, text_of

PRACTICE = "Praxis am Markt"
REMINDER = "Erinnerung: Videosprechstunde"
MOBILE, TO = "0151 23456789", "4915123456789"


@pytest.fixture
def config_overrides(smtp_port, vonage):
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port,
            "VONAGE_API_KEY": vonage.api_key, "VONAGE_API_SECRET": vonage.api_secret,
            "VONAGE_REST_HOST": vonage.rest_host}


@pytest.fixture
def practice(make_practice, auth):
    practice_id, email = make_practice(name=PRACTICE, tariff="standard")
    assert auth.login(email).status_code == 302
    return practice_id


@pytest.fixture
def invite(practice, make_appointment):
    def factory(**overrides):
        return created_ids(make_appointment(**overrides))[0]

    return factory


def move(app, appointment_id, starts_in, made_ago=timedelta(days=3)):
    """The appointment starts `starts_in` from now and was made `made_ago`."""
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        now = utcnow()
        appointment.starts_at = now + starts_in
        appointment.created_at = now - made_ago
        db.session.commit()


def reminder_round(app):
    with app.app_context():
        sender.queue_scheduled()


def reminders(app):
    return [m for m in outbox(app) if m.kind == "reminder"]


def marks(app, appointment_id):
    with app.app_context():
        return sorted(db.session.execute(
            db.select(ReminderMark.kind).filter_by(appointment_id=appointment_id)).scalars())


def test_day_and_short_reminders_each_once_with_the_same_link(app, smtp, invite):
    appointment_id = invite()
    deliver(app)
    link, _ = link_in(text_of(smtp.wait_for(1)[0]))

    move(app, appointment_id, timedelta(hours=20))
    reminder_round(app)
    reminder_round(app)
    assert [(m.channel, m.appointment_id) for m in reminders(app)] == [("email", appointment_id)]
    assert marks(app, appointment_id) == ["day"]
    assert deliver(app) == 1
    mail = smtp.wait_for(2)[1]
    assert mail["Subject"].startswith(f"{REMINDER} am ")
    assert mail["To"] == "erika@example.org"
    text = text_of(mail)
    assert "wir erinnern Sie an Ihre Videosprechstunde" in text
    assert link_in(text)[0] == link
    assert link in text_of(mail, "html")
    assert not list(mail.iter_attachments())

    move(app, appointment_id, timedelta(minutes=10))
    for _ in range(3):
        reminder_round(app)
    assert len(reminders(app)) == 2 and marks(app, appointment_id) == ["day", "soon"]
    assert deliver(app) == 1
    assert len(smtp.mails_to("erika@example.org", REMINDER, count=2)) == 2
    time.sleep(0.2)
    assert len(smtp.messages) == 3


def test_a_sender_that_was_away_sends_only_the_nearest_reminder(app, invite):
    appointment_id = invite()
    move(app, appointment_id, timedelta(minutes=10))
    reminder_round(app)
    reminder_round(app)
    assert len(reminders(app)) == 1
    assert marks(app, appointment_id) == ["day", "soon"]


def test_sms_reminder_where_the_invitation_went_by_sms(app, smtp, vonage, invite):
    appointment_id = invite(mobile=MOBILE, send_sms="y")
    deliver(app)
    move(app, appointment_id, timedelta(minutes=10))
    reminder_round(app)
    assert sorted(m.channel for m in reminders(app)) == ["email", "sms"]
    deliver(app)
    texts = [sms["text"] for sms in vonage.delivered if sms["to"] == TO]
    assert len(texts) == 2
    assert f"{PRACTICE}: Erinnerung an Ihre Videosprechstunde am " in texts[1]
    assert link_in(texts[0])[0] == link_in(texts[1])[0]


def test_no_sms_reminder_without_an_sms_invitation(app, invite):
    appointment_id = invite(mobile=MOBILE)
    move(app, appointment_id, timedelta(minutes=10))
    reminder_round(app)
    assert [m.channel for m in reminders(app)] == ["email"]


@pytest.mark.parametrize("setting, starts_in, expected", [
    ("remind_day_before", timedelta(hours=20), []),
    ("remind_day_before", timedelta(minutes=10), ["soon"]),
    ("remind_shortly_before", timedelta(minutes=10), ["day"]),
])
def test_a_reminder_the_practice_switched_off_is_not_sent(app, invite, practice, setting, starts_in, expected):
    with app.app_context():
        setattr(db.session.get(Practice, practice), setting, False)
        db.session.commit()
    appointment_id = invite()
    move(app, appointment_id, starts_in)
    reminder_round(app)
    assert marks(app, appointment_id) == expected
    assert len(reminders(app)) == (1 if expected else 0)


def test_no_reminder_for_past_appointments_or_right_after_the_invitation(app, invite):
    past = invite()
    move(app, past, -timedelta(minutes=5))
    fresh = invite(email="max@example.org")
    move(app, fresh, timedelta(hours=20), made_ago=timedelta(hours=1))
    reminder_round(app)
    assert reminders(app) == []
    assert marks(app, past) == [] and marks(app, fresh) == []


def test_a_reminder_of_an_appointment_deleted_meanwhile_is_dropped(app, smtp, auth, invite):
    appointment_id = invite()
    deliver(app)
    move(app, appointment_id, timedelta(minutes=10))
    reminder_round(app)
    assert len(reminders(app)) == 1
    assert auth.delete(f"/patienten/termine/{appointment_id}").status_code == 200
    assert reminders(app) == []
    deliver(app)
    subjects = [m["Subject"] for m in smtp.wait_for(2)]
    time.sleep(0.2)
    assert len(smtp.messages) == 2 and not any(REMINDER in s for s in subjects)


def test_a_reminder_that_would_come_after_the_start_is_dropped(app, smtp, invite):
    appointment_id = invite()
    deliver(app)
    move(app, appointment_id, timedelta(minutes=10))
    reminder_round(app)
    move(app, appointment_id, -timedelta(minutes=1))
    deliver(app)
    (row,) = reminders(app)
    assert row.status == "failed" and "too late" in row.last_error
    time.sleep(0.2)
    assert len(smtp.messages) == 1


def test_moving_the_appointment_reminds_of_the_new_time(app, auth, invite):
    appointment_id = invite()
    move(app, appointment_id, timedelta(hours=20))
    reminder_round(app)
    assert marks(app, appointment_id) == ["day"]
    # Moved three days on: the reminder not yet sent goes, the new time gets its own.
    day, _ = future_slot(days=3)
    data = {f"e{appointment_id}-{k}": v for k, v in appointment_form(date=day).items() if k != "consent"}
    assert auth.post(f"/patienten/termine/{appointment_id}/bearbeiten", data=data).status_code == 200
    assert reminders(app) == [] and marks(app, appointment_id) == []
    # Moved to in 20 hours: the update just told the patient; no reminder right after it.
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        appointment.starts_at = utcnow() + timedelta(hours=20)
        reset_for_new_time(appointment, utcnow())
        db.session.commit()
    reminder_round(app)
    assert reminders(app) == [] and marks(app, appointment_id) == ["day"]


def test_reminder_sent_once_across_a_kill_of_the_sender(app, smtp, smtp_port, invite, tmp_path):
    appointment_id = invite()
    move(app, appointment_id, timedelta(minutes=10))
    started = []

    def start():
        started.append(start_sender(app, smtp_port, tmp_path / "sender.log", lease=3.0, poll=0.1,
                                    OUTBOX_REMINDER_SECONDS="0.1"))

    try:
        start()
        assert len(smtp.mails_to("erika@example.org", REMINDER, timeout=30)) == 1
        # Killed once the reminder is recorded as sent (a kill between SMTP's 250 and
        # that record may send one duplicate of the same message: tests/test_outbox_crash.py).
        deadline = time.monotonic() + 10
        while [m.status for m in reminders(app)] != ["sent"] and time.monotonic() < deadline:
            time.sleep(0.05)
        started[0].send_signal(signal.SIGKILL)
        started[0].wait()
        start()
        time.sleep(3)  # some thirty reminder rounds of the new sender
        assert started[1].poll() is None
    finally:
        for process in started:
            process.kill()
            process.wait()
    assert len(smtp.mails_to("erika@example.org", REMINDER, timeout=0)) == 1
    assert len(smtp.messages) == 2  # the invitation and one reminder
    assert [m.status for m in reminders(app)] == ["sent"]
    log = (tmp_path / "sender.log").read_text()
    assert "reminder queued appointment=" in log and "@example.org" not in log


def test_reminder_queued_then_sender_killed_mid_send_arrives_once(app, smtp_port, invite, tmp_path):
    appointment_id = invite()
    deliver(app)  # the invitation went to nowhere (no SMTP server yet): it is retried later
    move(app, appointment_id, timedelta(minutes=10))
    with app.app_context():
        db.session.execute(db.delete(OutboxMessage).where(OutboxMessage.kind == "invitation"))
        db.session.commit()
    server = SmtpServer(smtp_port, hold="before").start()  # holds the first mail at RCPT
    started = []
    try:
        started.append(start_sender(app, smtp_port, tmp_path / "sender.log", lease=2.0, poll=0.1,
                                    OUTBOX_REMINDER_SECONDS="0.1"))
        assert server.held.wait(30), "the sender never sent the reminder"
        started[0].kill()
        started[0].wait()
        server.release.set()
        started.append(start_sender(app, smtp_port, tmp_path / "sender.log", lease=2.0, poll=0.1,
                                    OUTBOX_REMINDER_SECONDS="0.1"))
        assert len(server.mails_to("erika@example.org", REMINDER, timeout=20)) == 1
        time.sleep(2.5)  # past another lease and many rounds: nothing more
    finally:
        for process in started:
            process.kill()
            process.wait()
        server.stop()
    assert len(server.messages) == 1
    assert [m.status for m in reminders(app)] == ["sent"]
    assert marks(app, appointment_id) == ["day", "soon"]
