"""The practice's day of issue 11 in real Chromium: the patient opens the link, the
"Heute" board shows them in the waiting room within a second with the chime, staff send
a delay notice that the waiting room shows at once, the call, its end, and the record
with its duration."""
import re
import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.timeutil import to_local, utcnow
from tests.e2e.steps import open_panel, patient_waits, post_appointment, start_call
from tests.support.axe import assert_accessible

NAME = ("Tilda", "Tagesplan")
EMAIL = "tilda.tagesplan@example.org"
CHIMES = "window.e2eChimes = []; document.addEventListener('sprechzimmer:chime', (e) => window.e2eChimes.push(e.detail))"


def today_in_berlin(minutes=30):
    slot = to_local(utcnow() + timedelta(minutes=minutes), "Europe/Berlin")
    if slot.date() != to_local(utcnow(), "Europe/Berlin").date():
        pytest.skip("too close to midnight in Berlin for an appointment today")
    return slot.strftime("%Y-%m-%d"), slot.strftime("%H:%M")


def test_board_delay_call_and_record(logged_in, other_page, smtp, stack):
    staff, patient = logged_in("premium"), other_page
    day, clock = today_in_berlin()
    post_appointment(staff, stack, first_name=NAME[0], last_name=NAME[1], email=EMAIL, date=day, time=clock)
    link = smtp.invitation_link(EMAIL)

    appointment_id = open_panel(staff, " ".join(NAME))
    line = staff.locator("#board .board-line", has_text=" ".join(NAME))
    expect(line).to_contain_text("eingeladen")
    expect(staff.locator("html")).to_have_attribute("data-board-socket", "open")
    staff.evaluate(CHIMES)
    # The open panel keeps itself true without a reload: the delivery, and the consent
    # the patient gives below.
    state = staff.locator(f"#appointment-{appointment_id}-state")
    expect(state.locator('.delivery-state[data-channel="email"]')).to_have_attribute("data-status", "sent")
    consent = state.locator('.consent-state[data-who="patient"]')
    expect(consent).to_contain_text("noch nicht erteilt")

    patient_waits(patient, link)
    entered = time.monotonic()
    expect(line).to_contain_text(re.compile(r"im Wartezimmer seit \d\d:\d\d"), timeout=1000)
    assert time.monotonic() - entered <= 1.0
    staff.wait_for_function("() => window.e2eChimes.length === 1", timeout=1000)
    expect(staff).to_have_title(re.compile(r"^\(1\) Patienten"))
    expect(patient.locator(".appointment-time")).to_have_text(f"Ihr Termin beginnt um {clock} Uhr.")

    expect(consent).to_contain_text(re.compile(r"erteilt am \d\d\.\d\d\.\d{4}"))

    # The delay notice, picked in the panel, is in the waiting room at once.
    staff.locator(f"#appointment-{appointment_id}-delay").get_by_role("button", name="ca. 10 Min. später").click()
    expect(patient.locator("#delay-notice")).to_have_text("Ihr Termin beginnt ca. 10 Min. später.")
    expect(staff.locator(f"#appointment-{appointment_id}-delay")).to_contain_text("Der Patient sieht:")
    # The same from the board's line: a pick beside it, through the same route.
    expect(line).to_contain_text("Verspätung mitgeteilt")  # the board is as of the last pick
    pick = line.get_by_role("combobox", name=f"Verspätung mitteilen: {' '.join(NAME)}")
    expect(pick).to_have_value("10")
    assert_accessible(staff, "board with the delay pick")
    for box in (pick.bounding_box(), line.get_by_role("button", name="Mitteilen").bounding_box()):
        assert box["height"] >= 44 and box["width"] >= 44, box
    pick.select_option("15")
    line.get_by_role("button", name="Mitteilen").click()
    expect(patient.locator("#delay-notice")).to_have_text("Ihr Termin beginnt ca. 15 Min. später.")
    # (the patient may hear it before the staff's page has the answer: that form is next)
    staff.wait_for_function("() => !document.querySelector('#board .htmx-request')")
    expect(line.get_by_role("combobox")).to_have_value("15")
    # Or a text of the practice's own: its box shows only once "Eigener Hinweis …" is chosen.
    own = line.get_by_role("textbox", name=f"Eigener Hinweis an den Patienten: {' '.join(NAME)}")
    expect(own).to_be_hidden()
    line.get_by_role("combobox").select_option("text")
    expect(own).to_be_visible()
    assert own.bounding_box()["height"] >= 44
    assert_accessible(staff, "board with the own delay text")
    own.fill("Es dauert heute etwas länger.")
    # A live refresh of the board meanwhile (someone else's news) keeps what is being typed.
    staff.evaluate("""() => new Promise((done) => {
      document.addEventListener("htmx:afterSettle", (e) => { if (e.detail.elt.id === "board") done(); });
      htmx.trigger("#board", "board-changed");
    })""")
    expect(own).to_have_value("Es dauert heute etwas länger.")
    expect(line.get_by_role("combobox")).to_have_value("text")
    line.get_by_role("button", name="Mitteilen").click()
    expect(patient.locator("#delay-notice")).to_have_text("Es dauert heute etwas länger.")
    expect(own).to_have_value("Es dauert heute etwas länger.")

    start_call(staff, patient, " ".join(NAME))
    time.sleep(1.2)  # a call of a little more than a second
    staff.get_by_role("button", name="Auflegen").click()
    expect(patient.get_by_text("Die Videosprechstunde ist beendet.")).to_be_visible()

    staff.goto("/patienten")
    expect(line).to_contain_text("erledigt")
    open_panel(staff, " ".join(NAME))
    record = staff.locator(f"#appointment-{appointment_id}-record")
    expect(record).to_contain_text("Gesprächsprotokoll")
    expect(record.locator(".record-duration")).to_have_text(re.compile(r"^0:0[1-9] Min\.$"))
    expect(record).to_contain_text("Patient")


def test_call_page_headline_follows_the_patient_arriving(logged_in, other_page, smtp, stack):
    staff, patient = logged_in("premium"), other_page
    name = "Otto Ohnelink"
    post_appointment(staff, stack, first_name="Otto", last_name="Ohnelink", email="otto.ohnelink@example.org")
    link = smtp.invitation_link("otto.ohnelink@example.org")
    open_panel(staff, name)
    staff.get_by_role("button", name="Anruf starten").click()
    headline_away = staff.get_by_text("Der Patient ist nicht online.", exact=True)
    expect(headline_away).to_be_visible()
    expect(staff.get_by_text("Patient ist nicht online", exact=True)).to_be_visible()

    patient_waits(patient, link)
    # Headline and corner say the same: the patient is there now.
    expect(staff.get_by_text("Der Patient ist jetzt im Wartezimmer.")).to_be_visible()
    expect(headline_away).to_be_hidden()
    expect(staff.get_by_text("Patient ist online", exact=True)).to_be_visible()
    staff.get_by_role("button", name="Jetzt anrufen").click()
    expect(patient.get_by_role("dialog", name="Ihre Praxis ruft an")).to_be_visible()
