"""Premium group calls through the media relay in real Chromium: staff, patient and up
to three guests, each in an own browser context with fake camera and microphone,
joined through their links from the e-mails; a real `python -m media_relay` forwards
the media (docs/signalling.md, "Group calls through the media relay").

What the browsers receive is read from getStats of each page's one relay peer
connection; window.sprechzimmerCall.slots says whose media arrives on which m-line."""
import re
import time
from collections import Counter

import pytest
from playwright.sync_api import expect

from media_relay.client import RelayRefused
from tests.e2e.conftest import login
from tests.e2e.test_call import invite, patient_waits, start_call

CONSENT = "Der Nutzer hat eingewilligt, SMS- und E-Mail-Nachrichten von mir zu erhalten"
FULL_MESSAGE = ("Es können höchstens 5 Personen an einem Anruf teilnehmen: Sie, der Patient und 3 weitere. "
                "Entfernen Sie zuerst einen Teilnehmer.")
TARIFF_MESSAGE = "Weitere Teilnehmer einladen ist im Tarif Premium enthalten."
GUEST_TARIFF_MESSAGE = "Der Tarif der Praxis erlaubt keine weiteren Personen in diesem Anruf."

# Chromium's fake camera as call.js asks for it: 640x360 at 15 fps. Headless Chromium
# on two shared cores decodes in bursts (a frame late in one window arrives in the
# next), so a 3 s window can see fewer than 15/s even when nothing is lost; 10/s still
# fails a relay that drops or stalls a stream, which is what this guards. Five full
# pages on 2 cores held 14.6–15.5 fps per remote in every run, so all five are held
# to it, not only the first three.
MIN_FPS = 10
WINDOW_MS = 3000

# Per remote member (by relay key): decoded frames, audio packets and samples. Entries
# the page cannot map to a member are kept under "?mid" so a failure shows them.
MEMBER_STATS = """async () => {
  const call = window.sprechzimmerCall;
  const slots = call.slots || {};
  const keyOf = (mid) => slots[mid] || ("?" + mid);
  const by = {};
  (await call.pc.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    const entry = by[keyOf(r.mid)] = by[keyOf(r.mid)] || {};
    if (r.kind === "video") {
      entry.frames = r.framesDecoded || 0;
      entry.width = r.frameWidth || 0;
    } else {
      entry.packets = r.packetsReceived || 0;
      entry.samples = r.totalSamplesReceived || 0;
    }
  });
  return { t: performance.now(), by, slots: Object.assign({}, slots) };
}"""

# Starts a measurement over WINDOW_MS in the page; every page measures at the same time
# and the result is awaited later (evaluate waits for the promise).
START_RATES = f"""() => {{
  const snap = {MEMBER_STATS};
  window.e2eRates = (async () => {{
    const a = await snap();
    await new Promise((r) => setTimeout(r, {WINDOW_MS}));
    const b = await snap();
    const seconds = (b.t - a.t) / 1000;
    const rates = {{}};
    for (const [key, now] of Object.entries(b.by)) {{
      const then = a.by[key] || {{}};
      rates[key] = {{
        fps: ((now.frames || 0) - (then.frames || 0)) / seconds,
        width: now.width || 0,
        audioPackets: (now.packets || 0) - (then.packets || 0),
        audioSamples: (now.samples || 0) - (then.samples || 0),
      }};
    }}
    return {{ seconds, rates, slots: [a.slots, b.slots] }};
  }})();
}}"""


def keep_console(page):
    """Every console line of the page, for failure messages (call.js logs its steps)."""
    page.e2e_console = []
    page.on("console", lambda msg: page.e2e_console.append(f"{msg.type}: {msg.text}"))
    return page


def tile(page, key):
    return page.locator(f'#call-grid .tile[data-key="{key}"]')


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
    item = staff.locator(f"#appointment-{appointment_id}-participants .participant", has_text=full_name)
    return "guest-" + item.get_attribute("id").rsplit("-", 1)[1]


def guest_link(smtp, email):
    return smtp.link(smtp.mails_to(email, "Einladung zur Videosprechstunde")[-1])


def guest_joins(guest):
    """The guest's waiting room rings once the call runs; Annehmen joins it."""
    ring = guest.locator("#ring-dialog")
    expect(ring).to_be_visible()
    ring.locator('[data-action="accept"]').click()
    expect(ring).to_be_hidden()


def in_relay_mode(page):
    page.wait_for_function("() => window.sprechzimmerCall && window.sprechzimmerCall.mode === 'relay'")
    expect(page.locator("#call")).to_have_attribute("data-mode", "relay")
    note = page.locator("[data-relay-note]")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Medienserver der Praxis")


# What a member's tile and the page's media look like, for the wait below and for
# the failure message when it does not get there.
MEDIA_STATE = f"""async (keys) => {{
  const tiles = keys.map((key) => {{
    const t = document.querySelector(`#call-grid .tile[data-key="${{key}}"]`);
    const v = t && t.querySelector("video");
    return {{ key, tile: !!t, videoWidth: v ? v.videoWidth : null, paused: v ? v.paused : null,
             readyState: v ? v.readyState : null,
             tracks: v && v.srcObject
               ? v.srcObject.getTracks().map((x) => `${{x.kind}}:${{x.readyState}}:muted=${{x.muted}}`) : null }};
  }});
  const audio = [...document.querySelectorAll("#relay-audio audio")].map((a) => ({{ paused: a.paused }}));
  const stats = (await ({MEMBER_STATS})()).by;
  const slots = window.sprechzimmerCall.slots;
  const ok = tiles.every((t) => t.videoWidth > 0 && !t.paused) && audio.some((a) => !a.paused)
    && keys.every((k) => stats[k] && stats[k].frames > 0 && stats[k].packets > 0);
  const pc = window.sprechzimmerCall.pc;
  return {{ ok, tiles, audio, stats, slots, connection: pc && pc.connectionState }};
}}"""


def poll(page, function, arg, timeout):
    """Evaluates `function(arg)` until its result has a true "ok" or the time is up (a
    hang guard); the last result. Playwright's wait_for_function does not await a
    promise (an async predicate counts as true at once), and getStats is async."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        result = page.evaluate(function, arg)
        if result["ok"] or time.monotonic() > deadline:
            return result
        page.wait_for_timeout(100)


def sees_members(page, members, timeout=20_000):
    """One tile per other member with its name, each showing its video; video and audio
    arriving from each (Chromium decodes remote audio only for a sink that plays)."""
    expect(page.locator("#call-grid .tile[data-key]")).to_have_count(len(members))
    for key, name in members.items():
        expect(tile(page, key).locator(".tile-name")).to_have_text(name)
    keys = list(members)
    state = poll(page, MEDIA_STATE, keys, timeout)
    assert state["ok"], \
        f"media from {keys} not all there after {timeout} ms: {state}\nconsole: {page.e2e_console[-40:]}"


def measure(pages):
    """{page label: {"seconds", "rates": {key: {fps, width, audioPackets, audioSamples}}}},
    all pages measured over the same wall-clock window."""
    for page in pages.values():
        page.evaluate(START_RATES)
    return {label: page.evaluate("window.e2eRates") for label, page in pages.items()}


def report(title, results):
    lines = [title]
    for label, result in results.items():
        figures = ", ".join(f"{key} {r['fps']:.1f} fps ({r['width']}px), audio +{r['audioPackets']} pkts"
                            for key, r in sorted(result["rates"].items()))
        lines.append(f"  {label} over {result['seconds']:.2f} s: {figures}")
    print("\n".join(lines))


def assert_media(results, members_of):
    for label, result in results.items():
        rates = result["rates"]
        unmapped = [key for key in rates if key.startswith("?")]
        assert not unmapped, f"{label}: inbound media on m-lines without a member in slots: {rates}"
        # Each other member on exactly one audio and one video slot of this page: a member
        # twice wastes the page's bandwidth and takes the slot a later member needs.
        slots = result["slots"][1]
        assert Counter(slots.values()) == {key: 2 for key in members_of[label]}, \
            f"{label}: slots (mid -> member) {slots}"
        assert set(rates) == set(members_of[label]), \
            f"{label}: media from {sorted(rates)}; slots before and after: {result['slots']}"
        for key, r in rates.items():
            assert r["audioPackets"] > 0 and r["audioSamples"] > 0, f"{label}: no audio from {key}: {r}"
            assert r["fps"] >= MIN_FPS, f"{label}: video from {key} at {r['fps']:.1f} fps: {rates}"


def everyone_in_the_call(pages, names, live_server, appointment_id, label):
    """Every page on the relay with a named tile per other member, the relay holding
    them all, and video and audio arriving from each other member on every page."""
    for page in pages.values():
        in_relay_mode(page)
    for own, page in pages.items():
        sees_members(page, {k: names[k] for k in pages if k != own})
    room = live_server.relay().room(f"appointment-{appointment_id}")
    assert sorted(p["participant"] for p in room["participants"]) == sorted(pages)
    figures = measure(pages)
    report(label, figures)
    assert_media(figures, {own: [k for k in pages if k != own] for own in pages})


def test_premium_group_call_through_the_relay(logged_in, other_page, more_pages, smtp, live_server):
    staff, patient = keep_console(logged_in("premium")), keep_console(other_page)
    guests = [keep_console(more_pages()) for _ in range(3)]
    link = invite(staff, live_server, smtp, "Gerda", "Gruppenpatientin", "gerda.gruppe@example.org")
    appointment_id = open_panel(staff, "Gerda Gruppenpatientin")

    # Three further people fit in Premium (five with staff and patient); a fourth is
    # refused by the server with the reason beside the form.
    people = [("Ida", "Dolmetscherin", "ida.dolmetsch@example.org"),
              ("Tom", "Angehöriger", "tom.angehoerig@example.org"),
              ("Lea", "Kollegin", "lea.kollegin@example.org")]
    for first, last, email in people:
        assert add_participant(staff, appointment_id, first, last, email).status == 201
    expect(staff.get_by_role("heading", name="Weitere Teilnehmer (3/3)")).to_be_visible()
    refused = add_participant(staff, appointment_id, "Udo", "Zuviel", "udo.zuviel@example.org")
    assert refused.status == 409
    expect(staff.locator(f"#appointment-{appointment_id}-participant-error")).to_have_text(FULL_MESSAGE)
    expect(staff.locator(f"#appointment-{appointment_id}-participants .participant")).to_have_count(3)
    assert smtp.mails_to("udo.zuviel@example.org", timeout=1) == []

    names = {"staff": live_server.practices["premium"]["name"], "patient": "Gerda Gruppenpatientin"}
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

    # The guest takes the running call: all three move to the relay.
    guest_joins(guests[0])
    pages = {"staff": staff, "patient": patient, keys[0]: guests[0]}
    everyone_in_the_call(pages, names, live_server, appointment_id, "three in the call:")

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

    # Two more guests join the running call: five members, four tiles on every page.
    for guest, guest_link_ in zip(guests[1:], links[1:]):
        patient_waits(guest, guest_link_)
        guest_joins(guest)
    pages.update({keys[1]: guests[1], keys[2]: guests[2]})
    everyone_in_the_call(pages, names, live_server, appointment_id, "five in the call:")

    # Staff hang up: the call ends for everyone and the relay frees the room.
    staff.locator('[data-action="hangup"]').click()
    expect(staff.get_by_text("Der Anruf ist beendet.")).to_be_visible()
    for page in [patient, *guests]:
        expect(page.get_by_role("heading", name="Die Videosprechstunde ist beendet.")).to_be_visible()
    with pytest.raises(RelayRefused) as gone:
        live_server.relay().room(f"appointment-{appointment_id}")
    assert gone.value.code == "no_room"

    # The relay knows keys, never who is behind them.
    relay_log = live_server.log_tail("relay", lines=10_000)
    assert f"room created room=appointment-{appointment_id} " in relay_log
    for first, last, email in people:
        assert last not in relay_log and email not in relay_log


def test_standard_cannot_add_guests(logged_in, live_server, smtp):
    staff = logged_in("standard")
    invite(staff, live_server, smtp, "Stefan", "Standardpatient", "stefan.standard@example.org")
    appointment_id = open_panel(staff, "Stefan Standardpatient")
    # Standard has two seats (staff and patient): the panel offers no participant form …
    expect(staff.locator(f"#appointment-{appointment_id}-participant-form")).to_have_count(0)
    expect(staff.get_by_text("Teilnehmer hinzufügen")).to_have_count(0)
    # … and the server refuses the form's request all the same, with the tariff's reason.
    token = staff.locator('meta[name="csrf-token"]').get_attribute("content")
    prefix = f"a{appointment_id}-"
    fields = {"first_name": "Gustav", "last_name": "Gast", "email": "gustav.gast@example.org", "mobile": "",
              "consent": "y"}
    response = staff.request.post(f"{live_server.base_url}/patienten/termine/{appointment_id}/teilnehmer",
                                  form={prefix + k: v for k, v in fields.items()},
                                  headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status == 403
    assert TARIFF_MESSAGE in response.text()
    assert smtp.mails_to("gustav.gast@example.org", timeout=1) == []


def test_guest_of_a_practice_moved_to_standard_cannot_join(page, other_page, more_pages, smtp, live_server):
    """The only way a Standard call can have a guest: added on Premium, then the tariff
    changed. The guest's accept is refused with the tariff's reason, and the 1:1 call
    between staff and patient goes on browser to browser; no relay room is made."""
    email = "wechsel@praxis.example"
    created = live_server.flask("practice", "create", "--name", "Praxis Dr. Wechsel", "--tariff", "premium",
                                "--email", email, "--staff-name", "Dr. Wechsel", "--password",
                                live_server.practices["premium"]["password"])
    practice_id = re.search(r"practice (\d+) created", created.stdout).group(1)
    staff, patient, guest = keep_console(page), keep_console(other_page), keep_console(more_pages())
    login(staff, email)
    link = invite(staff, live_server, smtp, "Wilma", "Wechselpatientin", "wilma.wechsel@example.org")
    appointment_id = open_panel(staff, "Wilma Wechselpatientin")
    assert add_participant(staff, appointment_id, "Gerd", "Gastmann", "gerd.gastmann@example.org").status == 201
    guest_url = guest_link(smtp, "gerd.gastmann@example.org")
    live_server.flask("practice", "set-tariff", practice_id, "standard")

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
        live_server.relay().room(f"appointment-{appointment_id}")
    assert none.value.code == "no_room"
