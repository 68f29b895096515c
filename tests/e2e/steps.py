"""What the people at the practice and at home do, step by step in Chromium, each
waiting for what the user would see: every browser test is written in these."""
import re

from playwright.sync_api import expect

from tests.support.forms import appointment_form
from tests.support.page_media import sees_members
from tests.support.stack import PASSWORD

CONSENT = "Der Nutzer hat eingewilligt, SMS- und E-Mail-Nachrichten von mir zu erhalten"


# -- the practice -------------------------------------------------------------------

def login(page, email, password=PASSWORD, heading="Patienten"):
    """Logs in by the form's labels, German or English (the browser's language picks)."""
    page.goto("/login")
    page.get_by_label(re.compile("^(E-Mail|Email)$")).fill(email)
    page.get_by_label(re.compile("^(Passwort|Password)$")).fill(password)
    page.get_by_role("button", name=re.compile("^(Anmelden|Log in)$")).click()
    expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()


def invite_colleague(page, first_name, last_name, email, role):
    """Konten (the admin's tab): Konto einladen with these fields; waits for the new
    account in the list."""
    page.get_by_role("link", name="Konten", exact=True).click()
    expect(page.get_by_role("heading", name="Konten der Praxis", level=1)).to_be_visible()
    form = page.locator("#invite-form")
    form.get_by_label("Vorname").fill(first_name)
    form.get_by_label("Nachname").fill(last_name)
    form.get_by_label("E-Mail").fill(email)
    form.get_by_label("Rolle").select_option(label=role)
    form.get_by_role("button", name="Einladen").click()
    row = page.locator("#accounts li", has_text=email)
    expect(row).to_contain_text("Einladung offen")
    settled(page)
    return row


def open_password_link(page, smtp, email, count=1):
    """The colleague opens the set-password link of the e-mail (the latest of ``count``)."""
    mail = smtp.mails_to(email, "Passwort festlegen", count=count)[-1]
    (link,) = set(re.findall(r"https?://\S+/konto/passwort/[A-Za-z0-9_-]{43}",
                             mail.get_body(("plain",)).get_content()))
    page.goto(link)
    expect(page.get_by_role("heading", name="Passwort festlegen", level=1)).to_be_visible()
    return link


def choose_password(page, password):
    """On the set-password page: the password twice, then the login page says it is set."""
    page.get_by_label("Neues Passwort").fill(password)
    page.get_by_label("Passwort wiederholen").fill(password)
    page.get_by_role("button", name="Passwort speichern").click()
    expect(page.get_by_text("Ihr Passwort ist gesetzt.")).to_be_visible()


def post_appointment(page, stack, **fields):
    """An appointment made with the staff page's own session and CSRF token, as the
    form's request (appointment_form with these fields)."""
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(f"{stack.base_url}/patienten/termine", form=appointment_form(**fields),
                                 headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status == 201, response.text()


def invite(page, stack, smtp, first_name, last_name, email):
    """An appointment for this person (post_appointment); the link from its own e-mail.
    The SMTP server lives for the whole session: an earlier module may have invited the
    same address (then the first mail to it led to that module's stopped stack)."""
    before = len(smtp.mails_to(email, "Einladung", count=0))
    post_appointment(page, stack, first_name=first_name, last_name=last_name, email=email)
    return smtp.invitation_link(email, count=before + 1)


def open_form(page):
    page.get_by_role("link", name="Termin erstellen", exact=True).click()
    expect(page.get_by_role("heading", name="Termin erstellen")).to_be_visible()
    # htmx wires the swapped-in form only once it settled: typing earlier (a test can,
    # a person cannot) would never trigger the search.
    settled(page)


def settled(page):
    """Until htmx has swapped, settled and wired what it last brought in."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-added, .htmx-settling, .htmx-swapping, .htmx-request')")


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


def add_participant(staff, appointment_id, first_name, last_name, email, role=None):
    """Fills the panel's "Teilnehmer hinzufügen" form (``role``: a "Rolle im Gespräch" as
    the list words it); the HTTP response."""
    # The section swaps itself after each addition; filling the old form while htmx
    # settles the new one sent it empty (422 under load in CI).
    settled(staff)
    form = staff.locator(f"#appointment-{appointment_id}-participant-form")
    form.get_by_label("Vorname").fill(first_name)
    form.get_by_label("Nachname").fill(last_name)
    form.get_by_label("E-Mail", exact=True).fill(email)
    if role:
        form.get_by_label("Rolle im Gespräch").select_option(label=role)
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

def gives_consent(page):
    """On the device check the data protection notice comes first: tick the box and
    "Einverstanden, weiter zur Technikprüfung". A person who consented before (on another
    device, or through an earlier link) goes straight to the device check. Ids, not
    labels: the page may be in English."""
    expect(page).to_have_url(re.compile(r"/sprechstunde/geraetetest$"))
    if page.locator("#consent").count():  # the page is loaded: the server decided
        page.locator("#consent input[type=checkbox]").check()
        page.locator("#consent-submit").click()
    expect(page.locator("#device-check")).to_be_visible()


def patient_waits(patient, link):
    """The link from the e-mail, the consent and the device check, then the waiting room
    (its socket open)."""
    patient.goto(link)
    gives_consent(patient)
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


# -- a group call ---------------------------------------------------------------------

def group_call(stack, smtp, staff, patient, guests, patient_name, guest_people):
    """Staff invite the patient and the guests, call the patient and the guests take the
    running call: everybody on the relay, seeing and hearing everybody else. Returns
    (appointment id, {key: page}, {key: name})."""
    first, last = patient_name.split()
    link = invite(staff, stack, smtp, first, last, f"{first}.{last}@example.org".lower())
    appointment_id = open_panel(staff, patient_name)
    names = {"staff": stack.practices["premium"]["name"], "patient": patient_name}
    pages = {"staff": staff, "patient": patient}
    for guest, (first, last) in zip(guests, guest_people):
        email = f"{first}.{last}@example.org".lower()
        assert add_participant(staff, appointment_id, first, last, email).status == 201
        key = guest_key(staff, appointment_id, f"{first} {last}")
        names[key], pages[key] = f"{first} {last}", guest
        patient_waits(guest, guest_link(smtp, email))
    patient_waits(patient, link)
    start_call(staff, patient, patient_name)
    for guest in guests:
        guest_joins(guest)
    for page in pages.values():
        in_relay_mode(page)
    for own, page in pages.items():
        sees_members(page, {k: names[k] for k in pages if k != own})
    return appointment_id, pages, names


# A browser without frame transforms (an old one): added to its context before any page.
NO_FRAME_TRANSFORMS = """delete window.RTCRtpScriptTransform;
delete RTCRtpSender.prototype.createEncodedStreams;
delete RTCRtpReceiver.prototype.createEncodedStreams;"""


def allow_unencrypted_group_calls(admin, allow):
    """Einstellungen → Gruppengespräche: let browsers without frame encryption in, or not."""
    admin.goto("/einstellungen")
    admin.get_by_label("Browser ohne Ende-zu-Ende-Verschlüsselung in Gruppengespräche lassen").set_checked(allow)
    admin.get_by_role("button", name="Speichern").click()
    expect(admin.get_by_text("Die Einstellungen wurden gespeichert.")).to_be_visible()
