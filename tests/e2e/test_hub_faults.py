"""A 1:1 call on two web processes that share a Redis of the test's own (issue 9): staff
on the first, the patient on the second, so only Redis joins them. Redis restarts while
they talk, the call goes on and Auflegen reaches the patient; Redis stopped while staff
click Auflegen: the patient's page learns it once Redis is back. And the heartbeat: the
patient's connection dropped without a FIN (nftables on the second process's port), the
page notices and the practice sees the patient away. The socket-level variants are in
tests/test_hub_faults.py."""
import subprocess
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.steps import invite, login, patient_waits, start_call
from tests.support.chromium import new_page
from tests.support.faults import NFT, faults_missing, media_back
from tests.support.machine import need_redis_server
from tests.support.ports import free_port
from tests.support.redis_stack import RedisServer
from tests.support.stack import gunicorn_args, listening, running_stack
from tests.support.waiting import wait_until

ENDED = "Die Videosprechstunde ist beendet."
# Short, so that a dropped connection is noticed within seconds; with room for two busy
# cores (CI runs Chromium, two web processes and Redis on them) to answer a ping late.
HEARTBEAT_SECONDS, HEARTBEAT_TIMEOUT = 1, 6


@pytest.fixture(scope="module")
def redis_stack(smtp, tmp_path_factory):
    """running_stack on an own Redis, and a second web process beside it."""
    need_redis_server()
    tmp = tmp_path_factory.mktemp("hub-faults")
    redis = RedisServer(tmp / "redis").start()
    port, second_port = free_port(), free_port()
    try:
        with running_stack(smtp, tmp, port, f"http://127.0.0.1:{port}", HUB_URL=redis.url,
                           RATELIMIT_STORAGE_URI=redis.url, HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
                           HEARTBEAT_TIMEOUT_SECONDS=str(HEARTBEAT_TIMEOUT)) as stack:
            stack.start("web2", gunicorn_args(second_port))
            wait_until(lambda: listening(second_port), "the second web process answers", 30)
            stack.redis = redis
            stack.second_url = f"http://127.0.0.1:{second_port}"
            stack.second_port = second_port
            yield stack
    finally:
        redis.stop()


def sockets_are(value, *pages):
    for page in pages:
        expect(page.locator("#call")).to_have_attribute("data-socket", value, timeout=20_000)


def test_redis_restarts_mid_call_and_auflegen_reaches_the_patient(browser, redis_stack, smtp):
    stack = redis_stack
    staff_context, staff = new_page(browser, stack.base_url)
    patient_context, patient = new_page(browser, stack.second_url)
    try:
        login(staff, stack.practices["standard"]["email"])
        link = invite(staff, stack, smtp, "Rita", "Neustart", "rita.neustart@example.org")
        patient_waits(patient, link.replace(stack.base_url, stack.second_url))
        start_call(staff, patient, "Rita Neustart")
        assert media_back([staff, patient], time.monotonic(), timeout=15) is not None

        # A restart while they talk: both sockets are closed (1013) and come back; the
        # call itself (browser to browser) goes on.
        stack.redis.stop()
        sockets_are("reconnecting", staff, patient)
        stack.redis.start()
        sockets_are("open", staff, patient)
        assert media_back([staff, patient], time.monotonic(), timeout=5) is not None
        for page in (staff, patient):
            assert page.evaluate("window.sprechzimmerCall.state") == "connected"

        # Auflegen while Redis is away: the staff page says it again once its socket is
        # back, and the patient's page learns that the call is over.
        stack.redis.stop()
        sockets_are("reconnecting", staff, patient)
        staff.get_by_role("button", name="Auflegen").click()
        expect(staff.get_by_text("Der Anruf ist beendet.")).to_be_visible()
        stack.redis.start()
        expect(patient.get_by_role("heading", name=ENDED)).to_be_visible(timeout=20_000)
        sockets_are("open", staff, patient)
        expect(staff.get_by_text("Der Anruf ist beendet.")).to_be_visible()
        for page in (staff, patient):
            assert page.evaluate("window.sprechzimmerCall.pc") is None
        for name in ("web", "web2"):
            assert "Traceback" not in (stack.log_dir / f"{name}.log").read_text(errors="replace")
    finally:
        staff_context.close()
        patient_context.close()


def test_a_dropped_connection_is_noticed_by_the_page_and_the_practice_sees_the_patient_away(
        browser, redis_stack, smtp):
    """Every packet to and from the second process's port is dropped (only the patient's
    page uses it): no FIN, no RST, as when a NAT forgets the connection."""
    from tests.support.machine import need

    need(faults_missing(), "REQUIRE_FAULTS")
    stack = redis_stack
    staff_context, staff = new_page(browser, stack.base_url)
    patient_context, patient = new_page(browser, stack.second_url)
    table = f"sprechzimmer_hub_e2e_{stack.second_port}"
    rules = f"tcp sport {stack.second_port} drop\n    tcp dport {stack.second_port} drop"
    try:
        login(staff, stack.practices["standard"]["email"])
        link = invite(staff, stack, smtp, "Nora", "Natverlust", "nora.natverlust@example.org")
        patient_waits(patient, link.replace(stack.base_url, stack.second_url))
        start_call(staff, patient, "Nora Natverlust")
        staff_root = staff.locator("#call")
        expect(staff_root).to_have_attribute("data-peer-online", "true")

        subprocess.run([NFT, "-f", "-"], check=True, capture_output=True, text=True, input=(
            f"table inet {table} {{\n  chain input {{ type filter hook input priority -10; policy accept;\n"
            f"    {rules}\n  }}\n  chain output {{ type filter hook output priority -10; policy accept;\n"
            f"    {rules}\n  }}\n}}\n"))
        dropped = time.monotonic()
        # The page: no pong within the timeout (pings every second) -> drops the socket.
        patient.wait_for_function("() => document.getElementById('call').dataset.socket === 'reconnecting'",
                                  timeout=(HEARTBEAT_TIMEOUT + HEARTBEAT_SECONDS + 5) * 1000)
        noticed = time.monotonic() - dropped
        # The server: the socket silent for the timeout is closed; staff see the patient away.
        expect(staff_root).to_have_attribute("data-peer-online", "false", timeout=(HEARTBEAT_TIMEOUT + 5) * 1000)
        away = time.monotonic() - dropped
        print(f"\ndropped connection: page noticed after {noticed:.1f} s, practice saw the patient away "
              f"after {away:.1f} s (heartbeat {HEARTBEAT_SECONDS} s, timeout {HEARTBEAT_TIMEOUT} s)")

        subprocess.run([NFT, "delete", "table", "inet", table], check=True, capture_output=True)
        expect(patient.locator("#call")).to_have_attribute("data-socket", "open", timeout=30_000)
        expect(staff_root).to_have_attribute("data-peer-online", "true", timeout=10_000)
        # The call itself went on browser to browser meanwhile (UDP was not touched).
        assert media_back([staff, patient], time.monotonic(), timeout=10) is not None
        staff.get_by_role("button", name="Auflegen").click()
        expect(patient.get_by_role("heading", name=ENDED)).to_be_visible()
    finally:
        subprocess.run([NFT, "delete", "table", "inet", table], check=False, capture_output=True)
        staff_context.close()
        patient_context.close()
