"""Accessibility in real Chromium (issue 11): axe-core finds no violation on any page of
the product, in German and in English; the browser's language picks the first language;
the keyboard reaches everything (skip link, the call toolbar's arrow keys, the search hits)."""
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.steps import gives_consent, invite, login, open_panel, settled
from tests.support.axe import assert_accessible

# What each language calls the same things.
WORDS = {
    "de-DE": {"patients": "Patienten", "form": "Termin erstellen", "chat": "Chat mit", "invalid": "Dieser Link ist nicht",
              "ended_staff": "Der Anruf ist beendet.", "ended_patient": "Die Videosprechstunde ist beendet.",
              "search": "Eingeladene Personen suchen", "skip": "Zum Inhalt springen", "hangup": "Auflegen"},
    "en-GB": {"patients": "Patients", "form": "Create appointment", "chat": "Chat with", "invalid": "This link is not",
              "ended_staff": "The call has ended.", "ended_patient": "The video consultation has ended.",
              "search": "Search invited people", "skip": "Skip to content", "hangup": "Hang up"},
}


@pytest.mark.parametrize("locale", ["de-DE", "en-GB"])
def test_practice_pages_pass_axe_in_both_languages(more_pages, stack, smtp, locale):
    page, words = more_pages(locale=locale), WORDS[locale]
    first = {"de-DE": "Alma", "en-GB": "Anne"}[locale]
    page.goto("/login")
    # The browser's language chose the page's.
    expect(page.locator("html")).to_have_attribute("lang", locale[:2])
    assert_accessible(page, "login")
    login(page, stack.practices["premium"]["email"], heading=words["patients"])
    invite(page, stack, smtp, first, "Axt", f"{first}.axt@example.org".lower())
    page.goto("/patienten")
    assert_accessible(page, "Patienten list")
    # The first Tab on a page reaches the skip link, which shows itself and leads into the page.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name=words["skip"])
    expect(skip).to_be_focused()
    assert skip.bounding_box()["y"] >= 0
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    page.get_by_role("link", name=words["form"], exact=True).click()
    settled(page)
    expect(page.locator("#appointment-form")).to_be_visible()
    assert_accessible(page, "appointment form")
    page.get_by_label(words["search"]).press_sequentially(f"{first} Axt")
    hit = page.get_by_role("option", name=re.compile(f"{first} Axt"))
    expect(hit).to_be_visible()
    assert_accessible(page, "search hits")
    # The keyboard picks a hit: ArrowDown into the list, Enter fills the contact fields.
    page.keyboard.press("ArrowDown")
    expect(hit).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#appointment-form [name=first_name]")).to_have_value(first)
    expect(page.locator(".search-hit")).to_have_count(0)

    page.goto("/patienten")
    page.locator("#patient-list").get_by_role("link", name=re.compile(f"{first} Axt")).click()
    appointment = page.locator(".patient-panel .appointment")
    expect(appointment).to_have_count(1)
    settled(page)
    assert_accessible(page, "panel")
    appointment_id = int(appointment.get_attribute("id").rsplit("-", 1)[1])

    page.goto(f"/chat/{appointment_id}")
    expect(page.get_by_role("heading", name=re.compile(words["chat"]))).to_be_visible()
    assert_accessible(page, "chat page")
    page.goto(f"/anruf/{appointment_id}")
    expect(page.locator("#call")).to_have_attribute("data-socket", "open")
    assert_accessible(page, "staff call page")
    assert page.goto("/patienten/kontakte/999999").status == 404
    assert_accessible(page, "error page")
    assert page.goto("/j/not-a-token").status == 404
    expect(page.get_by_role("heading", name=re.compile(words["invalid"]))).to_be_visible()
    assert_accessible(page, "invalid link")
    # The admin's pages and the operator's legal pages (issue 12).
    for path in ("/einstellungen", "/praxis/protokoll", "/praxis/konten", "/impressum", "/datenschutz", "/nutzungsbedingungen"):
        assert page.goto(path).status == 200, path
        assert_accessible(page, path)
    page.goto("/patienten")
    page.locator("#patient-list").get_by_role("link", name=re.compile(f"{first} Axt")).click()
    page.locator(".data-rights a.btn-danger").click()
    expect(page.locator(".patient-panel form.confirm")).to_be_visible()
    settled(page)
    assert_accessible(page, "erase contact, asked first")


def ring_and_accept(staff, patient, appointment_id):
    """Anruf from the staff call page, Annehmen on the patient's: by data-action, in any language."""
    staff.goto(f"/anruf/{appointment_id}")
    expect(staff.locator("#call")).to_have_attribute("data-peer-online", "true")
    staff.locator('#call-status [data-action="ring"]:visible').click()
    patient.locator('#ring-dialog [data-action="accept"]').click()
    for page in (staff, patient):
        page.wait_for_function("() => window.sprechzimmerCall.state === 'connected'")


def toolbar_takes_arrow_keys(page):
    """One Tab stop; the arrows, Home and End move along the bar (and round)."""
    toolbar = page.get_by_role("toolbar")
    first, last = toolbar.locator('[data-action="camera"]'), toolbar.locator('[data-action="hangup"]')
    first.focus()
    page.keyboard.press("ArrowRight")
    expect(toolbar.locator('[data-action="mic"]')).to_be_focused()
    page.keyboard.press("End")
    expect(last).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(first).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(last).to_be_focused()
    expect(toolbar.locator('button[tabindex="0"]')).to_have_count(1)
    page.keyboard.press("Home")
    expect(first).to_be_focused()


@pytest.mark.parametrize("staff_locale, patient_locale", [("de-DE", "en-GB"), ("en-GB", "de-DE")])
def test_call_pages_pass_axe_and_the_toolbar_takes_arrow_keys(more_pages, stack, smtp, staff_locale, patient_locale):
    staff, patient = more_pages(locale=staff_locale), more_pages(locale=patient_locale)
    first = {"de-DE": "Carla", "en-GB": "Chris"}[staff_locale]
    login(staff, stack.practices["premium"]["email"], heading=WORDS[staff_locale]["patients"])
    link = invite(staff, stack, smtp, first, "Call", f"{first}.call@example.org".lower())
    appointment_id = open_panel(staff, f"{first} Call")

    patient.goto(link)
    gives_consent(patient)
    expect(patient.locator("#dc-ok")).to_be_visible()
    assert_accessible(patient, "device check")
    patient.locator("#dc-continue").click()
    expect(patient.locator("#call")).to_have_attribute("data-socket", "open")
    assert_accessible(patient, "waiting room")

    ring_and_accept(staff, patient, appointment_id)
    assert_accessible(staff, "staff call page in a call")
    assert_accessible(patient, "patient call page in a call")
    toolbar_takes_arrow_keys(staff)
    patient.get_by_role("toolbar").locator('[data-action="chat"]').click()
    expect(patient.locator("#call-chat")).to_be_visible()
    assert_accessible(patient, "patient call page with the chat open")

    # Auflegen by keyboard.
    staff.get_by_role("button", name=WORDS[staff_locale]["hangup"]).focus()
    staff.keyboard.press("Enter")
    expect(staff.get_by_text(WORDS[staff_locale]["ended_staff"])).to_be_visible()
    expect(patient.get_by_role("heading", name=WORDS[patient_locale]["ended_patient"])).to_be_visible()
    assert_accessible(staff, "staff call page, ended")
    assert_accessible(patient, "patient call page, ended")


# Counts the page's camera and microphone requests (per document).
COUNT_MEDIA_REQUESTS = """
window.mediaRequests = 0;
if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
  const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => { window.mediaRequests += 1; return ask(constraints); };
}
"""
CONSENT_WORDS = {
    "de-DE": {"heading": "Datenschutzhinweise zur Videosprechstunde", "tick": "Bitte setzen Sie das Häkchen",
              "withdraw": "Einwilligung widerrufen", "confirm": "Ja, Einwilligung widerrufen",
              "withdrawn": "Sie haben Ihre Einwilligung widerrufen."},
    "en-GB": {"heading": "Data protection notice for the video consultation", "tick": "Please tick the box",
              "withdraw": "Withdraw consent", "confirm": "Yes, withdraw my consent",
              "withdrawn": "You have withdrawn your consent."},
}


@pytest.mark.parametrize("locale", ["de-DE", "en-GB"])
def test_the_consent_comes_before_any_media_and_passes_axe(more_pages, stack, smtp, locale):
    staff, words = more_pages(), CONSENT_WORDS[locale]
    login(staff, stack.practices["premium"]["email"])
    first = {"de-DE": "Kira", "en-GB": "Kate"}[locale]
    link = invite(staff, stack, smtp, first, "Consent", f"{first}.consent@example.org".lower())
    patient = more_pages(locale=locale)
    patient.add_init_script(COUNT_MEDIA_REQUESTS)

    patient.goto(link)
    heading = patient.get_by_role("heading", name=words["heading"], level=1)
    expect(heading).to_be_focused()
    expect(patient.get_by_role("link", name=re.compile("Datenschutzerklärung|privacy policy"))).to_be_visible()
    assert_accessible(patient, "consent form")
    box = patient.locator("#consent .check label")
    button = patient.locator("#consent-submit")
    for target in (box, button):
        size = target.bounding_box()
        assert size["height"] >= 44 and size["width"] >= 44, size
    # Without the tick: the message beside the box, and still no camera or microphone asked for.
    button.click()
    expect(patient.get_by_text(words["tick"])).to_be_visible()
    checkbox = patient.locator("#consent input[type=checkbox]")
    expect(checkbox).to_be_focused()
    expect(checkbox).to_have_attribute("aria-describedby", "consent-error")
    assert_accessible(patient, "consent form with its error")
    assert patient.evaluate("window.mediaRequests") == 0

    checkbox.check()
    button.click()
    expect(patient.locator("#device-check")).to_be_visible()
    patient.wait_for_function("() => window.mediaRequests >= 1")
    patient.locator("#dc-continue").click()
    expect(patient.locator("#call")).to_have_attribute("data-socket", "open")

    # Withdrawing from the waiting room: asked once more, then the page says it happened.
    patient.get_by_text(words["withdraw"], exact=True).click()
    confirm = patient.get_by_role("button", name=words["confirm"])
    expect(confirm).to_be_visible()
    assert_accessible(patient, "waiting room, withdrawal asked")
    confirm.click()
    expect(patient.get_by_role("heading", name=words["withdrawn"])).to_be_visible()
    assert_accessible(patient, "consent withdrawn")
