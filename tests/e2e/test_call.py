"""The video consultation of issue 3 in real Chromium, two browser contexts with fake
camera and microphone: the link from the e-mail, device check, waiting room, ringing,
the call with its toolbar, chat, screen sharing by tariff, hang up, deleting the link."""
import re

from playwright.sync_api import expect

from tests.e2e.steps import invite, patient_waits, start_call
from tests.support.page_media import remote_video_plays

INVALID_LINK = "Dieser Link ist nicht (mehr) gültig."
RULES = "Bitte stellen Sie zu Beginn alle Anwesenden vor. Das Gespräch darf nicht aufgezeichnet werden."

# The candidate types of the pair the call runs on.
SELECTED_PAIR = """async () => {
  const stats = await window.sprechzimmerCall.pc.getStats();
  const byId = new Map();
  stats.forEach((r) => byId.set(r.id, r));
  for (const r of byId.values()) {
    if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") {
      const local = byId.get(r.localCandidateId), remote = byId.get(r.remoteCandidateId);
      return [local.candidateType, remote.candidateType, remote.address || remote.ip];
    }
  }
  return null;
}"""


def test_call_premium(logged_in, other_page, smtp, stack):
    staff, patient = logged_in("premium"), other_page
    link = invite(staff, stack, smtp, "Paula", "Premiumpatientin", "paula.premium@example.org")
    patient_waits(patient, link)
    start_call(staff, patient, "Paula Premiumpatientin")
    for page in (staff, patient):  # KBV Anlage 31b, at the start of every call
        expect(page.locator("#call-notice")).to_have_text(RULES)

    for page in (staff, patient):
        remote_video_plays(page)
        # Browser to browser: both ends of the pair are this machine's own host
        # candidates; no relay (TURN) and no server of ours carries the media.
        local_type, remote_type, address = page.evaluate(SELECTED_PAIR)
        assert (local_type, remote_type) == ("host", "host")
        assert address != "" and not address.startswith("0.")
    expect(staff.get_by_text("Verbunden")).to_be_visible()
    # The quality indicator has read getStats (loopback: round trip and loss are tiny).
    expect(staff.locator("#call-quality")).to_have_attribute("data-level", re.compile("^(good|fair)$"))
    expect(staff.locator("#call-quality .quality-text")).to_have_text(re.compile("^Verbindung: (gut|mittel)$"))

    # Each control is a real button with a German name, large enough for a finger.
    toolbar = staff.get_by_role("toolbar", name="Steuerung der Videosprechstunde")
    for name in ("Kamera aus", "Mikrofon stumm", "Bildschirm teilen", "Chat", "Minimieren", "Kamera wechseln",
                 "Bildschirmfoto", "Vollbild", "Auflegen"):
        button = toolbar.get_by_role("button", name=name, exact=True)
        box = button.bounding_box()
        assert box["width"] >= 44 and box["height"] >= 44, name
    expect(patient.get_by_role("button", name="Bildschirmfoto")).to_have_count(0)

    # Camera off and mute on one side show on the other.
    camera = staff.get_by_role("button", name="Kamera aus")
    camera.click()
    expect(camera).to_have_attribute("aria-pressed", "true")
    expect(patient.get_by_text("Die Kamera der Praxis ist aus.")).to_be_visible()
    camera.click()
    expect(camera).to_have_attribute("aria-pressed", "false")
    expect(patient.get_by_text("Die Kamera der Praxis ist aus.")).to_be_hidden()
    patient.get_by_role("button", name="Mikrofon stumm").click()
    expect(staff.get_by_text("Das Mikrofon des Patienten ist stumm.")).to_be_visible()
    remote_video_plays(patient)

    # Chat: opened on both sides, a message from the patient appears on both.
    for page in (staff, patient):
        page.get_by_role("button", name="Chat", exact=True).click()
        expect(page.get_by_role("button", name="Chat", exact=True)).to_have_attribute("aria-pressed", "true")
    patient.get_by_label("Nachricht").fill("Guten Tag, ich bin bereit.")
    patient.get_by_role("button", name="Senden").click()
    for page in (staff, patient):
        expect(page.locator("#chat-messages").get_by_text("Guten Tag, ich bin bereit.")).to_have_count(1)
    expect(patient.get_by_label("Nachricht")).to_have_value("")

    # Screenshot: the patient is asked first; the picture stays on the practice's device.
    staff.get_by_role("button", name="Bildschirmfoto").click()
    consent = patient.get_by_role("dialog", name="Bildschirmfoto erlauben?")
    expect(consent).to_be_visible()
    with staff.expect_download() as download:
        consent.get_by_role("button", name="Erlauben", exact=True).click()
    assert download.value.suggested_filename.endswith(".png")
    with open(download.value.path(), "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    expect(patient.get_by_text("Ein Bildschirmfoto wurde aufgenommen.")).to_be_visible()

    # Screen sharing is in Premium: the staff page sends its screen instead of the camera.
    share = staff.get_by_role("button", name="Bildschirm teilen")
    share.click()
    expect(share).to_have_attribute("aria-pressed", "true")
    expect(patient.locator("#call")).to_have_attribute("data-remote-screen", "true")
    remote_video_plays(patient)
    share.click()
    expect(share).to_have_attribute("aria-pressed", "false")
    expect(patient.locator("#call")).to_have_attribute("data-remote-screen", "false")

    # Minimise: Picture-in-Picture, or the small floating view where there is none.
    minimise = staff.get_by_role("button", name="Minimieren")
    minimise.click()
    expect(minimise).to_have_attribute("aria-pressed", "true")
    minimise.click()
    expect(minimise).to_have_attribute("aria-pressed", "false")

    staff.get_by_role("button", name="Auflegen").click()
    expect(staff.get_by_text("Der Anruf ist beendet.")).to_be_visible()
    expect(patient.get_by_role("heading", name="Die Videosprechstunde ist beendet.")).to_be_visible()
    for page in (staff, patient):
        assert page.evaluate("window.sprechzimmerCall.pc") is None


def test_call_basis_refuses_screen_sharing_and_deleting_kills_the_link(logged_in, other_page, smtp, stack):
    staff, patient = logged_in("basis"), other_page
    link = invite(staff, stack, smtp, "Bernd", "Basispatient", "bernd.basis@example.org")
    patient_waits(patient, link)
    # A reload keeps the patient in the waiting room.
    patient.reload()
    expect(patient.get_by_text("Ihre Praxis ruft Sie gleich an")).to_be_visible()
    # So does a brief network loss: the socket comes back by itself.
    call = patient.locator("#call")
    patient.context.set_offline(True)
    expect(call).to_have_attribute("data-socket", "reconnecting")
    patient.context.set_offline(False)
    expect(call).to_have_attribute("data-socket", "open")
    start_call(staff, patient, "Bernd Basispatient")
    remote_video_plays(staff)

    share = staff.get_by_role("button", name="Bildschirm teilen")
    share.click()
    expect(staff.get_by_text("Bildschirm teilen ist im Tarif Premium enthalten.")).to_be_visible()
    expect(share).to_have_attribute("aria-pressed", "false")
    patient.get_by_role("button", name="Bildschirm teilen").click()
    expect(patient.get_by_text("Bildschirm teilen ist im Tarif Premium enthalten.")).to_be_visible()

    # The patient reloads during the call: both pages connect again on their own (the
    # staff page with a new peer connection, since the patient's page is a new one).
    staff.evaluate("() => { window.e2eOldPc = window.sprechzimmerCall.pc; }")
    patient.reload()
    staff.wait_for_function("() => window.sprechzimmerCall.pc !== window.e2eOldPc")
    for page in (staff, patient):
        page.wait_for_function("() => window.sprechzimmerCall.state === 'connected'")
        remote_video_plays(page)

    # The patient hangs up this time.
    patient.get_by_role("button", name="Auflegen").click()
    expect(patient.get_by_role("heading", name="Die Videosprechstunde ist beendet.")).to_be_visible()
    expect(staff.get_by_text("Der Anruf ist beendet.")).to_be_visible()

    staff.goto("/patienten")
    staff.locator("#patient-list").get_by_role("link", name=re.compile("Bernd Basispatient")).click()
    staff.get_by_role("link", name="Termin löschen").click()
    staff.get_by_role("button", name="Ja, Termin löschen").click()
    expect(patient.get_by_role("heading", name="Dieser Termin wurde abgesagt.")).to_be_visible()

    response = patient.goto(link)
    assert response.status == 404
    expect(patient.get_by_role("heading", name=INVALID_LINK)).to_be_visible()


def test_staff_sees_patient_offline_resends_the_link_and_is_declined(logged_in, other_page, smtp, stack):
    staff, patient = logged_in("basis"), other_page
    email = "olga.offline@example.org"
    first_link = invite(staff, stack, smtp, "Olga", "Offline", email)
    staff.goto("/patienten")
    staff.locator("#patient-list").get_by_role("link", name=re.compile("Olga Offline")).click()
    staff.get_by_role("button", name="Anruf starten").click()
    expect(staff.get_by_text("Der Patient ist nicht online.")).to_be_visible()
    expect(staff.get_by_text("Patient ist nicht online", exact=True)).to_be_visible()

    staff.get_by_role("button", name="Link erneut senden").click()
    expect(staff.get_by_text("Die Einladung wird erneut gesendet.", exact=False)).to_be_visible()
    new_link = smtp.invitation_link(email, count=2)
    assert new_link != first_link

    patient_waits(patient, new_link)
    expect(staff.get_by_text("Patient ist online", exact=True)).to_be_visible()
    # The headline follows the patient's arrival (issue 11): no longer "nicht online".
    expect(staff.get_by_text("Der Patient ist jetzt im Wartezimmer.")).to_be_visible()
    expect(staff.get_by_text("Der Patient ist nicht online.")).to_be_hidden()
    staff.get_by_role("button", name="Jetzt anrufen").click()
    ring = patient.get_by_role("dialog", name="Ihre Praxis ruft an")
    ring.get_by_role("button", name="Ablehnen").click()
    expect(ring).to_be_hidden()
    expect(staff.get_by_text("Der Patient hat den Anruf abgelehnt.")).to_be_visible()
    expect(patient.get_by_text("Ihre Praxis ruft Sie gleich an")).to_be_visible()
    # Declined, the patient's camera is off again.
    patient.wait_for_function("() => !document.getElementById('local-video').srcObject")
