"""Bearbeiten in real Chromium (issue 11): the panel's Bearbeiten opens the form in
place with the first field focused, a new time is saved, the panel shows it, and the
update e-mail with its calendar entry reaches the real SMTP server."""
from datetime import timedelta

from icalendar import Calendar
from playwright.sync_api import expect

from tests.e2e.steps import open_panel, post_appointment
from tests.support.forms import future_slot


def test_bearbeiten_changes_the_time_and_the_patient_gets_the_update(logged_in, smtp, stack):
    page = logged_in("basis")
    email = "bea.bearbeitet@example.org"
    day, _ = future_slot(days=6)
    post_appointment(page, stack, first_name="Bea", last_name="Bearbeitet", email=email, date=day, time="09:00")
    (invitation,) = smtp.mails_to(email, "Einladung")
    link = smtp.link(invitation)

    appointment_id = open_panel(page, "Bea Bearbeitet")
    appointment = page.locator(f"#appointment-{appointment_id}")
    appointment.get_by_role("link", name="Bearbeiten").click()
    form = page.locator(f"form#appointment-{appointment_id}")
    expect(form.get_by_role("heading", name="Termin bearbeiten")).to_be_visible()
    expect(form.get_by_label("Vorname")).to_be_focused()
    expect(form.get_by_label("Uhrzeit")).to_have_value("09:00")

    form.get_by_label("Uhrzeit").fill("14:30")
    form.get_by_role("button", name="Speichern").click()

    expect(page.locator("#toasts")).to_contain_text("Der Termin wurde geändert.")
    expect(page.locator(f"#appointment-{appointment_id} h3")).to_contain_text("um 14:30 Uhr")
    expect(page.locator(f"#appointment-row-{appointment_id}")).to_contain_text("14:30")

    (update,) = smtp.mails_to(email, "Termin geändert", timeout=20)
    assert "um 14:30 Uhr" in smtp.text(update)
    assert smtp.link(update) == link
    (attachment,) = list(update.iter_attachments())
    (event,) = Calendar.from_ical(attachment.get_content()).walk("VEVENT")
    (original,) = Calendar.from_ical(list(invitation.iter_attachments())[0].get_content()).walk("VEVENT")
    assert str(event["UID"]) == str(original["UID"])
    assert int(event["SEQUENCE"]) == int(original["SEQUENCE"]) + 1
    assert event.decoded("DTSTART") - original.decoded("DTSTART") == timedelta(hours=5, minutes=30)
