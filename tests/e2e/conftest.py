"""Real Chromium against the real app: gunicorn, the outbox sender and the media relay
(`python -m media_relay`, for group calls) as subprocesses, e-mails to a local
aiosmtpd. Later call tests reuse these fixtures.

Without /usr/bin/chromium the whole package skips with the reason; CI sets
REQUIRE_BROWSER=1 so that a missing browser fails instead.
"""
import http.client
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.servers import SmtpServer, free_port, free_udp_range

# A hang guard for process starts, not a speed check.
UP_TIMEOUT = 30

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic",
    # Together these also answer getDisplayMedia without a picker: the fake UI grants it
    # (without it the call waits for a picker nobody sees), the fake device supplies an
    # animated "screen" as large as the page's screen (without it headless Chromium has
    # nothing to capture: NotReadableError).
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    # Chromium hides its host candidates behind mDNS names (<uuid>.local) by default.
    # Another Chromium resolves them, the relay (aioice) does not: with plain IPs the
    # relay can answer the browser's loopback candidates.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
PASSWORD = "e2e-passwort-1"
PRACTICES = {
    "premium": ("Praxis Dr. Premium", "premium@praxis.example"),
    "standard": ("Praxis Dr. Standard", "standard@praxis.example"),
    "basis": ("Praxis Dr. Basis", "basis@praxis.example"),
}
LINK_RE = re.compile(r"https?://[^\s\"'<>]+/j/[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="session", autouse=True)
def _chromium_available():
    if os.path.exists(CHROMIUM):
        return
    reason = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (REQUIRE_BROWSER=1)")
    pytest.skip(reason)


class Mailbox(SmtpServer):
    """The SMTP server all e2e tests share: look mail up by recipient."""

    def mails_to(self, address, subject_contains="", count=1, timeout=10.0):
        """The e-mails to `address` with that subject, once there are `count` (or the time is up)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [m for m in self.messages if address in m["To"] and subject_contains in m["Subject"]]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    @staticmethod
    def text(message):
        return message.get_body(preferencelist=("plain",)).get_content()

    @classmethod
    def link(cls, message):
        links = set(LINK_RE.findall(cls.text(message)))
        assert len(links) == 1, f"expected one patient link, found {links}"
        return links.pop()


@pytest.fixture(scope="package")
def smtp():
    server = Mailbox().start()
    yield server
    server.stop()


class LiveServer:
    def __init__(self, base_url, env, log_dir):
        self.base_url = base_url
        self.env = env
        self.log_dir = log_dir
        self.practices = {tariff: {"name": name, "email": email, "password": PASSWORD}
                          for tariff, (name, email) in PRACTICES.items()}
        self.processes = []

    def flask(self, *args, check=True):
        """Run a flask CLI command against the same database and settings."""
        result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"flask {' '.join(args[:2])} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self, name, args):
        self.processes.append((name, self._spawn(name, args, "wb")))
        return self.processes[-1][1]

    def _spawn(self, name, args, mode):
        log = open(self.log_dir / f"{name}.log", mode)
        process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return process

    def log_tail(self, name, lines=30):
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def wait_until_up(self, web_port, timeout=UP_TIMEOUT):
        """Until the app and the relay accept connections (their sockets listen only once
        they are ready)."""
        waiting = {"web": web_port, "relay": urlsplit(self.env["RELAY_URL"]).port}
        deadline = time.monotonic() + timeout
        while waiting:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            for name, port in list(waiting.items()):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        del waiting[name]
                except OSError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise RuntimeError("no answer from " + ", ".join(
                    f"{name} on port {port}:\n{self.log_tail(name)}" for name, port in waiting.items()))
            if waiting:
                time.sleep(0.05)

    def relay(self):
        """A client of the relay's control interface (rooms as the relay sees them)."""
        from media_relay.client import RelayClient

        return RelayClient("127.0.0.1", urlsplit(self.env["RELAY_URL"]).port, self.env["RELAY_SECRET"].encode())

    def restart_relay(self, timeout=UP_TIMEOUT):
        """Kills the relay with SIGKILL (a crash: no room is closed, no peer told) and
        starts it again on the same control port and UDP range; returns the new process
        once its control interface answers. Its log goes on in the same file."""
        index = next(i for i, (name, _) in enumerate(self.processes) if name == "relay")
        old = self.processes[index][1]
        old.kill()
        old.wait()
        new = self._spawn("relay", ["media_relay"], "ab")
        self.processes[index] = ("relay", new)
        client = self.relay()
        client.timeout = 2
        deadline = time.monotonic() + timeout
        while True:
            if new.poll() is not None:
                raise RuntimeError(f"relay exited with {new.returncode} after the restart:\n{self.log_tail('relay')}")
            try:
                client.status()
                return new
            except (OSError, http.client.HTTPException) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"relay not answering after the restart ({exc!r}):\n"
                                       f"{self.log_tail('relay')}") from exc
            time.sleep(0.05)

    def stop(self):
        for _, process in reversed(self.processes):
            process.terminate()
        for _, process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_stack(smtp, tmp, port, base_url, **env_overrides):
    """gunicorn, outbox sender and relay on `port` with the three e2e practices, as ./run
    starts them; `base_url` is where the browsers reach the app (PUBLIC_BASE_URL)."""
    relay_port = free_port()
    # Five browsers take one bundled port each at the relay; room to spare for rejoins.
    udp_min, udp_max = free_udp_range(40, start=47000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VONAGE_", "FLASK_", "MAIL_", "RELAY_"))}
    env.update(
        FLASK_APP="wsgi.py",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=f"sqlite:///{tmp / 'e2e.db'}",
        SECRET_KEY="e2e-" + os.urandom(16).hex(),
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp.port),
        MAIL_TIMEOUT="5",
        PUBLIC_BASE_URL=base_url,
        OUTBOX_POLL_SECONDS="0.2",
        OUTBOX_DIR=str(tmp / "outbox"),
        # Every test logs in through the form; the product's 10 per minute would
        # make a growing suite trip over its own logins.
        LOGIN_RATE_LIMIT="200 per minute",
        # The relay as ./run starts it; the app and the relay share the secret.
        RELAY_SECRET="e2e-relay-" + os.urandom(16).hex(),
        RELAY_URL=f"http://127.0.0.1:{relay_port}",
        RELAY_CONTROL_PORT=str(relay_port),
        RELAY_UDP_PORT_MIN=str(udp_min),
        RELAY_UDP_PORT_MAX=str(udp_max),
        RELAY_BIND_IP="127.0.0.1",
    )
    env.update(env_overrides)
    server = LiveServer(base_url, env, tmp)
    server.flask("db", "upgrade")
    try:
        # Exactly as ./run starts it: one process (the signalling hub lives in it), threads.
        server.start("web", ["gunicorn", "--workers", "1", "--worker-class", "gthread", "--threads", "64",
                             "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", "wsgi:app"])
        server.start("outbox", ["flask", "outbox", "work"])
        server.start("relay", ["media_relay"])
        # Each CLI run starts the app anew; side by side they cost the time of one.
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda item: server.flask(
                "practice", "create", "--name", item[1]["name"], "--tariff", item[0], "--email", item[1]["email"],
                "--staff-name", "Dr. E2E", "--password", PASSWORD), server.practices.items()))
        server.wait_until_up(port)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def live_server(smtp, tmp_path_factory):
    port = free_port()
    with running_stack(smtp, tmp_path_factory.mktemp("live"), port, f"http://127.0.0.1:{port}") as server:
        yield server


# Package, not session: while sync Playwright runs, its event loop counts as running in
# this thread, and every later asyncio.run() (the relay tests) would fail.
@pytest.fixture(scope="package")
def playwright(_chromium_available):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class PageWatch:
    """What a page did that the user would not see: console errors, failed loads, foreign hosts."""

    def __init__(self, page):
        self.console_errors = []
        self.requests = []
        self.broken = []
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        page.on("pageerror", lambda exc: self.console_errors.append(f"uncaught: {exc}"))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on("response", self._response)

    def _response(self, response):
        # Pages and HTMX answers carry 4xx on purpose (422 form, 404 link); a script,
        # style or image that fails to load is a defect.
        kind = response.request.resource_type
        if response.status >= 500 or (response.status >= 400 and kind not in ("document", "fetch", "xhr")):
            self.broken.append(f"{response.status} {kind} {urlsplit(response.url).path}")

    def unexpected_console_errors(self):
        # Chromium reports every 4xx answer as "Failed to load resource"; those are
        # judged by status in _response. Everything else (CSP, script errors) counts.
        return [text for text in self.console_errors
                if not re.match(r"Failed to load resource: the server responded with a status of 4\d\d", text)]

    def foreign_hosts(self):
        return sorted({urlsplit(url).hostname for url in self.requests
                       if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname != "127.0.0.1"})


def new_page(browser, live_server):
    context = browser.new_context(base_url=live_server.base_url, locale="de-DE", timezone_id="Europe/Berlin",
                                  viewport={"width": 1024, "height": 768}, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.watch = PageWatch(page)
    return context, page


def check_watch(watch, who="page"):
    assert not watch.unexpected_console_errors(), f"{who}: console errors: {watch.unexpected_console_errors()}"
    assert not watch.broken, f"{who}: failed loads: {watch.broken}"
    assert not watch.foreign_hosts(), f"{who}: requests left 127.0.0.1: {watch.foreign_hosts()}"


def _checked_page(browser, live_server):
    context, page = new_page(browser, live_server)
    yield page
    context.close()
    check_watch(page.watch)


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context per test (tablet-sized, German); checked after the test
    for console errors, broken loads and requests leaving 127.0.0.1."""
    yield from _checked_page(browser, live_server)


@pytest.fixture
def other_page(browser, live_server):
    """A second, independent context, e.g. the patient opening a link; checked the same way."""
    yield from _checked_page(browser, live_server)


@pytest.fixture
def more_pages(browser, live_server):
    """more_pages() -> one more independent context's page (group calls need up to five);
    all are closed and checked like `page` after the test."""
    opened = []

    def open_page():
        context, page = new_page(browser, live_server)
        opened.append((context, page))
        return page

    yield open_page
    for context, _ in opened:
        context.close()
    for number, (_, page) in enumerate(opened, 1):
        check_watch(page.watch, f"page {number}")


def login(page, email, password=PASSWORD):
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("E-Mail").fill(email)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Patienten", level=1)).to_be_visible()


@pytest.fixture
def logged_in(page, live_server):
    """login(tariff="premium") -> the page, logged in as that practice's staff member."""

    def do(tariff="premium"):
        login(page, live_server.practices[tariff]["email"])
        return page

    return do
