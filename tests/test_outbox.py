"""The outbox and its sender: retries, permanent failures, resending, cancellation.

Everything goes through the real sender to the real stand-ins (SMTP and Vonage over
HTTPS on loopback); waiting retries are made due by moving next_attempt_at.
"""
import logging
from datetime import timedelta

import pytest

from app.timeutil import utcnow
from tests.support.fakes import SmtpServer
from tests.support.forms import created_ids
from tests.support.outbox import deliver, link_in, make_due, outbox, text_of

MOBILE, MOBILE_E164 = "0151 23456789", "+4915123456789"


@pytest.fixture
def config_overrides(smtp_port, vonage):
    return {
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port,
        "VONAGE_API_KEY": vonage.api_key, "VONAGE_API_SECRET": vonage.api_secret,
        "VONAGE_REST_HOST": vonage.rest_host,
    }


@pytest.fixture
def invite(make_practice, auth, make_appointment):
    _, email = make_practice(tariff="standard", name="Praxis am Markt")
    assert auth.login(email).status_code == 302

    def factory(**overrides):
        return created_ids(make_appointment(**overrides))

    return factory


@pytest.fixture
def smtp_later(smtp_port):
    """Starts SMTP on the configured port when called (down until then)."""
    servers = []

    def start():
        servers.append(SmtpServer(port=smtp_port).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def opens(app, path):
    return app.test_client().get(path).status_code


def test_smtp_down_keeps_message_until_server_is_up(app, invite, smtp_later, auth):
    appointment_id, _ = invite()

    before = utcnow()
    assert deliver(app) == 1
    after = utcnow()
    (message,) = outbox(app)
    assert message.status == "pending"
    assert message.attempts == 1
    assert message.last_error.startswith("smtp unreachable")
    assert message.payload  # kept for the next try
    backoff = timedelta(seconds=app.config["OUTBOX_BACKOFF_SECONDS"])
    assert before + backoff <= message.next_attempt_at <= after + backoff
    assert deliver(app) == 0  # not due yet
    watch = auth.get(f"/patienten/termine/{appointment_id}/zustellung")
    assert watch.status_code == 286
    assert "toast-warning" in watch.get_data(as_text=True)

    smtp = smtp_later()
    make_due(app)
    assert deliver(app) == 1
    (mail,) = smtp.wait_for(1)
    (message,) = outbox(app)
    assert (message.status, message.attempts, message.last_error, message.payload) == ("sent", 2, None, None)
    assert message.sent_at is not None
    _, path = link_in(text_of(mail))
    assert opens(app, path) == 302


def test_temporary_refusal_is_retried_with_growing_backoff(app, invite, smtp):
    invite()
    smtp.data_reply = "451 4.3.0 Try again later"
    base = app.config["OUTBOX_BACKOFF_SECONDS"]
    waits = []
    for attempt in (1, 2, 3):
        make_due(app)
        before = utcnow()
        assert deliver(app) == 1
        after = utcnow()
        (message,) = outbox(app)
        assert (message.status, message.attempts, message.last_error) == ("pending", attempt, "smtp 451")
        expected = timedelta(seconds=base * 2 ** (attempt - 1))
        assert before + expected <= message.next_attempt_at <= after + expected
        waits.append(expected)
    assert waits[0] < waits[1] < waits[2]

    smtp.data_reply = None
    make_due(app)
    assert deliver(app) == 1
    assert len(smtp.wait_for(1)) == 1
    assert outbox(app)[0].status == "sent"


@pytest.mark.parametrize("where, reply, error", [
    ("rcpt_reply", "550 5.1.1 Mailbox unavailable", "smtp recipient refused [550]"),
    ("data_reply", "554 5.7.1 Message rejected", "smtp 554"),
])
def test_permanent_refusal_fails_and_purges_payload(app, invite, smtp, where, reply, error):
    invite()
    setattr(smtp, where, reply)
    assert deliver(app) == 1
    (message,) = outbox(app)
    assert (message.status, message.permanent, message.attempts) == ("failed", True, 1)
    assert message.last_error == error
    assert message.payload is None

    setattr(smtp, where, None)
    make_due(app)
    assert deliver(app) == 0  # never tried again
    assert smtp.messages == []


def test_gives_up_after_max_attempts(app, invite, smtp):
    invite()
    smtp.rcpt_reply = "450 4.2.0 Mailbox busy"
    limit = app.config["OUTBOX_MAX_ATTEMPTS"]
    for attempt in range(1, limit + 1):
        make_due(app)
        assert deliver(app) == 1
        (message,) = outbox(app)
        assert message.attempts == attempt
        assert message.status == ("pending" if attempt < limit else "failed")
    assert message.payload is None
    assert message.last_error == "smtp recipient refused [450]"
    make_due(app)
    assert deliver(app) == 0


def test_payload_at_rest_holds_no_link_token_or_address(app, invite, smtp, auth):
    appointment_id, _ = invite(mobile=MOBILE, send_sms="y")
    deliver(app)
    token = link_in(text_of(smtp.wait_for(1)[0]))[0].rsplit("/", 1)[1]
    auth.post(f"/patienten/termine/{appointment_id}/erneut-senden/email")
    payloads = [m.payload for m in outbox(app) if m.payload]  # the re-sent invitation
    auth.delete(f"/patienten/termine/{appointment_id}")
    payloads += [m.payload for m in outbox(app) if m.payload]  # the two cancellations
    assert len(payloads) == 3
    for payload in payloads:
        for secret in (token, "erika@example.org", MOBILE_E164, "abgesagt"):
            assert secret not in payload


def test_resend_queues_a_new_message_and_kills_the_old_link(app, invite, smtp, auth):
    appointment_id, contact_id = invite()
    deliver(app)
    _, old_path = link_in(text_of(smtp.wait_for(1)[0]))
    patient = app.test_client()
    assert patient.get(old_path).status_code == 302  # the patient opened it already

    response = auth.post(f"/patienten/termine/{appointment_id}/erneut-senden/email")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert f'id="contact-{contact_id}"' in body
    assert "Die Einladung wird erneut gesendet. Der bisherige Link ist damit ungültig." in body
    first, second = outbox(app, kind="invitation")
    assert (first.status, second.status, second.channel) == ("sent", "pending", "email")

    assert opens(app, old_path) == 404
    assert patient.get("/sprechstunde").status_code == 404  # the old session ends too
    assert deliver(app) == 1
    _, new_path = link_in(text_of(smtp.wait_for(2)[1]))
    assert new_path != old_path
    assert opens(app, new_path) == 302
    assert opens(app, old_path) == 404


def test_resend_while_first_attempt_waits_sends_only_valid_links(app, invite, smtp, auth):
    appointment_id, _ = invite(mobile=MOBILE, send_sms="y")
    smtp.data_reply = "451 4.3.0 Try again later"
    assert deliver(app) == 2  # the SMS went out, the e-mail waits for a retry
    auth.post(f"/patienten/termine/{appointment_id}/erneut-senden/email")

    smtp.data_reply = None
    make_due(app)
    deliver(app)
    mails = smtp.wait_for(1)
    assert len(mails) == 1  # one invitation e-mail, not a stale one beside the new one
    _, path = link_in(text_of(mails[0]))
    assert opens(app, path) == 302
    assert [m.status for m in outbox(app, kind="invitation", channel="email")][-1] == "sent"


def test_delete_sends_cancellations_on_invited_channels(app, invite, smtp, vonage, auth):
    appointment_id, _ = invite(mobile=MOBILE, send_sms="y")
    assert deliver(app) == 2
    _, path = link_in(text_of(smtp.wait_for(1)[0]))

    response = auth.delete(f"/patienten/termine/{appointment_id}")
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "appointments-changed"
    assert "Der Termin wurde gelöscht." in response.get_data(as_text=True)
    assert opens(app, path) == 404
    assert outbox(app, kind="invitation") == []  # they went with the appointment
    queued = outbox(app, kind="cancellation")
    assert sorted(m.channel for m in queued) == ["email", "sms"]
    assert all(m.appointment_id is None and m.status == "pending" for m in queued)

    assert deliver(app) == 2
    cancel_mail = smtp.wait_for(2)[1]
    assert cancel_mail["Subject"] == "Termin abgesagt: Videosprechstunde bei Praxis am Markt"
    assert cancel_mail["To"] == "erika@example.org"
    for body in (text_of(cancel_mail), text_of(cancel_mail, "html")):
        assert "wurde abgesagt" in body
        assert "Guten Tag Erika Mustermann" in body
        assert "/j/" not in body
    cancel_sms = vonage.delivered[-1]
    assert cancel_sms["to"] == MOBILE_E164.lstrip("+")
    assert "abgesagt" in cancel_sms["text"]
    assert [m.status for m in outbox(app, kind="cancellation")] == ["sent", "sent"]
    assert all(m.payload is None for m in outbox(app))


def test_cancellation_mail_removes_the_calendar_entry(app, invite, smtp, auth):
    appointment_id, _ = invite()
    deliver(app)
    auth.delete(f"/patienten/termine/{appointment_id}")
    deliver(app)
    invitation, cancellation = smtp.wait_for(2)

    from icalendar import Calendar

    def event_of(mail):
        (attachment,) = list(mail.iter_attachments())
        calendar = Calendar.from_ical(attachment.get_content())
        return calendar, calendar.walk("VEVENT")[0]

    calendar, event = event_of(cancellation)
    _, original = event_of(invitation)
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == str(original["UID"])
    assert event.decoded("DTSTART") == original.decoded("DTSTART")
    assert int(event["SEQUENCE"]) > int(original["SEQUENCE"])


def test_pending_invitation_of_deleted_appointment_is_not_sent(app, invite, smtp, auth):
    appointment_id, _ = invite()
    assert auth.delete(f"/patienten/termine/{appointment_id}").status_code == 200
    deliver(app)
    subjects = [m["Subject"] for m in smtp.wait_for(1)]
    assert not any(s.startswith("Einladung") for s in subjects)
    assert outbox(app, kind="invitation") == []


def test_unreadable_payload_fails_alone(app, invite, smtp):
    from app.extensions import db
    from app.invitations import crypto
    from app.invitations.models import OutboxMessage

    invite()
    invite(email="max@example.org", first_name="Max")
    with app.app_context():  # the first was sealed under a SECRET_KEY since replaced
        key = app.config["SECRET_KEY"]
        app.config["SECRET_KEY"] = "the-key-before-rotation"
        stale = crypto.seal({"token": "x"})
        app.config["SECRET_KEY"] = key
        db.session.execute(db.update(OutboxMessage).where(OutboxMessage.id == outbox(app)[0].id)
                           .values(payload=stale))
        db.session.commit()

    assert deliver(app) == 2
    first, second = outbox(app)
    assert (first.status, first.permanent, first.payload) == ("failed", True, None)
    assert second.status == "sent"
    assert [m["To"] for m in smtp.wait_for(1)] == ["max@example.org"]


def test_logs_hold_no_address_phone_or_token(app, invite, smtp, vonage, auth, caplog):
    caplog.set_level(logging.DEBUG)
    appointment_id, _ = invite(mobile=MOBILE, send_sms="y")
    smtp.data_reply = "451 4.3.0 Try again later"
    vonage.status = "1"
    deliver(app)
    smtp.data_reply, vonage.status = None, "0"
    make_due(app)
    deliver(app)
    vonage.http_status = 500
    auth.post(f"/patienten/termine/{appointment_id}/erneut-senden/sms")
    deliver(app)
    vonage.http_status = 200
    make_due(app)
    deliver(app)
    auth.delete(f"/patienten/termine/{appointment_id}")
    deliver(app)

    tokens = {link_in(text_of(m))[0].rsplit("/", 1)[1] for m in smtp.messages if "/j/" in text_of(m)}
    tokens |= {link_in(s["text"])[0].rsplit("/", 1)[1] for s in vonage.delivered if "/j/" in s["text"]}
    assert len(tokens) == 2  # first link, and the one the SMS resend made
    assert [m.status for m in outbox(app)] == ["sent"] * 2  # the cancellations; the rest went with the appointment
    secrets = {"erika@example.org", MOBILE_E164, MOBILE_E164.lstrip("+"), "15123456789", *tokens}
    # aiosmtpd plays the mail provider's server here: its log is not ours.
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(r.name == "sprechzimmer.outbox" for r in ours)
    for record in ours:
        line = record.getMessage() + (record.exc_text or "")
        leaked = [s for s in secrets if s in line]
        assert not leaked, f"{record.name}: {line}"
