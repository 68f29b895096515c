"""End-to-end encryption of group calls through the media relay (docs/encryption.md),
in real Chromium pages with fake cameras and a real relay:

- every page says "Ende-zu-Ende-verschlüsselt" and shows the same code, which changes
  when someone joins or leaves;
- a participant that the server adds on its own (through the relay's control API, as a
  compromised server could) receives every stream but decodes no picture, and the
  pages stop calling the call encrypted once it shows up in the roster;
- the keys a departed guest's page held open what was sent while it was there, and
  nothing sent after the others made new keys;
- where the practice lets browsers without frame encryption in, the frames go in clear
  and every page warns: the same eavesdropper then decodes the pictures, so the check
  above can fail."""
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.steps import (
    NO_FRAME_TRANSFORMS, add_participant, allow_unencrypted_group_calls, guest_joins, guest_key, guest_link,
    in_relay_mode, invite, login, open_panel, patient_waits, start_call,
)
from tests.support.browsers import BrowserLoop
from tests.support.page_media import measure, report, sees_members
from tests.support import sframe
from tests.support.waiting import wait_until

# Records the frame keys a page installs for receiving, as a page kept alive by
# someone who left the call could.
KEEP_KEYS = """(() => {
  window.e2eReceivedKeys = [];
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (message, ...rest) {
    if (message && message.op === "receive-key") {
      window.e2eReceivedKeys.push([message.kid, Array.from(new Uint8Array(message.key))]);
    }
    return post.call(this, message, ...rest);
  };
})();"""


def encrypted_with_one_code(pages):
    """Every page says "Ende-zu-Ende-verschlüsselt" and shows the same code, at one time
    (each page gets there by itself, after the keys of everyone reached it)."""
    pages = list(pages)
    seen = []

    def agreed():
        seen[:] = [(page.locator("#e2ee").get_attribute("data-state"), page.locator("#e2ee-code").inner_text())
                   for page in pages]
        return all(state == "encrypted" for state, _ in seen) and len({code for _, code in seen}) == 1
    try:
        wait_until(agreed, "every page encrypted, with one code", timeout=20)
    except AssertionError:
        raise AssertionError(f"state and code of each page: {seen}") from None
    for page in pages:
        expect(page.locator("#e2ee-text")).to_have_text("Ende-zu-Ende-verschlüsselt")
    code = seen[0][1]
    assert len(code.replace(" ", "")) == 16 and code.replace(" ", "").isdigit(), code
    return code


def eavesdrop(stack, room, aio):
    spy = aio.browser("outsider", publish=False)  # a member key of no one
    aio.run(spy.join(stack.relay.client(), room, spy=False))
    return spy


def ask_key_frames(aio, spy):
    """A PLI on each video m-line, as a receiver that lost a key frame sends: the
    eavesdropper does not ask for lost packets again, so a key frame missing a packet
    would leave it nothing to decode."""
    for slot in spy.slots:
        received = list(spy.received.get(slot["mid"], []))
        if slot["kind"] == "video" and received:
            pts = [r.pt for r in received]
            media_pt = max(set(pts), key=pts.count)
            ssrc = next(r.ssrc for r in reversed(received) if r.pt == media_pt)
            aio.run(spy.send_pli(slot["mid"], ssrc))


def video_frames(spy, since=0.0, until=float("inf")):
    """{publisher: [VP8 frame]} of what reached the eavesdropper in [since, until)."""
    out = {}
    for slot in spy.slots:
        if slot["kind"] == "video" and slot["participant"]:
            got = sframe.frames(spy.received.get(slot["mid"], []))
            out[slot["participant"]] = [data for at, data in got if since <= at < until]
    return out


@pytest.fixture
def aio():
    loop = BrowserLoop()
    yield loop
    loop.close()


def test_group_call_is_end_to_end_encrypted(logged_in, other_page, more_pages, smtp, stack, aio):
    staff, patient = logged_in("premium"), other_page
    guests = [more_pages() for _ in range(3)]
    guests[1].context.add_init_script(KEEP_KEYS)
    link = invite(staff, stack, smtp, "Elke", "Verschluesselt", "elke.verschluesselt@example.org")
    appointment_id = open_panel(staff, "Elke Verschluesselt")
    room = f"appointment-{appointment_id}"
    names = {"staff": stack.practices["premium"]["name"], "patient": "Elke Verschluesselt"}
    keys, links = [], []
    for first, last in [("Ida", "Dolmetsch"), ("Tom", "Angehoerig"), ("Lea", "Kollegin")]:
        # (an address of its own: another test's invitation to the same one comes first)
        email = f"{first}.{last}.e2ee@example.org".lower()
        assert add_participant(staff, appointment_id, first, last, email).status == 201
        keys.append(guest_key(staff, appointment_id, f"{first} {last}"))
        names[keys[-1]] = f"{first} {last}"
        links.append(guest_link(smtp, email))
    ida, tom, lea = keys

    patient_waits(patient, link)
    patient_waits(guests[0], links[0])
    start_call(staff, patient, "Elke Verschluesselt")
    guest_joins(guests[0])
    pages = {"staff": staff, "patient": patient, ida: guests[0]}
    for page in pages.values():
        in_relay_mode(page)
    code3 = encrypted_with_one_code(pages.values())

    # Two more guests join: a new code on every page, the same everywhere.
    for guest, key, guest_link_ in zip(guests[1:], (tom, lea), links[1:]):
        patient_waits(guest, guest_link_)
        guest_joins(guest)
        in_relay_mode(guest)
        pages[key] = guest
    for own, page in pages.items():
        sees_members(page, {k: names[k] for k in pages if k != own})
    code5 = encrypted_with_one_code(pages.values())
    assert code5 != code3

    # Lea leaves: the code changes again for the four that stay.
    guests[2].locator('[data-action="hangup"]').click()
    del pages[lea]
    for own, page in pages.items():
        sees_members(page, {k: names[k] for k in pages if k != own})
    code4 = encrypted_with_one_code(pages.values())
    assert code4 not in (code3, code5)

    # The server adds a participant of its own: it gets every stream, and no picture.
    spy = eavesdrop(stack, room, aio)
    time.sleep(1)
    ask_key_frames(aio, spy)
    figures = measure(pages)
    report("four in an encrypted call, with an eavesdropper on the relay:", figures)
    for own, result in figures.items():
        # (m-lines of Lea's, who left, are idle: "?<mid>" without frames)
        rates = {k: r for k, r in result["rates"].items() if not k.startswith("?")}
        assert sorted(rates) == sorted(k for k in pages if k != own), (own, rates)
        for key, r in rates.items():
            assert r["fps"] >= 10 and r["audioPackets"] > 0, (own, key, r)
    ask_key_frames(aio, spy)
    time.sleep(3)
    tom_keys = {kid: bytes(key) for kid, key in guests[1].evaluate("window.e2eReceivedKeys")}
    # Tom leaves; the others make new keys, which Tom's page never gets.
    left_at = time.time()
    guests[1].locator('[data-action="hangup"]').click()
    del pages[tom]
    # The roster now shows the server's own participant: no page calls the call
    # encrypted any more (it holds no key from it), and its tile is there to see.
    for page in pages.values():
        expect(page.locator("#e2ee")).to_have_attribute("data-state", "pending", timeout=15_000)
        expect(page.locator('#call-grid .tile[data-key="outsider"]')).to_have_count(1)
    time.sleep(3)
    ask_key_frames(aio, spy)
    time.sleep(2)

    before = video_frames(spy, until=left_at)
    after = video_frames(spy, since=left_at + 2.5)
    own_publishers = sorted(k for k in pages)
    assert set(own_publishers) <= set(before), sorted(before)
    for publisher in own_publishers:
        sent_before, sent_after = before[publisher], after[publisher]
        assert len(sent_before) >= 20 and len(sent_after) >= 20, (publisher, len(sent_before), len(sent_after))
        # The relay's view: frames that libvpx cannot make a picture of.
        pictures = sframe.decodable(sent_before + sent_after)
        assert len(pictures) <= len(sent_before + sent_after) // 10, (publisher, len(pictures))
        # Tom's kept keys open what was sent while he was there (so this check can fail) ...
        opened = [sframe.decrypt(f, tom_keys) for f in sent_before]
        assert sum(o is not None for o in opened) >= len(sent_before) // 2, (publisher, tom_keys.keys())
        assert len(sframe.decodable([o for o in opened if o])) >= len(sent_before) // 2
        # ... and nothing sent after the others' new keys.
        assert not any(sframe.decrypt(f, tom_keys) for f in sent_after), publisher
        assert not {sframe.kid_of(f) for f in sent_after} & set(tom_keys), publisher
    aio.run(spy.close())


def test_a_browser_without_frame_encryption(logged_in, other_page, more_pages, smtp, stack, aio):
    """Refused by default, with the reason for the guest and for staff; let in where the
    practice allows it, and then every page warns and the frames go in clear: the
    eavesdropper of the test above now decodes the pictures."""
    staff, patient, guest = logged_in("premium"), other_page, more_pages()
    guest.context.add_init_script(NO_FRAME_TRANSFORMS)
    link = invite(staff, stack, smtp, "Olaf", "Altbrowser", "olaf.altbrowser@example.org")
    appointment_id = open_panel(staff, "Olaf Altbrowser")
    assert add_participant(staff, appointment_id, "Uwe", "Alt", "uwe.alt@example.org").status == 201
    uwe = guest_key(staff, appointment_id, "Uwe Alt")
    patient_waits(patient, link)
    patient_waits(guest, guest_link(smtp, "uwe.alt@example.org"))
    start_call(staff, patient, "Olaf Altbrowser")
    # Staff know before the guest joins.
    expect(staff.locator("#call-notice")).to_contain_text(
        "Der Browser von Uwe Alt kann Gruppengespräche nicht Ende-zu-Ende verschlüsseln.")
    guest_joins(guest)
    refusal = "Ihr Browser kann Gruppengespräche nicht Ende-zu-Ende verschlüsseln."
    expect(guest.locator("#call-notice")).to_contain_text(refusal)
    expect(staff.locator("#call-notice")).to_contain_text(refusal)
    assert uwe not in [p["participant"] for p in stack.relay.client().room(f"appointment-{appointment_id}")["participants"]]

    try:
        admin = more_pages()
        login(admin, stack.practices["premium"]["email"])
        allow_unencrypted_group_calls(admin, True)
        guest.reload()
        guest_joins(guest)
        pages = {"staff": staff, "patient": patient, uwe: guest}
        for page in pages.values():
            in_relay_mode(page)
            expect(page.locator("#e2ee")).to_have_attribute("data-state", "clear", timeout=15_000)
            expect(page.locator("#e2ee-text")).to_have_text(
                "Nicht Ende-zu-Ende-verschlüsselt: ein Browser in diesem Gespräch kann es nicht.")
            expect(page.locator("#e2ee-code-box")).to_be_hidden()
        spy = eavesdrop(stack, f"appointment-{appointment_id}", aio)
        time.sleep(1)
        ask_key_frames(aio, spy)
        time.sleep(3)
        seen = video_frames(spy)
        for publisher in pages:
            assert len(seen[publisher]) >= 20, (publisher, len(seen[publisher]))
            # (the frames before its first key frame cannot decode: it joined mid-stream)
            assert len(sframe.decodable(seen[publisher])) >= len(seen[publisher]) // 2, publisher
        aio.run(spy.close())
    finally:
        allow_unencrypted_group_calls(admin, False)
