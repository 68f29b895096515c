"""The call on every screen (issue 11), measured in real Chromium: the patient's video at
full size on a laptop, the whole toolbar on an iPad in landscape whatever notice shows,
phone labels and greyed-out buttons that say why, the chat as a sheet, Enter sends; a
patient whose browser refused the camera, and "Nur Ton", by hand and offered on a bad
line. One call for all of it."""
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.steps import (add_participant, gives_consent, guest_joins, guest_key, guest_link, invite,
                             open_panel, patient_waits, start_call)
from tests.support.axe import assert_accessible
from tests.support.chromium import checked_pages, launch
from tests.support.faults import Lossy, need_faults
from tests.support.page_media import tile

# A phone's browser: no screen sharing there.
NO_SCREEN_SHARING = "delete MediaDevices.prototype.getDisplayMedia;"

# Every notice the staff page can show during a call, shown at once.
EVERY_NOTICE = """() => {
  const call = document.getElementById('call');
  const notice = document.getElementById('call-notice');
  notice.textContent = 'Der Patient wird um Erlaubnis für das Bildschirmfoto gebeten …';
  notice.hidden = false;
  document.querySelectorAll('[data-relay-note]').forEach((el) => { el.hidden = false; });
  call.dataset.socket = 'reconnecting';
}"""

VIDEO_SENDER_TRACK = """() => {
  const sender = window.sprechzimmerCall.pc.getSenders().find((s) => s.track ? s.track.kind === 'video' : true);
  return sender && sender.track ? sender.track.readyState : null;
}"""


@pytest.fixture
def camera_refused(playwright, stack):
    """open_page(**options) in a Chromium that refuses what a context did not grant."""
    browser = launch(playwright, "--deny-permission-prompts", fake_ui=False)
    yield from checked_pages(browser, stack.base_url)
    browser.close()


def box(locator):
    b = locator.bounding_box()
    assert b, f"{locator} has no box"
    return b


def inside(page, locator):
    b, view = box(locator), page.viewport_size
    return b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= view["width"] + 0.5 \
        and b["y"] + b["height"] <= view["height"] + 0.5


def refused_camera_device_check(patient, link):
    """The link, the device check without camera permission: this browser's instructions
    only; Weiter warns first, then leads to the waiting room."""
    patient.goto(link)
    gives_consent(patient)
    denied = patient.get_by_role("alert").filter(has_text="Der Zugriff auf Kamera und Mikrofon wurde nicht erlaubt.")
    expect(denied).to_be_visible()
    expect(denied.locator("li:visible")).to_have_count(1)
    expect(denied.locator("li:visible")).to_contain_text("Chrome und Edge")
    patient.get_by_role("link", name="Weiter zum Wartezimmer").click()
    warning = patient.get_by_text("Ohne Kamera kann Ihre Praxis Sie nicht sehen")
    expect(warning).to_be_visible()
    expect(warning).to_be_focused()
    assert_accessible(patient, "device check, camera refused")
    patient.get_by_role("link", name="Trotzdem ohne Kamera weiter").click()
    expect(patient.get_by_text("Ihre Praxis ruft Sie gleich an")).to_be_visible()
    expect(patient.locator("#call")).to_have_attribute("data-socket", "open")


def test_call_fits_every_screen(logged_in, camera_refused, smtp, stack):
    staff = logged_in("premium")  # 1024x768, an iPad in landscape
    # A laptop whose user allowed the microphone and blocked the camera.
    patient = camera_refused(viewport=(1280, 800), permissions=["microphone"], init_script=NO_SCREEN_SHARING)
    link = invite(staff, stack, smtp, "Lena", "Layout", "lena.layout@example.org")
    refused_camera_device_check(patient, link)
    start_call(staff, patient, "Lena Layout")

    # The practice reads that the camera was refused, not that the patient switched it off.
    expect(staff.get_by_text("Kamera nicht freigegeben", exact=True)).to_be_visible()
    expect(staff.get_by_text("Die Kamera des Patienten ist aus.")).to_be_hidden()
    expect(patient.locator("#call-notice")).to_contain_text("Die Kamera ist nicht freigegeben")
    camera = patient.get_by_role("button", name="Kamera aus")
    expect(camera).to_have_attribute("aria-disabled", "true")

    # Laptop: the practice's video takes the patient's screen, the toolbar stays on it.
    video = patient.locator("#remote-video")
    assert box(video)["width"] >= 0.8 * 1280, box(video)

    assert inside(patient, patient.get_by_role("button", name="Auflegen"))

    # iPad landscape: every notice at once, and still the whole toolbar on screen.
    staff.evaluate(EVERY_NOTICE)
    for button in staff.get_by_role("toolbar").get_by_role("button").all():
        assert inside(staff, button), f"{button.get_attribute('aria-label')}: {box(button)}"
    staff.evaluate("() => { document.getElementById('call').dataset.socket = 'open'; }")

    # Chat: Enter sends, Shift+Enter is a new line, the box keeps the focus.
    patient.get_by_role("button", name="Chat", exact=True).click()
    text = patient.get_by_label("Nachricht")
    expect(text).to_be_focused()
    text.press_sequentially("Erste Zeile")
    text.press("Shift+Enter")
    text.press_sequentially("zweite Zeile")
    expect(text).to_have_value("Erste Zeile\nzweite Zeile")
    text.press("Enter")
    expect(staff.locator("#chat-messages")).to_contain_text("zweite Zeile")
    expect(patient.get_by_label("Nachricht")).to_have_value("")
    expect(patient.get_by_label("Nachricht")).to_be_focused()
    patient.get_by_role("button", name="Chat schließen").click()

    # Phone: short labels and tooltips, greyed-out buttons say why, the practice's name
    # shows, the chat is a sheet over the video.
    patient.set_viewport_size({"width": 390, "height": 844})
    expect(patient.get_by_role("heading", name=stack.practices["premium"]["name"], level=1)).to_be_in_viewport()
    for button in patient.get_by_role("toolbar").get_by_role("button").all():
        label = button.locator(".tool-label")
        expect(label).to_be_visible()
        assert button.get_attribute("title"), button.get_attribute("aria-label")
    share = patient.get_by_role("button", name="Bildschirm teilen")
    expect(share).to_have_attribute("aria-disabled", "true")
    expect(share).to_have_attribute("title", re.compile("auf Telefonen nicht möglich"))
    share.click(force=True)  # a finger can tap it; Playwright will not "click" an aria-disabled button
    expect(patient.locator("#call-notice")).to_have_text("Bildschirm teilen ist auf Telefonen nicht möglich.")

    assert inside(patient, patient.get_by_role("button", name="Auflegen"))
    patient.get_by_role("button", name="Chat", exact=True).click()
    sheet, stage = box(patient.locator("#call-chat")), box(patient.locator("#remote-video"))
    assert sheet["y"] < stage["y"] + stage["height"] and sheet["y"] + sheet["height"] >= 844 - 1, (sheet, stage)
    patient.get_by_role("button", name="Chat schließen").click()
    expect(patient.locator("#call-chat")).to_be_hidden()

    # Nur Ton: the practice stops sending its picture; the patient is told why.
    nur_ton = staff.get_by_role("button", name="Nur Ton")
    nur_ton.click()
    expect(nur_ton).to_have_attribute("aria-pressed", "true")
    expect(patient.get_by_text("Nur Ton: Ihr Gegenüber sendet kein Bild.")).to_be_visible()
    expect(patient.get_by_text("Die Kamera der Praxis ist aus.")).to_be_hidden()
    staff.wait_for_function(f"() => ({VIDEO_SENDER_TRACK})() === null")
    nur_ton.click()
    expect(nur_ton).to_have_attribute("aria-pressed", "false")
    expect(patient.get_by_text("Nur Ton: Ihr Gegenüber sendet kein Bild.")).to_be_hidden()
    staff.wait_for_function(f"() => ({VIDEO_SENDER_TRACK})() === 'live'")

    # A line that stays bad: the practice's page offers Nur Ton by itself (the patient has
    # no picture to stop). Real loss: a share of the patient's media packets is dropped.
    need_faults()
    offer = staff.get_by_role("alert").filter(has_text="Die Verbindung ist seit einer Weile schlecht.")
    with Lossy(patient, percent=15):
        expect(staff.locator("#call-quality")).to_have_attribute("data-level", "poor", timeout=20_000)
        expect(offer).to_be_visible(timeout=30_000)
        offer.get_by_role("button", name="Nur Ton").click()
        expect(offer).to_be_hidden()
        expect(nur_ton).to_have_attribute("aria-pressed", "true")
        expect(patient.get_by_text("Nur Ton: Ihr Gegenüber sendet kein Bild.")).to_be_visible()


def test_a_group_member_without_camera_permission_is_shown_as_such(logged_in, other_page, camera_refused,
                                                                   smtp, stack):
    """In a group call the others' tiles say "Kamera nicht freigegeben" for a guest whose
    browser refused the camera, not "Kamera aus"."""
    staff, patient = logged_in("premium"), other_page
    guest = camera_refused(permissions=["microphone"])
    link = invite(staff, stack, smtp, "Greta", "Gruppentest", "greta.gruppentest@example.org")
    appointment_id = open_panel(staff, "Greta Gruppentest")
    assert add_participant(staff, appointment_id, "Olaf", "Ohnekamera", "olaf.ohnekamera@example.org").status == 201
    key = guest_key(staff, appointment_id, "Olaf Ohnekamera")
    patient_waits(patient, link)
    refused_camera_device_check(guest, guest_link(smtp, "olaf.ohnekamera@example.org"))
    start_call(staff, patient, "Greta Gruppentest")
    guest_joins(guest)
    for page in (staff, patient):
        olaf = tile(page, key)
        expect(olaf).to_have_attribute("data-flag", "camera-blocked", timeout=20_000)
        expect(olaf).to_have_attribute("data-camera", "off")
        expect(olaf.get_by_text("Kamera nicht freigegeben", exact=True)).to_be_visible()
        expect(olaf.get_by_text("Kamera aus", exact=True)).to_be_hidden()
    staff.locator('[data-action="hangup"]').click()
    expect(staff.get_by_text("Der Anruf ist beendet.")).to_be_visible()

