"""What the people at the practice and at home do, step by step in Chromium, each
waiting for what the user would see: every browser test is written in these."""
import re

from playwright.sync_api import expect

from tests.support.forms import appointment_form
from tests.support.stack import PASSWORD

CONSENT = "Der Nutzer hat eingewilligt, SMS- und E-Mail-Nachrichten von mir zu erhalten"


# -- the practice -------------------------------------------------------------------

def login(page, email, password=PASSWORD):
    page.goto("/login")
    page.get_by_label("E-Mail").fill(email)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Patienten", level=1)).to_be_visible()


def post_appointment(page, stack, **fields):
    """An appointment made with the staff page's own session and CSRF token, as the
    form's request (appointment_form with these fields)."""
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(f"{stack.base_url}/patienten/termine", form=appointment_form(**fields),
                                 headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status == 201, response.text()


def invite(page, stack, smtp, first_name, last_name, email):
    """An appointment for this person (post_appointment); the link from the e-mail."""
    post_appointment(page, stack, first_name=first_name, last_name=last_name, email=email)
    return smtp.invitation_link(email)


def open_form(page):
    page.get_by_role("link", name="Termin erstellen", exact=True).click()
    expect(page.get_by_role("heading", name="Termin erstellen")).to_be_visible()
    # htmx wires the swapped-in form only once it settled: typing earlier (a test can,
    # a person cannot) would never trigger the search.
    page.wait_for_function("() => !document.querySelector('.htmx-added, .htmx-settling')")


FORM_LABELS = {"first_name": "Vorname", "last_name": "Nachname", "email": "E-Mail", "date": "Datum",
               "time": "Uhrzeit", "duration": "Voraussichtliche Dauer (Minuten)"}


def einladen(page, consent=True, **fields):
    """In the open Termin erstellen form: types the fields given (by their German
    labels), gives the consent and clicks Einladen; the server's answer."""
    for name, value in fields.items():
        page.get_by_label(FORM_LABELS[name], exact=name == "email").fill(value)
    if consent:
        page.get_by_label(CONSENT).check()
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/patienten/termine")) as answer:
        page.get_by_role("button", name="Einladen").click()
    return answer.value


def open_panel(staff, full_name):
    """The patient's panel in the Patienten page; the id of its (only) appointment."""
    staff.goto("/patienten")
    staff.locator("#patient-list").get_by_role("link", name=re.compile(full_name)).click()
    appointment = staff.locator(".patient-panel .appointment")
    expect(appointment).to_have_count(1)
    return int(appointment.get_attribute("id").rsplit("-", 1)[1])


def add_participant(staff, appointment_id, first_name, last_name, email):
    """Fills the panel's "Teilnehmer hinzufügen" form; the HTTP response."""
    form = staff.locator(f"#appointment-{appointment_id}-participant-form")
    form.get_by_label("Vorname").fill(first_name)
    form.get_by_label("Nachname").fill(last_name)
    form.get_by_label("E-Mail", exact=True).fill(email)
    form.get_by_label(CONSENT).check()
    with staff.expect_response(lambda r: r.request.method == "POST"
                               and r.url.endswith(f"/termine/{appointment_id}/teilnehmer")) as answer:
        form.get_by_role("button", name="Teilnehmer hinzufügen").click()
    return answer.value


def guest_key(staff, appointment_id, full_name):
    """The relay key of a participant, from the panel."""
    item = staff.locator(f"#appointment-{appointment_id}-participants .participant", has_text=full_name)
    return "guest-" + item.get_attribute("id").rsplit("-", 1)[1]


def guest_link(smtp, email):
    return smtp.invitation_link(email, "Einladung zur Videosprechstunde")


def start_call(staff, patient, full_name):
    """Staff opens the patient and clicks Anruf starten; the patient accepts."""
    staff.goto("/patienten")
    staff.locator("#patient-list").get_by_role("link", name=re.compile(full_name)).click()
    # The camera icon top right follows the selected patient.
    expect(staff.get_by_role("button", name=f"Videosprechstunde mit {full_name} starten")).to_be_visible()
    staff.get_by_role("button", name="Anruf starten").click()
    expect(staff).to_have_url(re.compile(r"/anruf/\d+$"))
    expect(staff.get_by_text("Es klingelt beim Patienten …")).to_be_visible()

    ring = patient.get_by_role("dialog", name="Ihre Praxis ruft an")
    expect(ring).to_be_visible()
    ring.get_by_role("button", name="Annehmen").click()
    expect(ring).to_be_hidden()
    for page in (staff, patient):
        page.wait_for_function("() => window.sprechzimmerCall.state === 'connected'")


# -- the patient and the guests ---------------------------------------------------------

def patient_waits(patient, link):
    """The link from the e-mail, the device check, then the waiting room (its socket open)."""
    patient.goto(link)
    expect(patient).to_have_url(re.compile(r"/sprechstunde/geraetetest$"))
    # The fake microphone beeps: the level meter hears it, the preview shows the camera.
    expect(patient.get_by_text("Alles in Ordnung: Kamera und Mikrofon funktionieren.")).to_be_visible()
    patient.wait_for_function("() => document.getElementById('dc-preview').videoWidth > 0")
    expect(patient.get_by_label("Kamera", exact=True)).to_have_count(1)
    patient.get_by_role("link", name="Weiter zum Wartezimmer").click()
    expect(patient.get_by_text("Ihre Praxis ruft Sie gleich an")).to_be_visible()
    expect(patient.locator("#call")).to_have_attribute("data-socket", "open")


def guest_joins(guest):
    """The guest's waiting room rings once the call runs; Annehmen joins it."""
    ring = guest.locator("#ring-dialog")
    expect(ring).to_be_visible()
    ring.locator('[data-action="accept"]').click()
    expect(ring).to_be_hidden()


def in_relay_mode(page):
    """The page runs the call through the relay, and says so."""
    page.wait_for_function("() => window.sprechzimmerCall && window.sprechzimmerCall.mode === 'relay'")
    expect(page.locator("#call")).to_have_attribute("data-mode", "relay")
    note = page.locator("[data-relay-note]")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Medienserver der Praxis")
