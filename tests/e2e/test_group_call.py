"""Premium group calls through the media relay in real Chromium: staff, patient and up
to three guests, each in an own browser context with fake camera and microphone,
joined through their links from the e-mails; a real `python -m media_relay` forwards
the media (docs/signalling.md, "Group calls through the media relay").

What the browsers receive is read from getStats of each page's one relay peer
connection; window.sprechzimmerCall.slots says whose media arrives on which m-line."""
import re

import pytest
from playwright.sync_api import expect

from media_relay.client import RelayRefused
from tests.e2e.steps import (
    add_participant, guest_joins, guest_key, guest_link, in_relay_mode, invite, login, open_panel, patient_waits,
    start_call,
)
from tests.support.axe import assert_accessible
from tests.support.chromium import keep_console
from tests.support.page_media import assert_media, measure, report, sees_members, tile

FULL_MESSAGE = ("Es können höchstens 5 Personen an einem Anruf teilnehmen: Sie, der Patient und 3 weitere. "
                "Entfernen Sie zuerst einen Teilnehmer.")
TARIFF_MESSAGE = "Weitere Teilnehmer einladen ist im Tarif Premium enthalten."
GUEST_TARIFF_MESSAGE = "Der Tarif der Praxis erlaubt keine weiteren Personen in diesem Anruf."


def everyone_in_the_call(pages, names, stack, appointment_id, label):
    """Every page on the relay with a named tile per other member, the relay holding
    them all, and video and audio arriving from each other member on every page."""
    for page in pages.values():
        in_relay_mode(page)
    for own, page in pages.items():
        sees_members(page, {k: names[k] for k in pages if k != own})
    room = stack.relay.client().room(f"appointment-{appointment_id}")
    assert sorted(p["participant"] for p in room["participants"]) == sorted(pages)
    figures = measure(pages)
    report(label, figures)
    assert_media(figures, {own: [k for k in pages if k != own] for own in pages})


def test_premium_group_call_through_the_relay(logged_in, other_page, more_pages, smtp, stack):
    staff, patient = keep_console(logged_in("premium")), keep_console(other_page)
    guests = [keep_console(more_pages()) for _ in range(3)]
    link = invite(staff, stack, smtp, "Gerda", "Gruppenpatientin", "gerda.gruppe@example.org")
    appointment_id = open_panel(staff, "Gerda Gruppenpatientin")

    # Three further people fit in Premium (five with staff and patient); a fourth is
    # refused by the server with the reason beside the form.
    people = [("Ida", "Dolmetscherin", "ida.dolmetsch@example.org"),
              ("Tom", "Angehöriger", "tom.angehoerig@example.org"),
              ("Lea", "Kollegin", "lea.kollegin@example.org")]
    roles = ["Dolmetscher/in", "Angehörige/r", "Kollegin/Kollege"]
    for (first, last, email), role in zip(people, roles):
        assert add_participant(staff, appointment_id, first, last, email, role).status == 201
    expect(staff.get_by_role("heading", name="Weitere Teilnehmer (3/3)")).to_be_visible()
    refused = add_participant(staff, appointment_id, "Udo", "Zuviel", "udo.zuviel@example.org")
    assert refused.status == 409
    expect(staff.locator(f"#appointment-{appointment_id}-participant-error")).to_have_text(FULL_MESSAGE)
    expect(staff.locator(f"#appointment-{appointment_id}-participants .participant")).to_have_count(3)
    assert smtp.mails_to("udo.zuviel@example.org", timeout=1) == []

    names = {"staff": stack.practices["premium"]["name"], "patient": "Gerda Gruppenpatientin"}
    keys = []
    for first, last, email in people:
        keys.append(guest_key(staff, appointment_id, f"{first} {last}"))
        names[keys[-1]] = f"{first} {last}"
    links = [guest_link(smtp, email) for _, _, email in people]
    assert len(set(links + [link])) == 4

    # The patient and the first guest wait; the call starts 1:1 browser to browser.
    patient_waits(patient, link)
    patient_waits(guests[0], links[0])
    start_call(staff, patient, "Gerda Gruppenpatientin")

    # The practice's page lists everyone of the appointment with their role: the patient
    # in the call, the first guest waiting outside it, the others not there yet.
    listing = staff.locator("#call-people")
    person = {key: listing.locator(f'[data-key="{key}"]') for key in ["patient", *keys]}
    expect(person["patient"]).to_contain_text("Gerda Gruppenpatientin (Patient/in) Im Gespräch")
    expect(person[keys[0]]).to_contain_text("Ida Dolmetscherin (Dolmetscher/in) Wartet")
    expect(person[keys[1]]).to_contain_text("Tom Angehöriger (Angehörige/r) Nicht da")
    assert_accessible(staff, "staff call page with the group's people")

    # The guest takes the running call: all three move to the relay.
    guest_joins(guests[0])
    pages = {"staff": staff, "patient": patient, keys[0]: guests[0]}
    everyone_in_the_call(pages, names, stack, appointment_id, "three in the call:")
    expect(person[keys[0]]).to_have_attribute("data-state", "in-call")
    expect(person[keys[0]]).to_contain_text("Im Gespräch")
    # Each page words the guest's role in the call on the guest's tile.
    for own in ("staff", "patient"):
        expect(tile(pages[own], keys[0]).locator(".tile-role")).to_have_text("Dolmetscher/in")
    expect(tile(guests[0], "patient").locator(".tile-role")).to_have_text("")

    # The guest's chat: its message reaches the practice's page under the guest's name
    # (staff's panel is closed: the chat button gets the unread dot); on the guest's own
    # page it is marked as its own.
    guests[0].get_by_role("button", name="Chat", exact=True).click()
    guests[0].get_by_label("Nachricht").fill("Ich übersetze für Frau Gruppenpatientin.")
    guests[0].get_by_role("button", name="Senden").click()
    sent = guests[0].locator("#chat-messages .chat-message", has_text="Ich übersetze")
    expect(sent).to_have_class(re.compile(r"\bchat-mine\b"))
    received = staff.locator("#chat-messages .chat-message", has_text="Ich übersetze")
    expect(received).to_have_count(1)
    expect(received.locator(".chat-who")).to_have_text(names[keys[0]])
    expect(received).not_to_have_class(re.compile(r"\bchat-mine\b"))
    expect(staff.locator('[data-action="chat"] .chat-unread')).to_have_count(1)

    # The guest's microphone and camera: the others' tiles for the guest follow.
    for own in ("staff", "patient"):
        expect(tile(pages[own], keys[0])).to_have_attribute("data-mic", "on")
        expect(tile(pages[own], keys[0])).to_have_attribute("data-camera", "on")
    guests[0].locator('[data-action="mic"]').click()
    for own in ("staff", "patient"):
        expect(tile(pages[own], keys[0])).to_have_attribute("data-mic", "off")
        expect(tile(pages[own], keys[0])).to_have_attribute("data-camera", "on")
    guests[0].locator('[data-action="camera"]').click()
    for own in ("staff", "patient"):
        expect(tile(pages[own], keys[0])).to_have_attribute("data-camera", "off")
    guests[0].locator('[data-action="mic"]').click()
    guests[0].locator('[data-action="camera"]').click()
    for own in ("staff", "patient"):
        expect(tile(pages[own], keys[0])).to_have_attribute("data-mic", "on")
        expect(tile(pages[own], keys[0])).to_have_attribute("data-camera", "on")
    # The guest's own toggles did not touch the staff's tile on the guest's page.
    expect(tile(guests[0], "staff")).to_have_attribute("data-mic", "on")
    # Nur Ton: the tiles say why the picture is gone, not just "Kamera aus".
    guests[0].locator('[data-action="audio-only"]').click()
    for own in ("staff", "patient"):
        expect(tile(pages[own], keys[0])).to_have_attribute("data-flag", "audio-only")
        expect(tile(pages[own], keys[0]).get_by_text("Nur Ton", exact=True)).to_be_visible()
        expect(tile(pages[own], keys[0]).get_by_text("Kamera aus", exact=True)).to_be_hidden()
    guests[0].locator('[data-action="audio-only"]').click()
    for own in ("staff", "patient"):
        expect(tile(pages[own], keys[0])).to_have_attribute("data-flag", "none")
        expect(tile(pages[own], keys[0])).to_have_attribute("data-camera", "on")

    # Two more guests join the running call: five members, four tiles on every page.
    for guest, guest_link_ in zip(guests[1:], links[1:]):
        patient_waits(guest, guest_link_)
        guest_joins(guest)
    pages.update({keys[1]: guests[1], keys[2]: guests[2]})
    everyone_in_the_call(pages, names, stack, appointment_id, "five in the call:")
    for key in keys:
        expect(person[key]).to_have_attribute("data-state", "in-call")
    # With four names above it, the practice's toolbar stays on screen.
    viewport = staff.viewport_size
    hangup = staff.locator('[data-action="hangup"]').bounding_box()
    assert hangup["y"] + hangup["height"] <= viewport["height"], (hangup, viewport)

    # Staff hang up: the call ends for everyone and the relay frees the room.
    staff.locator('[data-action="hangup"]').click()
    expect(staff.get_by_text("Der Anruf ist beendet.")).to_be_visible()
    for page in [patient, *guests]:
        expect(page.get_by_role("heading", name="Die Videosprechstunde ist beendet.")).to_be_visible()
    with pytest.raises(RelayRefused) as gone:
        stack.relay.client().room(f"appointment-{appointment_id}")
    assert gone.value.code == "no_room"

    # The relay knows keys, never who is behind them.
    relay_log = stack.relay.log_tail(lines=10_000)
    assert f"room created room=appointment-{appointment_id} " in relay_log
    for first, last, email in people:
        assert last not in relay_log and email not in relay_log


def test_standard_cannot_add_guests(logged_in, stack, smtp):
    staff = logged_in("standard")
    invite(staff, stack, smtp, "Stefan", "Standardpatient", "stefan.standard@example.org")
    appointment_id = open_panel(staff, "Stefan Standardpatient")
    # Standard has two seats (staff and patient): the panel offers no participant form …
    expect(staff.locator(f"#appointment-{appointment_id}-participant-form")).to_have_count(0)
    expect(staff.get_by_text("Teilnehmer hinzufügen")).to_have_count(0)
    # … and the server refuses the form's request all the same, with the tariff's reason.
    token = staff.locator('meta[name="csrf-token"]').get_attribute("content")
    prefix = f"a{appointment_id}-"
    fields = {"first_name": "Gustav", "last_name": "Gast", "email": "gustav.gast@example.org", "mobile": "",
              "consent": "y"}
    response = staff.request.post(f"{stack.base_url}/patienten/termine/{appointment_id}/teilnehmer",
                                  form={prefix + k: v for k, v in fields.items()},
                                  headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status == 403
    assert TARIFF_MESSAGE in response.text()
    assert smtp.mails_to("gustav.gast@example.org", timeout=1) == []


def test_guest_of_a_practice_moved_to_standard_cannot_join(page, other_page, more_pages, smtp, stack):
    """The only way a Standard call can have a guest: added on Premium, then the tariff
    changed. The guest's accept is refused with the tariff's reason, and the 1:1 call
    between staff and patient goes on browser to browser; no relay room is made."""
    email = "wechsel@praxis.example"
    created = stack.flask("practice", "create", "--name", "Praxis Dr. Wechsel", "--tariff", "premium",
                          "--email", email, "--staff-name", "Dr. Wechsel", "--password",
                          stack.practices["premium"]["password"])
    practice_id = re.search(r"practice (\d+) created", created.stdout).group(1)
    staff, patient, guest = keep_console(page), keep_console(other_page), keep_console(more_pages())
    login(staff, email)
    link = invite(staff, stack, smtp, "Wilma", "Wechselpatientin", "wilma.wechsel@example.org")
    appointment_id = open_panel(staff, "Wilma Wechselpatientin")
    assert add_participant(staff, appointment_id, "Gerd", "Gastmann", "gerd.gastmann@example.org").status == 201
    guest_url = guest_link(smtp, "gerd.gastmann@example.org")
    stack.flask("practice", "set-tariff", practice_id, "standard")

    patient_waits(patient, link)
    patient_waits(guest, guest_url)
    start_call(staff, patient, "Wilma Wechselpatientin")
    guest_joins(guest)
    expect(guest.get_by_text(GUEST_TARIFF_MESSAGE)).to_be_visible()
    expect(staff.get_by_text(GUEST_TARIFF_MESSAGE)).to_be_visible()
    for page_ in (staff, patient, guest):
        assert page_.evaluate("window.sprechzimmerCall.mode") != "relay"
    expect(staff.locator("#call")).not_to_have_attribute("data-mode", "relay")
    for page_ in (staff, patient):
        page_.wait_for_function("() => window.sprechzimmerCall.state === 'connected'")
    with pytest.raises(RelayRefused) as none:
        stack.relay.client().room(f"appointment-{appointment_id}")
    assert none.value.code == "no_room"
