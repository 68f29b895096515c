"""Failed logins per account (issue 12): an attacker with many addresses gets 10 tries
per 15 minutes at one account, then a time lock with a German message and an e-mail to
the account through the outbox (real SMTP); an unknown address looks exactly the same;
the counts live in Redis when RATELIMIT_STORAGE_URI says so, shared by every process."""
import time
import uuid

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.auth import throttle
from tests.support.machine import REDIS_URL, need_redis
from tests.support.outbox import deliver, outbox
from tests.support.webapp import PASSWORD, Auth, sqlite_only

WRONG = "E-Mail-Adresse oder Passwort ist falsch."
LOCKED = "Zu viele fehlgeschlagene Anmeldungen mit dieser E-Mail-Adresse. Die Anmeldung ist für {} Minuten gesperrt."
# The limit per address must not be what stops these tries.
PER_IP = "1000 per minute"


@pytest.fixture
def config_overrides(request, smtp_port):
    return {"LOGIN_RATE_LIMIT": PER_IP, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port,
            **getattr(request, "param", {})}


def attempt(client, email, password, ip):
    """A login from its own address, as a botnet would try."""
    auth = Auth(client)
    token = auth.csrf("/login")
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                           environ_base={"REMOTE_ADDR": ip})
    return response.status_code, response.get_data(as_text=True)


def test_ten_failures_lock_the_account_and_tell_its_owner(app, make_practice, smtp):
    _, email = make_practice()
    client = app.test_client()
    answers = [attempt(client, email, f"falsch-{n}", f"10.0.0.{n}") for n in range(1, 11)]
    assert [status for status, _ in answers[:9]] == [401] * 9
    assert all(WRONG in page for _, page in answers[:9])
    assert answers[9][0] == 429 and LOCKED.format(15) in answers[9][1]
    # Locked: the right password does not help now, from any address.
    status, page = attempt(client, email, PASSWORD, "10.0.1.1")
    assert status == 429 and LOCKED.format(15) in page
    assert client.get("/patienten").status_code == 302
    # One e-mail to the account, through the outbox.
    (notice,) = outbox(app, kind="login-locked")
    assert notice.channel == "email" and notice.appointment_id is None
    deliver(app)
    (message,) = smtp.wait_for(1)
    assert smtp.envelopes[0][1] == [email]
    assert "gesperrt" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "für bis zu 15 Minuten gesperrt" in body and "falsches Passwort" in body
    # Further tries while locked send no further e-mails.
    attempt(client, email, "falsch-11", "10.0.1.2")
    assert len(outbox(app, kind="login-locked")) == 1


def test_an_unknown_address_looks_the_same(app, make_practice):
    _, email = make_practice()
    client = app.test_client()
    known = [attempt(client, email, "falsch", f"10.1.0.{n}") for n in range(11)]
    unknown = [attempt(client, "niemand@example.org", "falsch", f"10.2.0.{n}") for n in range(11)]
    assert [status for status, _ in known] == [status for status, _ in unknown] == [401] * 9 + [429] * 2
    for (_, a), (_, b) in zip(known, unknown):
        assert (WRONG in a) == (WRONG in b) and (LOCKED.format(15) in a) == (LOCKED.format(15) in b)
    assert len(outbox(app, kind="login-locked")) == 1  # only a real account gets mail


def test_a_success_before_the_lock_starts_the_count_again(app, make_practice):
    _, email = make_practice()
    client = app.test_client()
    for n in range(9):
        assert attempt(client, email, "falsch", f"10.3.0.{n}")[0] == 401
    assert attempt(client, email, PASSWORD, "10.3.1.1")[0] == 302
    client = app.test_client()
    for n in range(9):
        assert attempt(client, email, "falsch", f"10.3.2.{n}")[0] == 401
    assert attempt(client, email, PASSWORD, "10.3.3.1")[0] == 302


def test_other_accounts_are_not_affected(app, make_practice):
    _, email = make_practice()
    _, other = make_practice()
    client = app.test_client()
    for n in range(10):
        attempt(client, email, "falsch", f"10.4.0.{n}")
    assert attempt(client, other, PASSWORD, "10.4.1.1")[0] == 302


@sqlite_only
@pytest.mark.parametrize("config_overrides", [{"LOGIN_ACCOUNT_LIMIT": "3 per 2 seconds"}], indirect=True)
def test_the_lock_ends_with_its_window(app, make_practice):
    _, email = make_practice()
    client = app.test_client()
    assert [attempt(client, email, "falsch", f"10.5.0.{n}")[0] for n in range(3)] == [401, 401, 429]
    time.sleep(2.2)
    assert attempt(client, email, PASSWORD, "10.5.1.1")[0] == 302


@sqlite_only
def test_the_counts_are_shared_through_redis(app, make_practice, tmp_path):
    """With RATELIMIT_STORAGE_URI on Redis the count lives there: a separate limiter on
    the same Redis (as another web process has) sees the lock, and the key holds no address."""
    need_redis()
    import redis

    from app import create_app
    from tests.support.webapp import make_config

    prefix = f"sprechzimmer-test-{uuid.uuid4().hex}"
    shared = create_app(make_config(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"], LOGIN_RATE_LIMIT=PER_IP,
                                    RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix))
    _, email = make_practice()
    client = shared.test_client()
    try:
        for n in range(10):
            attempt(client, email, "falsch", f"10.6.0.{n}")
        other_process = FixedWindowRateLimiter(storage_from_string(REDIS_URL))
        with shared.test_request_context():
            key = throttle._key(email)
        assert not other_process.test(parse("10 per 15 minutes"), *key)
        keys = [k.decode() for k in redis.Redis.from_url(REDIS_URL).scan_iter(match=f"*{prefix}*")]
        assert keys and all(email not in k for k in keys)
    finally:
        client_redis = redis.Redis.from_url(REDIS_URL)
        for k in client_redis.scan_iter(match=f"*{prefix}*"):
            client_redis.delete(k)
