"""The installation of deploy/ run for real on loopback (issue 10): Caddy with the
project's deploy/Caddyfile (only the `tls` line switched to Caddy's internal CA, the
address on loopback, and TWO web processes as its upstreams), coturn with
deploy/turnserver.conf (loopback ports, a test secret), and the app's processes started
with the command lines READ FROM deploy/systemd/*.service (the web unit twice, each
with its own BIND), with the settings install.sh writes (production, Redis hub and
rate limits, TURN) and ICE_TRANSPORT_POLICY=relay. Chromium trusts Caddy's CA by its
pinned key, opens https://, logs in, invites through the form, the patient opens the
https link, and:
- a 1:1 call runs with both browsers on relay candidates only, as the app's setting
  tells every RTCPeerConnection: it can only connect through coturn with the
  credentials the app issued, and frames decode both ways;
- a Premium group call (staff, patient, a guest) runs the same way through coturn to
  the media relay, with the three pages' sockets spread over both web processes by
  Caddy's load balancing (each process's log says which sockets it served): the Redis
  hub carries the call between them.

Nothing in the page is forced from the test: an init script only keeps the page's
peer connections for the test to read their stats and configuration.

Skips without Caddy, coturn or Redis; CI requires them (REQUIRE_CADDY, REQUIRE_COTURN,
REQUIRE_REDIS).
"""
import os
import re
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.steps import (
    add_participant, einladen, guest_joins, guest_key, guest_link, in_relay_mode, login, open_form, open_panel,
    patient_waits, start_call,
)
from tests.support.chromium import checked_pages
from tests.support.deploy import CADDY, COTURN, ROOT, Caddy, Coturn, DeployStack, require, unit_environment
from tests.support.forms import future_slot
from tests.support.machine import REDIS_URL, need_redis
from tests.support.page_media import assert_media, measure, remote_video_plays, report, sees_members
from tests.support.ports import free_port, free_udp_range
from tests.support.stack import OPERATOR_ENV, PASSWORD, PRACTICES
from tests.support.waiting import wait_until

UNITS = {"web": "sprechzimmer-web.service", "outbox": "sprechzimmer-outbox.service",
         "relay": "sprechzimmer-relay.service"}

# The page's connections, kept for the test to read their stats; their configuration
# is the page's own.
RECORD = """(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  class Recorded extends Native {
    constructor(...args) {
      super(...args);
      (window.__testPeerConnections = window.__testPeerConnections || []).push(this);
    }
  }
  window.RTCPeerConnection = Recorded;
})();"""

# The pair each of the page's open connections runs on (its transport's selected pair:
# under load ICE can nominate a second pair, UDP and TCP to coturn, before it settles):
# candidate types and the relay's address as this browser sees it.
PAIRS = """async () => {
  const out = [];
  for (const pc of window.__testPeerConnections || []) {
    if (pc.connectionState !== "connected") continue;
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((r) => byId.set(r.id, r));
    for (const t of byId.values()) {
      if (t.type !== "transport" || !t.selectedCandidatePairId) continue;
      const r = byId.get(t.selectedCandidatePairId);
      const local = byId.get(r.localCandidateId), remote = byId.get(r.remoteCandidateId);
      out.push({policy: pc.getConfiguration().iceTransportPolicy, local: local.candidateType,
                remote: remote.candidateType, relayProtocol: local.relayProtocol || null,
                localAddress: local.address, localPort: local.port, remotePort: remote.port,
                url: local.url || null});
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def deploy_stack(smtp, tmp_path_factory):
    require(CADDY, "REQUIRE_CADDY", "caddy")
    require(COTURN, "REQUIRE_COTURN", "coturn")
    need_redis()
    tmp = tmp_path_factory.mktemp("deploy")
    turn_secret = "e2e-turn-" + os.urandom(16).hex()
    coturn = Coturn(tmp / "coturn", turn_secret)
    web_port, web2_port, relay_port = free_port(), free_port(), free_port()
    caddy = Caddy(tmp / "caddy", [web_port, web2_port])
    udp_min, udp_max = free_udp_range(40, start=47600)
    # The processes' environment as systemd builds it: the unit's Environment=, then
    # the environment file install.sh writes (here with loopback values).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VONAGE_", "FLASK_", "MAIL_", "RELAY_"))}
    for unit in UNITS.values():
        env.update(unit_environment(unit))
    env.update(
        PYTHONPATH=str(ROOT),
        SPRECHZIMMER_ENV="production",
        **OPERATOR_ENV,
        PUBLIC_BASE_URL=caddy.base_url,
        SECRET_KEY="e2e-" + os.urandom(32).hex(),
        RELAY_SECRET="e2e-relay-" + os.urandom(16).hex(),
        TURN_SECRET=turn_secret,
        DATABASE_URL=f"sqlite:///{tmp / 'sprechzimmer.db'}",
        HUB_URL=REDIS_URL,
        HUB_PREFIX=f"sprechzimmer-deploy-e2e-{os.getpid()}:",
        RATELIMIT_STORAGE_URI=REDIS_URL,
        FORWARDED_ALLOW_IPS="127.0.0.1,::1",
        RELAY_BIND_IP="127.0.0.1",
        RELAY_URL=f"http://127.0.0.1:{relay_port}",
        RELAY_CONTROL_PORT=str(relay_port),
        RELAY_UDP_PORT_MIN=str(udp_min),
        RELAY_UDP_PORT_MAX=str(udp_max),
        TURN_URLS=f"{coturn.url('udp')},{coturn.url('tcp')}",
        ICE_TRANSPORT_POLICY="relay",
        OUTBOX_DIR=str(tmp / "outbox"),
        BACKUP_DIR=str(tmp / "backups"),
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp.port),
        MAIL_TIMEOUT="5",
        # Test pace, not the product's: polling and the many logins of a test run.
        OUTBOX_POLL_SECONDS="0.2",
        LOGIN_RATE_LIMIT="200 per minute",
        WEB_THREADS="64",
        BIND=f"127.0.0.1:{web_port}",
    )
    server = DeployStack(caddy.base_url, env, tmp, PRACTICES, PASSWORD)
    server.caddy, server.coturn = caddy, coturn
    server.web_binds = {"web": f"127.0.0.1:{web_port}", "web2": f"127.0.0.1:{web2_port}"}
    server.relay_udp = (udp_min, udp_max)
    coturn.start()
    try:
        caddy.start()
        server.flask("db", "upgrade")  # install.sh: sprechzimmer db upgrade
        for tariff, practice in server.practices.items():
            server.flask("practice", "create", "--name", practice["name"], "--tariff", tariff,
                         "--email", practice["email"], "--staff-name", "Dr. Deploy", "--password", PASSWORD)
        for name, unit in UNITS.items():
            server.start_unit(name, unit)
        server.start_unit("web2", UNITS["web"], BIND=f"127.0.0.1:{web2_port}")
        server.wait_until_up({"web": web_port, "web2": web2_port, "relay": relay_port})
        yield server
    finally:
        server.stop()
        caddy.stop()
        coturn.stop()


@pytest.fixture(scope="module")
def deploy_browser(playwright, deploy_stack):
    browser = deploy_stack.caddy.browser(playwright)
    yield browser
    browser.close()


@pytest.fixture
def pages(deploy_browser, deploy_stack):
    yield from checked_pages(deploy_browser, deploy_stack.base_url, own=("localhost",), has_touch=False,
                             timeout=15_000, init_script=RECORD)


def test_processes_run_the_units_command_lines(deploy_stack):
    venv = str(Path(sys.executable).parent)
    assert deploy_stack.commands["web"][0] == f"{venv}/gunicorn"
    for name in ("web", "web2"):
        assert deploy_stack.commands[name][1:] == [
            "--workers", "1", "--worker-class", "gthread", "--threads", "64", "--worker-connections", "2100",
            "--bind", deploy_stack.web_binds[name], "--graceful-timeout", "5", "wsgi:app"]
    assert deploy_stack.commands["outbox"][1:] == ["outbox", "work"]
    assert deploy_stack.commands["relay"][1:] == ["-m", "media_relay"]


def test_call_through_caddy_and_coturn_with_relay_only_ice(pages, deploy_stack, smtp):
    staff, patient = pages(), pages()
    login(staff, deploy_stack.practices["standard"]["email"])

    open_form(staff)
    day, _ = future_slot(days=2)
    made = einladen(staff, first_name="Theo", last_name="Turnpatient", email="theo.turn@example.org", date=day,
                    time="11:30", duration="15")
    assert made.status == 201
    link = smtp.invitation_link("theo.turn@example.org")
    assert link.startswith(deploy_stack.base_url + "/j/"), link
    token = link.rsplit("/", 1)[1]

    patient_waits(patient, link)
    assert any(url.startswith(f"wss://localhost:{deploy_stack.caddy.https_port}/") for url in patient.watch.requests)
    start_call(staff, patient, "Theo Turnpatient")
    coturn = deploy_stack.coturn
    for page in (staff, patient):
        remote_video_plays(page)
        pairs = page.evaluate(PAIRS)
        assert pairs, "no connected peer connection"
        for pair in pairs:
            # Both ends are coturn relay addresses: the media went through TURN.
            assert pair["policy"] == "relay", pair
            assert (pair["local"], pair["remote"]) == ("relay", "relay"), pair
            assert pair["localAddress"] == "127.0.0.1", pair
            assert coturn.relay_min <= pair["localPort"] <= coturn.relay_max, pair
            assert coturn.relay_min <= pair["remotePort"] <= coturn.relay_max, pair
    expect(staff.get_by_text("Verbunden")).to_be_visible()
    staff.get_by_role("button", name="Auflegen").click()
    expect(patient.get_by_role("heading", name="Die Videosprechstunde ist beendet.")).to_be_visible()

    # Caddy's access log saw the patient's link, without its token, in path and Referer.
    entries = deploy_stack.caddy.access_entries()
    assert any(entry["request"]["uri"] == "/j/-" for entry in entries), [e["request"]["uri"] for e in entries]
    raw = deploy_stack.caddy.access_log.read_text()
    assert token not in raw
    assert "session=" not in raw  # Caddy leaves cookies out of its log


def served_by(deploy_stack, appointment_id):
    """{web process: the roles of this appointment whose sockets it served}, from each
    process's own log ("connected ws=… appointment=… role=…")."""
    line = re.compile(rf" connected ws=\d+ appointment={appointment_id} role=(\w+)")
    return {name: {m.group(1) for m in line.finditer(deploy_stack.log(name))} for name in ("web", "web2")}


def test_group_call_over_two_web_processes_through_coturn(pages, deploy_stack, smtp):
    staff, patient, guest = pages(), pages(), pages()
    login(staff, deploy_stack.practices["premium"]["email"])
    open_form(staff)
    day, _ = future_slot(days=2)
    made = einladen(staff, first_name="Grete", last_name="Lastverteilung", email="grete.last@example.org", date=day,
                    time="12:00", duration="30")
    assert made.status == 201
    link = smtp.invitation_link("grete.last@example.org")
    appointment_id = open_panel(staff, "Grete Lastverteilung")
    assert add_participant(staff, appointment_id, "Ole", "Dolmetscher", "ole.dolmetsch@example.org").status == 201
    key = guest_key(staff, appointment_id, "Ole Dolmetscher")

    # Caddy sends each socket to the process with the fewest open ones: the patient's
    # and the guest's waiting rooms land on different processes.
    patient_waits(patient, link)
    patient_waits(guest, guest_link(smtp, "ole.dolmetsch@example.org"))
    start_call(staff, patient, "Grete Lastverteilung")
    guest_joins(guest)
    members = {"staff": staff, "patient": patient, key: guest}
    names = {"staff": deploy_stack.practices["premium"]["name"], "patient": "Grete Lastverteilung",
             key: "Ole Dolmetscher"}
    for own, page in members.items():
        in_relay_mode(page)
        sees_members(page, {k: names[k] for k in members if k != own})

    served = served_by(deploy_stack, appointment_id)
    assert served["web"] and served["web2"], served
    assert served["web"] | served["web2"] == {"staff", "patient", "guest"}, served

    # Every page's media runs from its coturn allocation to the media relay: the relay
    # (and everyone behind it) sees coturn's address, never the browser's.
    coturn, (udp_min, udp_max) = deploy_stack.coturn, deploy_stack.relay_udp
    for own, page in members.items():
        pairs = page.evaluate(PAIRS)
        assert len(pairs) == 1, (own, pairs)
        (pair,) = pairs
        assert pair["policy"] == "relay", (own, pair)
        assert (pair["local"], pair["localAddress"]) == ("relay", "127.0.0.1"), (own, pair)
        assert coturn.relay_min <= pair["localPort"] <= coturn.relay_max, (own, pair)
        assert pair["remote"] == "host" and udp_min <= pair["remotePort"] <= udp_max, (own, pair)
    figures = measure(members)
    report("group call, two web processes, relay-only ICE:", figures)
    assert_media(figures, {own: [k for k in members if k != own] for own in members})

    staff.locator('[data-action="hangup"]').click()
    for page in (patient, guest):
        expect(page.get_by_role("heading", name="Die Videosprechstunde ist beendet.")).to_be_visible()


def test_caddy_serves_static_files_and_headers(deploy_stack):
    context = ssl.create_default_context(cafile=str(deploy_stack.caddy.root))

    def logged(found, what):
        """Caddy's access log entries once ``found(entries)`` holds."""
        wait_until(lambda: found(deploy_stack.caddy.access_entries()), what, timeout=10)
        return deploy_stack.caddy.access_entries()

    def referers_of(entries):
        return [entry["request"]["headers"].get("Referer") for entry in entries]

    def get(path, headers=None):
        request = urllib.request.Request(deploy_stack.base_url + path, headers=headers or {})
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.headers, response.read()

    status, headers, body = get("/login")
    assert status == 200 and b"Anmelden" in body
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Content-Security-Policy" in headers  # from the app, through the proxy

    vendor = next(p.name for p in (ROOT / "static" / "vendor").glob("htmx-*.min.js"))
    status, headers, body = get(f"/static/vendor/{vendor}")
    assert body == (ROOT / "static" / "vendor" / vendor).read_bytes()
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Content-Security-Policy" not in headers and headers["ETag"]  # from disk, not from gunicorn
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Strict-Transport-Security"] == "max-age=31536000"

    status, headers, body = get("/static/js/app.js")
    assert body == (ROOT / "static" / "js" / "app.js").read_bytes()
    assert headers["Cache-Control"] == "public, no-cache"
    assert "Content-Security-Policy" not in headers

    # Only static/ comes from disk: the code next to it does not.
    with pytest.raises(urllib.error.HTTPError) as missing:
        get("/static/../config.py")
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as other:
        get("/config.py")
    assert other.value.code == 404
    logged(lambda entries: any(e["request"]["uri"].startswith("/static/vendor/") for e in entries),
           "the vendor file in Caddy's access log")

    # A page under /j/<token> (an expired link's error page) loads its styles with the
    # link as Referer: the log keeps neither the token in the path nor in the Referer.
    token = "Geheim" + os.urandom(16).hex()
    with pytest.raises(urllib.error.HTTPError) as expired:
        get(f"/j/{token}")
    assert expired.value.code == 404
    get("/static/css/app.css", headers={"Referer": f"{deploy_stack.base_url}/j/{token}"})
    # Caddy writes the line after the response: wait for it, then look for the token.
    logged(lambda entries: [f"{deploy_stack.base_url}/j/-"] in referers_of(entries),
           "the styles' request with the link's Referer, cut, in the access log")
    assert token not in deploy_stack.caddy.access_log.read_text()

    # The same for a staff member's set-password link.
    token = "Passwort" + os.urandom(16).hex()
    with pytest.raises(urllib.error.HTTPError) as unknown:
        get(f"/konto/passwort/{token}")
    assert unknown.value.code == 404
    get("/static/css/app.css", headers={"Referer": f"{deploy_stack.base_url}/konto/passwort/{token}"})
    entries = logged(lambda entries: [f"{deploy_stack.base_url}/konto/passwort/-"] in referers_of(entries),
                     "the styles' request with the set-password link's Referer, cut, in the access log")
    assert "/konto/passwort/-" in [entry["request"]["uri"] for entry in entries]
    assert token not in deploy_stack.caddy.access_log.read_text()
