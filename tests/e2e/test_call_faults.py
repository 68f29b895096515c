"""A 1:1 call survives real network cuts (issue 9): one page loses its network for real
(tests/support/faults.py: its ICE ports dropped by nftables, its websocket offline), the
other page keeps it; after the restore both pages decode the other's frames again
within 5 s, without a click. Meanwhile the pages say the truth: no "Verbunden" over a
frozen picture."""
import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.steps import invite, login, patient_waits, start_call
from tests.support.chromium import new_page
from tests.support.faults import Cut, media_back, media_stalled, need_faults
from tests.support.ports import free_port
from tests.support.stack import running_stack

RECOVERY_SECONDS = 5.0
RECONNECTING = "reconnecting"


@pytest.fixture(autouse=True)
def _faults_possible():
    need_faults()


def cut_and_restore(staff, patient, who, seconds):
    """Cuts `who` (a page) for `seconds`; seconds from restore to frames both ways."""
    with Cut(who) as cut:
        started = time.monotonic()
        assert media_stalled([staff, patient]), "the cut did not stop the media"
        # True status: within 3 s of the picture freezing, no page says "Verbunden".
        for page in (staff, patient):
            page.wait_for_function(f"() => window.sprechzimmerCall.state === '{RECONNECTING}'",
                                   timeout=3_000)
        expect(staff.locator("#call-status")).to_contain_text("Verbindung unterbrochen")
        expect(staff.locator("#call-status").get_by_text("Verbunden", exact=True)).to_be_hidden()
        expect(staff.locator("#call-quality .quality-text")).to_have_text("Verbindung unterbrochen")
        remaining = seconds - (time.monotonic() - started)
        if remaining > 0:
            staff.wait_for_timeout(remaining * 1000)
        restored = cut.restore()
    took = media_back([staff, patient], restored)
    print(f"\n{who is patient and 'patient' or 'staff'} cut {seconds} s: frames both ways "
          f"{'never' if took is None else f'{took:.2f} s'} after the restore")
    return took


def in_call(logged_in, other_page, smtp, stack, name):
    staff, patient = logged_in("standard"), other_page
    first, last = name.split()
    link = invite(staff, stack, smtp, first, last, f"{first.lower()}.{last.lower()}@example.org")
    patient_waits(patient, link)
    start_call(staff, patient, name)
    assert media_back([staff, patient], time.monotonic(), timeout=15) is not None
    return staff, patient


def back_and_true(staff, patient, took):
    assert took is not None and took <= RECOVERY_SECONDS, \
        f"frames both ways {took} s after the restore (goal {RECOVERY_SECONDS} s)"
    for page in (staff, patient):
        page.wait_for_function("() => window.sprechzimmerCall.state === 'connected'", timeout=3_000)
    expect(staff.locator("#call-status").get_by_text("Verbunden", exact=True)).to_be_visible()
    expect(staff.locator("#call-quality .quality-text")).to_have_text(
        re.compile("^Verbindung: (gut|mittel)$"))
    expect(staff.locator("#call-status").get_by_text("Verbindung unterbrochen")).to_be_hidden()
    expect(staff.locator("#call-quality .quality-text")).not_to_have_text("Verbindung unterbrochen")


def test_patient_cut_40s_comes_back(logged_in, other_page, smtp, stack):
    staff, patient = in_call(logged_in, other_page, smtp, stack, "Petra Netzausfall")
    back_and_true(staff, patient, cut_and_restore(staff, patient, patient, 40))


def test_staff_cut_20s_comes_back(logged_in, other_page, smtp, stack):
    staff, patient = in_call(logged_in, other_page, smtp, stack, "Stefan Praxisausfall")
    back_and_true(staff, patient, cut_and_restore(staff, patient, staff, 20))


# -- a cut longer than the call waits (CALL_LOST_SECONDS; 300 in production) ----------

LOST_AFTER = 10


@pytest.fixture(scope="module")
def impatient_stack(smtp, tmp_path_factory):
    port = free_port()
    with running_stack(smtp, tmp_path_factory.mktemp("impatient"), port, f"http://127.0.0.1:{port}",
                       CALL_LOST_SECONDS=str(LOST_AFTER)) as running:
        yield running


def test_cut_longer_than_the_call_waits_ends_it_for_both(browser, impatient_stack, smtp):
    stack = impatient_stack
    staff_context, staff = new_page(browser, stack.base_url)
    patient_context, patient = new_page(browser, stack.base_url)
    try:
        login(staff, stack.practices["standard"]["email"])
        link = invite(staff, stack, smtp, "Lena", "Langausfall", "lena.langausfall@example.org")
        patient_waits(patient, link)
        start_call(staff, patient, "Lena Langausfall")
        assert media_back([staff, patient], time.monotonic(), timeout=15) is not None
        lost = "Die Verbindung war zu lange unterbrochen. Das Gespräch wurde beendet."
        with Cut(patient):
            # Both pages give up on their own; staff's hang-up reaches the server.
            expect(staff.get_by_text("Der Anruf ist beendet.")).to_be_visible(
                timeout=(LOST_AFTER + 8) * 1000)
            expect(staff.locator("#call-notice")).to_have_text(lost)
            expect(staff.get_by_role("button", name="Erneut anrufen").last).to_be_visible()
            expect(patient.get_by_role("heading", name="Die Videosprechstunde ist beendet.")) \
                .to_be_visible(timeout=8_000)
        # Back online, the patient's page learns from the server that the call is over.
        expect(patient.locator("#call")).to_have_attribute("data-socket", "open")
        ended = patient.get_by_role("heading", name="Die Videosprechstunde ist beendet.")
        expect(ended).to_be_visible()
        expect(patient.locator("#call-notice")).to_have_text(lost)
        assert patient.evaluate("window.sprechzimmerCall.pc") is None
    finally:
        staff_context.close()
        patient_context.close()
