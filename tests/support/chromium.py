"""Real Chromium for the browser tests (tests/e2e) and bench/call_latency.py: how it is
started, a fresh German tablet-sized context per person, and what a page did that the
user would not see."""
import re
from urllib.parse import urlsplit

from tests.support.machine import CHROMIUM

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


def launch(playwright, *extra_args, fake_ui=True):
    """Chromium with the fake devices; fake_ui=False leaves out the fake permission prompt
    that grants everything (with "--deny-permission-prompts": what a context did not grant
    is refused, as when a user clicks Block)."""
    args = [a for a in CHROMIUM_ARGS if fake_ui or a != "--use-fake-ui-for-media-stream"]
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*args, *extra_args])


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

    def foreign_hosts(self, own=("127.0.0.1",)):
        return sorted({urlsplit(url).hostname for url in self.requests
                       if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in own})


def new_page(browser, base_url, has_touch=True, timeout=10_000, init_script=None, locale="de-DE",
             viewport=(1024, 768), permissions=None):
    """A fresh context (German, Berlin, 1024x768) and its page, watched (``page.watch``).
    locale sets the browser's language (Accept-Language); permissions, where given, are the
    only ones the context grants (e.g. ["microphone"]: the camera is refused)."""
    context = browser.new_context(base_url=base_url, locale=locale, timezone_id="Europe/Berlin",
                                  viewport={"width": viewport[0], "height": viewport[1]}, has_touch=has_touch)
    if permissions is not None:
        context.grant_permissions(permissions)
    context.set_default_timeout(timeout)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.watch = PageWatch(page)
    return context, page


def check_watch(watch, who="page", own=("127.0.0.1",)):
    assert not watch.unexpected_console_errors(), f"{who}: console errors: {watch.unexpected_console_errors()}"
    assert not watch.broken, f"{who}: failed loads: {watch.broken}"
    assert not watch.foreign_hosts(own), f"{who}: requests left {own}: {watch.foreign_hosts(own)}"


def checked_pages(browser, base_url, own=("127.0.0.1",), **page_options):
    """For a fixture: yields open_page(**options) -> one more independent context's page
    (options as new_page's: locale, viewport, permissions); then closes them all and
    checks each (console, loads, no host but `own`)."""
    opened = []

    def open_page(**options):
        context, page = new_page(browser, base_url, **{**page_options, **options})
        opened.append((context, page))
        return page

    yield open_page
    for context, _ in opened:
        context.close()
    for number, (_, page) in enumerate(opened, 1):
        check_watch(page.watch, f"page {number}", own=own)


def keep_console(page):
    """Every console line of the page, for failure messages (call.js logs its steps)."""
    page.e2e_console = []
    page.on("console", lambda msg: page.e2e_console.append(f"{msg.type}: {msg.text}"))
    return page
