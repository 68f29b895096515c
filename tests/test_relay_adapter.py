"""The web app's relay adapter (app/consultation/relay.py) against a real
`python -m media_relay` process, and ./run starting and stopping the relay beside the
web app and the outbox sender."""
import asyncio
import contextlib
import http.client
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from aiortc import RTCSessionDescription

from app import create_app
from app.consultation import relay
from media_relay.client import RelayClient
from tests.support.browsers import SyntheticBrowser
from tests.support.ports import free_port, free_udp_range
from tests.support.processes import children, environ_of
from tests.support.relay import SECRET, RelayProcess, answers, asynctest
from tests.support.waiting import wait_until
from tests.support.webapp import make_config

ROOT = Path(__file__).resolve().parents[1]
UP_TIMEOUT = 30  # a hang guard for process starts, not a speed check
pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A relay process for the module: (its URL, its UDP range)."""
    with RelayProcess(tmp_path_factory.mktemp("relay") / "relay.log") as relay:
        yield relay.url, relay.udp_range


@pytest.fixture
def app_for(tmp_path):
    """An app whose RELAY_URL/RELAY_SECRET point where the test says (no database needed)."""

    def make(url, secret=SECRET.decode()):
        return create_app(make_config(tmp_path, "sqlite://", RELAY_URL=url, RELAY_SECRET=secret))

    return make


async def in_app(app, fn, *args):
    """The adapter is synchronous like the app; the thread inherits the app context."""
    with app.app_context():
        return await asyncio.to_thread(fn, *args)


@asynctest
async def test_create_room_join_status_and_leave(running, app_for):
    url, (udp_min, udp_max) = running
    app = app_for(url)
    rooms_before = (await in_app(app, relay.status))["rooms"]
    room = await in_app(app, relay.create_room, 17, 3)
    assert room == "appointment-17"
    assert await in_app(app, relay.create_room, 17, 3) == room  # repeating is fine
    assert (await in_app(app, relay.status))["rooms"] == rooms_before + 1

    # SyntheticBrowser builds its peer connection with explicit, empty ICE servers
    staff, patient = SyntheticBrowser("staff-1", slots=2), SyntheticBrowser("patient-1", slots=2)
    try:
        for person in (staff, patient):
            joined = await in_app(app, relay.join, room, person.key, await person.offer())
            assert joined.sdp.startswith("v=0")
            ports = re.findall(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", joined.sdp)
            assert ports and all(udp_min <= int(p) <= udp_max for p in ports)
            await person.pc.setRemoteDescription(RTCSessionDescription(sdp=joined.sdp, type="answer"))
        # the patient joined second: its slots already carry the staff member's media
        assert {(s["participant"], s["kind"]) for s in joined.slots if s["participant"]} == {
            ("staff-1", "audio"), ("staff-1", "video")}
        deadline = time.monotonic() + UP_TIMEOUT
        while not all(p.pc.connectionState == "connected" for p in (staff, patient)):
            assert time.monotonic() < deadline, "clients never connected through the relay"
            await asyncio.sleep(0.05)
        assert (await in_app(app, relay.status))["participants"] == 2

        await in_app(app, relay.leave, room, "staff-1")
        await in_app(app, relay.leave, room, "staff-1")  # already gone: no error
        await in_app(app, relay.leave, "appointment-999999", "x")  # unknown room: no error
        assert (await in_app(app, relay.status))["participants"] == 1
    finally:
        await staff.close()
        await patient.close()
        await in_app(app, relay.leave, room, "patient-1")


@pytest.mark.parametrize("secret, reason", [
    ("another-secret-0123456789abcdef", "bad_signature"),
    ("", "unsigned"),
])
def test_a_wrong_or_missing_secret_is_refused_and_reported_as_unavailable(
        running, app_for, caplog, secret, reason):
    url, _ = running
    app = app_for(url, secret)
    rooms_before = RelayClient("127.0.0.1", int(url.rsplit(":", 1)[1]), SECRET).status()["rooms"]
    with app.app_context(), pytest.raises(relay.RelayUnavailable) as refused:
        relay.create_room(23, 2)
    assert refused.value.reason == reason
    assert refused.value.message.startswith("Der Medienserver ist nicht erreichbar.")
    assert "RELAY_SECRET" in caplog.text
    assert RelayClient("127.0.0.1", int(url.rsplit(":", 1)[1]), SECRET).status()["rooms"] == rooms_before


@pytest.mark.parametrize("call, args", [
    ("create_room", (5, 2)),
    ("join", ("appointment-5", "staff-1", "v=0\r\n")),
    ("leave", ("appointment-5", "staff-1")),
    ("status", ()),
])
def test_a_relay_that_is_down_is_unavailable(app_for, call, args):
    app = app_for(f"http://127.0.0.1:{free_port()}")
    with app.app_context(), pytest.raises(relay.RelayUnavailable) as down:
        getattr(relay, call)(*args)
    assert down.value.reason == "unreachable"
    assert str(down.value).startswith("Der Medienserver ist nicht erreichbar.")


@asynctest
async def test_a_full_relay_refuses_new_rooms_and_a_full_room_new_participants(tmp_path, app_for):
    with RelayProcess(tmp_path / "relay.log", RELAY_MAX_ROOMS="1") as one_room:
        app = app_for(one_room.url)
        room = await in_app(app, relay.create_room, 1, 2)
        with pytest.raises(relay.RelayFull) as full:
            await in_app(app, relay.create_room, 2, 2)
        assert full.value.reason == "relay_full"
        assert full.value.message.startswith("Der Medienserver ist ausgelastet.")

        # the answers are only read, not applied: nobody needs to connect here
        people = [SyntheticBrowser(name, slots=1) for name in ("a", "b", "c")]
        try:
            for person in people[:2]:
                await in_app(app, relay.join, room, person.key, await person.offer())
            with pytest.raises(relay.RelayFull) as full:
                await in_app(app, relay.join, room, "c", await people[2].offer())
            assert full.value.reason == "room_full"
            assert "größtmögliche Zahl" in full.value.message
        finally:
            for person in people:
                await person.close()


@asynctest
async def test_offers_the_relay_cannot_use_are_rejected_with_a_message(running, app_for):
    url, _ = running
    app = app_for(url)
    room = await in_app(app, relay.create_room, 31, 2)
    person = SyntheticBrowser("a", slots=1)
    try:
        av1 = re.sub(r"a=rtpmap:(\d+) VP8/90000", r"a=rtpmap:\1 AV1/90000", await person.offer())
        for sdp, reason, words in [("not sdp", "bad_offer", "Seite neu"),
                                   (av1, "unsupported_codec", "VP8 und Opus")]:
            with pytest.raises(relay.RelayRejected) as rejected:
                await in_app(app, relay.join, room, "a", sdp)
            assert rejected.value.reason == reason
            assert words in rejected.value.message
    finally:
        await person.close()
        await in_app(app, relay.leave, room, "a")


# ./run ----------------------------------------------------------------------------

@pytest.fixture
def checkout(tmp_path):
    """The repository with its own instance/ folder: symlinks to everything else, so
    ./run's development secret lands here and not in the developer's instance/."""
    root = tmp_path / "checkout"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("instance", ".git"):
            (root / entry.name).symlink_to(entry)
    return root


def start_run(checkout, tmp_path, **env):
    port, relay_port = free_port(), free_port()
    udp_min, udp_max = free_udp_range()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "FLASK_", "SPRECHZIMMER_"))}
    environ.update({
        "SKIP_INSTALL": "1", "PORT": str(port), "RELAY_CONTROL_PORT": str(relay_port),
        "RELAY_UDP_PORT_MIN": str(udp_min), "RELAY_UDP_PORT_MAX": str(udp_max),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}", "OUTBOX_DIR": str(tmp_path / "outbox"),
        "SECRET_KEY": "run-test-secret-key", "WEB_THREADS": "8", "WEB_CONNECTIONS": "8", **env,
    })
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        # its own session, so that a Ctrl-C (SIGINT to the group) reaches only it
        process = subprocess.Popen([str(checkout / "run")], env=environ, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return process, port, relay_port, log


def serves(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/login")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def test_run_starts_the_relay_beside_the_web_app_and_stops_all_three(checkout, tmp_path):
    """Started twice: stopped by TERM to ./run, then by Ctrl-C (SIGINT to its group)."""
    secret_file = checkout / "instance" / "relay_secret"
    for attempt, stop in (("first", "TERM"), ("second", "Ctrl-C")):
        process, port, relay_port, log = start_run(checkout, tmp_path)
        try:
            started = {}
            wait_until(lambda: serves(port), "./run serves the login page", UP_TIMEOUT, process=process, log=log)
            secret = secret_file.read_text().strip()
            assert len(secret) >= 32 and secret_file.stat().st_mode & 0o777 == 0o600
            if attempt == "first":
                first_secret = secret
            assert secret == first_secret  # generated once, then kept
            relay_client = RelayClient("127.0.0.1", relay_port, secret.encode())
            wait_until(lambda: answers(relay_client), "the relay answers with the secret", UP_TIMEOUT,
                       process=process, log=log)

            started = children(process.pid)
            kinds = {next(k for k in ("gunicorn", "media_relay", "outbox") if k in cmd): pid
                     for pid, cmd in started.items()}
            assert set(kinds) == {"gunicorn", "media_relay", "outbox"} and len(started) == 3, started
            web_env = environ_of(kinds["gunicorn"])
            assert web_env["RELAY_SECRET"] == secret
            assert web_env["RELAY_URL"] == f"http://127.0.0.1:{relay_port}"
            assert "demo@praxis.example" in log.read_text()
        finally:
            if stop == "TERM":
                process.send_signal(signal.SIGTERM)
            else:
                os.killpg(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)
            ended = process.poll() is not None
            still_there = [pid for pid in started if Path(f"/proc/{pid}").exists()]
            # a broken ./run must not leave anything behind (its own process group)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert ended, f"./run still running after {stop}\n{log.read_text()}"
        assert still_there == [], f"still running after {stop}: {still_there}\n{log.read_text()}"
        assert not serves(port) and not answers(relay_client)
        assert "shutting down" in log.read_text()  # the relay's own clean shutdown


def test_run_in_production_without_relay_secret_fails_loudly(checkout, tmp_path):
    process, port, relay_port, log = start_run(checkout, tmp_path, SPRECHZIMMER_ENV="production")
    assert process.wait(20) != 0
    output = log.read_text()
    assert "RELAY_SECRET is not set" in output
    assert "Demo-Praxis" not in output and not (checkout / "instance" / "relay_secret").exists()
