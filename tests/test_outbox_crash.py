"""A sender killed with SIGKILL mid-delivery (issue 9): `flask outbox work` runs as a
real process against a real SMTP server that holds the first message at a chosen point,
the test kills the sender there and starts another.

- killed before the mail was accepted: every message arrives exactly once; the one in
  flight after at most one lease, the others without waiting for any lease;
- killed after the SMTP server took the mail but before the sender could record it: that
  one message arrives twice, with the same Message-ID (at most one duplicate per crash).
"""
import time

import pytest
from tests.support.fakes import SmtpServer
from tests.support.forms import created_ids
from tests.support.outbox import outbox, start_sender

LEASE = 3.0
POLL = 0.2
INVITES = 4


@pytest.fixture
def config_overrides(smtp_port):
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port}


@pytest.fixture
def senders(app, smtp_port, tmp_path):
    started = []

    def start():
        started.append(start_sender(app, smtp_port, tmp_path / "sender.log", lease=LEASE, poll=POLL))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture
def invitations(make_practice, auth, make_appointment):
    _, email = make_practice(tariff="basis")
    assert auth.login(email).status_code == 302
    return [created_ids(make_appointment(email=f"patient{n}@example.org"))[0] for n in range(INVITES)]


def wait_for_mails(server, count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.lock:
            if len(server.messages) >= count:
                return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"expected {count} e-mails, got {len(server.messages)}")


def kill_at_hold(server, sender):
    assert server.held.wait(30), "the sender never reached the SMTP server"
    sender.kill()
    sender.wait()
    killed = time.monotonic()
    server.release.set()
    return killed


def test_killed_before_acceptance_loses_nothing_and_holds_one(app, smtp_port, senders, invitations, tmp_path):
    server = SmtpServer(smtp_port, hold="before").start()
    try:
        killed = kill_at_hold(server, senders())
        senders()
        arrived = wait_for_mails(server, INVITES, timeout=LEASE + 20)
        # The held message waited for its lease; the others were never claimed.
        assert arrived - killed <= LEASE + 5
        time.sleep(LEASE + 2 * POLL)  # nothing more comes
        recipients = sorted(m["To"] for m in server.messages)
        assert recipients == sorted(f"patient{n}@example.org" for n in range(INVITES))
    finally:
        server.stop()
    rows = outbox(app)
    assert [row.status for row in rows] == ["sent"] * INVITES
    log = (tmp_path / "sender.log").read_text()
    assert "outbox sent message=" in log and "@example.org" not in log


def test_killed_after_acceptance_sends_one_duplicate_with_the_same_message_id(
        app, smtp_port, senders, invitations):
    server = SmtpServer(smtp_port, hold="after").start()
    try:
        kill_at_hold(server, senders())
        senders()
        wait_for_mails(server, INVITES + 1, timeout=LEASE + 20)
        time.sleep(LEASE + 2 * POLL)
        messages = list(server.messages)
    finally:
        server.stop()
    assert len(messages) == INVITES + 1
    by_id = {}
    for message in messages:
        by_id.setdefault(message["Message-ID"], []).append(message["To"])
    duplicates = [to for to in by_id.values() if len(to) > 1]
    assert len(duplicates) == 1 and len(duplicates[0]) == 2 and len(set(duplicates[0])) == 1
    assert len(by_id) == INVITES
    assert all(mid.startswith("<outbox-") for mid in by_id)
    assert [row.status for row in outbox(app)] == ["sent"] * INVITES


def test_heartbeat_keeps_a_slow_send_from_a_second_sender(app, smtp_port, senders, invitations):
    # The first message is held for three leases while a second sender polls: the lease
    # is renewed, so the second sender leaves it alone and it arrives once.
    server = SmtpServer(smtp_port, hold="before").start()
    try:
        senders()
        assert server.held.wait(30)
        senders()
        time.sleep(3 * LEASE)
        server.release.set()
        wait_for_mails(server, INVITES, timeout=20)
        time.sleep(LEASE + 2 * POLL)
        assert len(server.messages) == INVITES
    finally:
        server.stop()
