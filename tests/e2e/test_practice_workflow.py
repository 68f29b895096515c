"""The practice workflow of issue 2 in real Chromium: log in, Termin erstellen with an
earlier invited person, Einladen, the e-mail really leaves, the panel, Termin löschen."""
import re

from playwright.sync_api import expect

from tests.e2e.steps import CONSENT, einladen, open_form, post_appointment
from app.timeutil import to_local, utcnow
from tests.support.forms import future_slot

def local_today():
    return to_local(utcnow(), "Europe/Berlin").date()


INVALID_LINK = "Dieser Link ist nicht (mehr) gültig."
INFOBOX = "Ihr Termin wurde erfolgreich erstellt. Die Einladung wird jetzt versendet."


def test_invite_earlier_contact_then_delete(logged_in, other_page, smtp, stack):
    page = logged_in("premium")
    erika = {"first_name": "Erika", "last_name": "Mustermann", "email": "erika.mustermann@example.org"}
    post_appointment(page, stack, **erika)
    assert len(smtp.mails_to(erika["email"], "Einladung")) == 1

    # The form opens in place: the URL follows (hx-push-url), the page stays the same.
    page.evaluate("window.e2eSamePage = true")
    open_form(page)
    expect(page).to_have_url(re.compile(r"/patienten/termin-erstellen$"))
    # Focus goes where the user starts: the form's first field.
    expect(page.get_by_label("Eingeladene Personen suchen")).to_be_focused()
    assert page.evaluate("window.e2eSamePage === true")

    page.get_by_label("Eingeladene Personen suchen").press_sequentially("Mus")
    page.get_by_role("option", name=re.compile("Erika Mustermann")).click()
    expect(page.get_by_label("Vorname")).to_have_value("Erika")
    expect(page.get_by_label("Nachname")).to_have_value("Mustermann")
    expect(page.get_by_label("E-Mail", exact=True)).to_have_value(erika["email"])
    expect(page.get_by_label("Sprache der Nachrichten")).to_have_value("de")
    expect(page.locator(".search-hit")).to_have_count(0)

    day, _ = future_slot(days=5)
    assert einladen(page, date=day, time="11:30", duration="30").status == 201

    expect(page.locator(".infobox")).to_contain_text(INFOBOX)
    appointment_id = page.locator("[id^='appointment-created-']").get_attribute("id").rsplit("-", 1)[1]

    # The toast comes only once the sender has handed the e-mail to SMTP, so it is there now.
    toast = page.locator("#toasts .toast", has_text="Einladungs-E-Mail wurde versendet.")
    expect(toast).to_be_visible()
    invitations = smtp.mails_to(erika["email"], "Einladung", timeout=0)
    assert len(invitations) == 2
    invitation = smtp.text(invitations[-1])
    assert "um 11:30 Uhr" in invitation
    link = smtp.link(invitations[-1])
    assert link.startswith(stack.base_url + "/j/")
    box = toast.bounding_box()
    assert box["x"] + box["width"] > 1024 - 40 and box["y"] < 100, f"toast not top right: {box}"

    # The list refreshed by itself: a new row for the new appointment, still the same page.
    row = page.locator(f"#appointment-row-{appointment_id}")
    expect(row).to_contain_text("Erika Mustermann")
    # After Einladen, focus lands on the new entry of the list.
    expect(row.get_by_role("link")).to_be_focused()
    expect(page.locator("#patient-list").get_by_text("Erika Mustermann")).to_have_count(2)
    assert page.evaluate("window.e2eSamePage === true")

    # The patient's link works until the appointment goes.
    response = other_page.goto(link)
    assert response.ok, response.status
    expect(other_page.get_by_role("heading", level=1)).to_be_visible()
    expect(other_page.get_by_text(INVALID_LINK)).to_have_count(0)

    row.get_by_role("link").click()
    appointment = page.locator(f"#appointment-{appointment_id}")
    expect(appointment).to_contain_text("um 11:30 Uhr")
    for name in ("Anruf starten", "Chat", "Termin löschen"):
        action = appointment.get_by_role("link", name=name, exact=True).or_(
            appointment.get_by_role("button", name=name, exact=True))
        expect(action).to_be_visible()

    appointment.get_by_role("link", name="Termin löschen").click()
    expect(appointment.get_by_text("Termin wirklich löschen?")).to_be_visible()
    appointment.get_by_role("button", name="Ja, Termin löschen").click()
    expect(appointment).to_have_count(0)
    expect(row).to_have_count(0)
    # Only this appointment went; the earlier one stays.
    expect(page.locator("#panel .appointment")).to_have_count(1)
    expect(page.locator("#patient-list").get_by_text("Erika Mustermann")).to_have_count(1)
    assert page.evaluate("window.e2eSamePage === true")

    cancellations = smtp.mails_to(erika["email"], "Termin abgesagt")
    assert len(cancellations) == 1
    assert "um 11:30 Uhr" in smtp.text(cancellations[0])

    response = other_page.goto(link)
    assert response.status == 404
    expect(other_page.get_by_role("heading", name=INVALID_LINK)).to_be_visible()

    # The server and sender logs hold ids only.
    logs = stack.log_tail("web", lines=10_000) + stack.log_tail("outbox", lines=10_000)
    assert "sent" in logs  # the sender did log its deliveries
    for secret in (erika["email"], erika["last_name"], link.rsplit("/", 1)[1]):
        assert secret not in logs


def test_empty_form_shows_german_errors_beside_fields(logged_in):
    page = logged_in("basis")
    rows_before = page.locator("#patient-list li").count()
    open_form(page)
    # Basis has no SMS: the box is off and says why.
    sms = page.get_by_label("Einladung per SMS versenden")
    expect(sms).to_be_disabled()
    expect(sms).to_have_accessible_description("SMS-Einladungen sind in den Tarifen Standard und Premium enthalten.")

    # Datum starts at today in the practice's zone (Europe/Berlin).
    expect(page.get_by_label("Datum", exact=True)).to_have_value(local_today().isoformat())
    page.get_by_label("Datum", exact=True).fill("")
    assert einladen(page, consent=False).status == 422
    # Focus on the first field with an error.
    expect(page.get_by_label("Vorname")).to_be_focused()

    errors = {
        "Vorname": "Bitte geben Sie den Vornamen ein.",
        "Nachname": "Bitte geben Sie den Nachnamen ein.",
        "E-Mail": "Bitte geben Sie die E-Mail-Adresse ein.",
        "Datum": "Bitte wählen Sie ein Datum.",
        "Uhrzeit": "Bitte geben Sie eine Uhrzeit ein, z. B. 09:30.",
        CONSENT: "Ohne Einwilligung kann keine Einladung verschickt werden.",
    }
    for label, message in errors.items():
        field = page.get_by_label(label, exact=True)
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_accessible_description(message)
        # Beside the field: in the same field box, right under it.
        expect(page.locator(".field", has=field).locator(".error")).to_have_text(message)
    expect(page.get_by_label("Voraussichtliche Dauer (Minuten)")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator(".infobox")).to_have_count(0)

    # What the user typed stays after the next attempt.
    page.get_by_label("Vorname").fill("Max")
    page.get_by_role("button", name="Einladen").click()
    expect(page.get_by_label("Nachname")).to_have_accessible_description("Bitte geben Sie den Nachnamen ein.")
    expect(page.get_by_label("Vorname")).to_have_value("Max")
    expect(page.get_by_label("Vorname")).not_to_have_attribute("aria-invalid", "true")

    page.reload()
    expect(page.get_by_role("heading", name="Patienten", level=1)).to_be_visible()
    assert page.locator("#patient-list li").count() == rows_before


def test_no_request_leaves_the_machine(logged_in):
    page = logged_in("premium")
    open_form(page)
    with page.expect_response(lambda r: "/patienten/suche" in r.url):
        page.get_by_label("Eingeladene Personen suchen").press_sequentially("Mu")
    requests = page.watch.requests
    assert any("/static/vendor/htmx" in url for url in requests)
    assert any("/patienten/suche" in url for url in requests)
    assert page.watch.foreign_hosts() == []


TARGETS = "a, button, summary, [role=option], label:has(input[type=checkbox])"


def small_targets(page):
    small = []
    for element in page.locator(TARGETS).all():
        if not element.is_visible():
            continue
        box = element.bounding_box()
        if box["width"] < 44 or box["height"] < 44:
            label = (element.inner_text() or element.get_attribute("aria-label") or "").strip()[:40]
            small.append(f"{label!r} {box['width']:.0f}x{box['height']:.0f}")
    return small


def test_touch_targets_are_finger_sized(logged_in, stack):
    page = logged_in("premium")
    post_appointment(page, stack, first_name="Tamara", last_name="Tippfeld", email="tamara.tippfeld@example.org")
    page.reload()
    checked = page.locator(TARGETS).count()
    assert checked > 3
    assert small_targets(page) == []

    open_form(page)
    page.get_by_label("Eingeladene Personen suchen").press_sequentially("Tip")
    expect(page.get_by_role("option", name=re.compile("Tamara Tippfeld"))).to_be_visible()
    assert small_targets(page) == []

    page.locator("#patient-list").get_by_role("link", name=re.compile("Tamara Tippfeld")).first.click()
    page.get_by_role("link", name="Termin löschen").first.click()
    expect(page.get_by_role("button", name="Ja, Termin löschen")).to_be_visible()
    assert small_targets(page) == []
