"""The frame format of end-to-end encrypted group calls (static/js/call/sframe.js, SFrame
RFC 9605), run in Chromium as the call's worker runs it, and opened again by the
independent Python implementation the eavesdropper tests use (tests/support/sframe.py)."""
import pytest

from tests.support import sframe

SETUP = """async () => {
  window.sf = await import("/static/js/call/sframe.js");
  window.key = (n) => new Uint8Array(32).fill(n);
  window.frame = (n, first = 0x31) => { const f = new Uint8Array(n); f[0] = first;
    for (let i = 1; i < n; i += 1) f[i] = (i * 7) & 255; return f; };
  window.hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}"""


@pytest.fixture
def sf(page, stack):
    page.goto(stack.base_url + "/login")
    page.evaluate(SETUP)
    return page


def test_round_trip_keeps_the_clear_prefix_and_hides_the_rest(sf):
    result = sf.evaluate("""async () => {
      const ks = await sf.deriveKeySalt(key(1), 123456789);
      const data = frame(900);
      const sealed = await sf.encryptFrame(ks, 0, data, 3);
      const store = new Map([[123456789, ks]]);
      const opened = await sf.decryptFrame((kid) => store.get(kid), sealed, 3);
      return { same: hex(opened.data) === hex(data), prefix: hex(sealed.subarray(0, 3)) === hex(data.subarray(0, 3)),
               leaked: hex(sealed).includes(hex(data.subarray(3, 40))), grew: sealed.length - data.length,
               kid: opened.kid, ctr: opened.ctr, sealed: Array.from(sealed) };
    }""")
    assert result["same"] and result["prefix"] and not result["leaked"]
    # header: 1 config byte, 4 KID bytes, counter 0 in the config byte; 16-byte tag
    assert result["grew"] == 1 + 4 + 16
    assert (result["kid"], result["ctr"]) == (123456789, 0)
    # The Python implementation (an eavesdropper given the key) opens the browser's frame.
    assert sframe.decrypt(bytes(result["sealed"]), {123456789: bytes([1] * 32)}) == bytes(
        [0x31] + [(i * 7) & 255 for i in range(1, 900)])
    assert sframe.decrypt(bytes(result["sealed"]), {123456789: bytes([2] * 32)}) is None


def test_key_frames_keep_ten_bytes_and_audio_one(sf):
    clear = sf.evaluate("() => [sf.clearBytes('video', 'key'), sf.clearBytes('video', 'delta'), sf.clearBytes('audio')]")
    assert clear == [10, 3, 1]


def test_header_encodes_small_and_large_kids_and_counters(sf):
    cases = sf.evaluate("""() => [[0, 0], [7, 7], [8, 8], [255, 256], [2 ** 47 + 5, 2 ** 40 + 3]].map(([k, c]) => {
      const h = sf.encodeHeader(k, c);
      const d = sf.decodeHeader(h, 0);
      return [k, c, d.kid, d.ctr, d.length, h.length];
    })""")
    for kid, ctr, got_kid, got_ctr, length, size in cases:
        assert (got_kid, got_ctr, length) == (kid, ctr, size)
        assert sframe.header(bytes(sf.evaluate(f"() => Array.from(sf.encodeHeader({kid}, {ctr}))")), 0) == (kid, ctr, size)
    assert [c[5] for c in cases] == [1, 1, 3, 4, 13]


def test_counters_never_repeat_and_nonces_differ(sf):
    result = sf.evaluate("""async () => {
      const ks = await sf.deriveKeySalt(key(3), 9);
      const data = frame(64);
      const out = [];
      for (let ctr = 0; ctr < 50; ctr += 1) out.push(hex(await sf.encryptFrame(ks, ctr, data, 3)));
      const ctrs = out.map((h) => sf.decodeHeader(Uint8Array.from(h.match(/../g).map((x) => parseInt(x, 16))), 3).ctr);
      return { distinct: new Set(out.map((h) => h.slice(10))).size, ctrs };
    }""")
    assert result["ctrs"] == list(range(50))
    assert result["distinct"] == 50  # the same frame never gives the same ciphertext


@pytest.mark.parametrize("damage,error", [
    ("wrong-key", "auth"), ("unknown-kid", "key"), ("truncated", "short"), ("cut-tag", "auth"),
    ("flipped-payload", "auth"), ("flipped-prefix", "auth"), ("flipped-header", "key"), ("replayed", "replay"),
    ("empty", "short"), ("long-kid-field", "header"),
])
def test_damaged_frames_are_dropped(sf, damage, error):
    got = sf.evaluate("""async (damage) => {
      const ks = await sf.deriveKeySalt(key(5), 77);
      const other = await sf.deriveKeySalt(key(6), 77);
      ks.replay = new sf.ReplayWindow();
      let sealed = await sf.encryptFrame(ks, 1000, frame(300), 3);
      const store = new Map([[77, damage === "wrong-key" ? other : ks]]);
      const open = (bytes) => sf.decryptFrame((kid) => store.get(kid), bytes, 3);
      const flip = (at) => { sealed = sealed.slice(); sealed[at] ^= 0x40; };
      if (damage === "unknown-kid") store.clear();
      if (damage === "truncated") sealed = sealed.subarray(0, 12);
      if (damage === "cut-tag") sealed = sealed.subarray(0, sealed.length - 1);
      if (damage === "flipped-payload") flip(sealed.length - 30);
      if (damage === "flipped-prefix") flip(1);
      if (damage === "flipped-header") flip(4);
      if (damage === "empty") sealed = new Uint8Array(0);
      if (damage === "long-kid-field") { sealed = sealed.slice(); sealed[3] = 0xf0; }
      if (damage === "replayed") {
        const first = await open(sealed);
        if (first.error) return "first: " + first.error;
      }
      const result = await open(sealed);
      return result.error || "opened";
    }""", damage)
    assert got == error


def test_replay_window_takes_reordering_and_refuses_old_counters(sf):
    got = sf.evaluate("""() => {
      const w = new sf.ReplayWindow(16);
      const seen = [];
      for (const c of [5, 3, 4, 6, 5, 40, 30, 20, 24]) { const ok = w.fresh(c); if (ok) w.accept(c); seen.push(ok); }
      return seen;
    }""")
    assert got == [True, True, True, True, False, True, True, False, False]
