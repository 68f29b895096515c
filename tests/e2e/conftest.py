"""Real Chromium against the real app: gunicorn, the outbox sender and the media relay
as subprocesses (``stack``, tests/support/stack.py), e-mails to a local aiosmtpd.
Tests are written in the user's steps (tests/e2e/steps.py).

Without /usr/bin/chromium the whole package skips with the reason; CI sets
REQUIRE_BROWSER=1 so that a missing browser fails instead.
"""
import pytest

from tests.e2e.steps import login
from tests.support.chromium import check_watch, checked_pages, launch, new_page
from tests.support.fakes import SmtpServer
from tests.support.machine import need_chromium
from tests.support.stack import local_stack


@pytest.fixture(scope="session", autouse=True)
def _chromium_available():
    need_chromium()


@pytest.fixture(scope="package")
def smtp():
    """The SMTP server all e2e tests share: look mail up by recipient."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def stack(smtp, tmp_path_factory):
    with local_stack(smtp, tmp_path_factory.mktemp("live")) as running:
        yield running


# Package, not session: while sync Playwright runs, its event loop counts as running in
# this thread, and every later asyncio.run() (the relay tests) would fail.
@pytest.fixture(scope="package")
def playwright(_chromium_available):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright):
    browser = launch(playwright)
    yield browser
    browser.close()


def _checked_page(browser, stack):
    context, page = new_page(browser, stack.base_url)
    yield page
    context.close()
    check_watch(page.watch)


@pytest.fixture
def page(browser, stack):
    """A fresh browser context per test (tablet-sized, German); checked after the test
    for console errors, broken loads and requests leaving 127.0.0.1."""
    yield from _checked_page(browser, stack)


@pytest.fixture
def other_page(browser, stack):
    """A second, independent context, e.g. the patient opening a link; checked the same way."""
    yield from _checked_page(browser, stack)


@pytest.fixture
def more_pages(browser, stack):
    """more_pages() -> one more independent context's page (group calls need up to five);
    all are closed and checked like `page` after the test."""
    yield from checked_pages(browser, stack.base_url)


@pytest.fixture
def logged_in(page, stack):
    """logged_in(tariff="premium") -> the page, logged in as that practice's staff member."""

    def do(tariff="premium"):
        login(page, stack.practices[tariff]["email"])
        return page

    return do
