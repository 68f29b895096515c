"""Real network cuts for one Chromium page of a call (tests/e2e/test_call_faults.py,
bench/faults.py).

A cut takes away both of the page's paths, for real:
- media: nftables rules drop every UDP packet from or to the page's ICE sockets (the
  ports of all local candidates of its peer connection, read from getStats), in a table
  of its own that restore() deletes again;
- signalling: the page's browser context goes offline (Playwright's set_offline, the
  DevTools "offline" emulation), so the page's websocket and any new one fail, and the
  page sees the "offline" event a real network loss brings.

Nothing else on the machine is touched: the rules match only these ports, in a table
named after this process. Needs root and nft (tests skip without, and say why; CI sets
REQUIRE_FAULTS=1).
"""
import os
import shutil
import subprocess
import time

from tests.support.machine import need

NFT = shutil.which("nft") or "/usr/sbin/nft"

# All UDP ports this page's ICE agent holds (host candidates of every interface).
LOCAL_UDP_PORTS = """async () => {
  const pc = window.sprechzimmerCall && window.sprechzimmerCall.pc;
  if (!pc) return [];
  const ports = new Set();
  (await pc.getStats()).forEach((r) => {
    const udp = (r.protocol || "udp") === "udp";
    if (r.type === "local-candidate" && udp && r.port) ports.add(r.port);
  });
  return [...ports];
}"""

# Decoded video frames and received audio packets of the page's live connection, and
# which connection it is (a new one starts its counters at 0).
INBOUND = """async () => {
  const pc = window.sprechzimmerCall && window.sprechzimmerCall.pc;
  if (!pc) return {pc: null, frames: 0, audio: 0};
  if (!pc.e2eId) pc.e2eId = Math.random().toString(36).slice(2);
  let frames = 0, audio = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded || 0;
    if (r.type === "inbound-rtp" && r.kind === "audio") audio += r.packetsReceived || 0;
  });
  return {pc: pc.e2eId, frames, audio};
}"""


def faults_missing():
    """Why real cuts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network cuts need root (nftables rules)"
    if not os.path.exists(NFT):
        return "network cuts need nft (apt-get install nftables)"
    probe = subprocess.run([NFT, "list", "tables"], check=False, capture_output=True, text=True)
    if probe.returncode != 0:
        return f"nft cannot change rules here: {probe.stderr.strip()[:120]}"
    return None


def need_faults():
    need(faults_missing(), "REQUIRE_FAULTS")


def _nft(script):
    subprocess.run([NFT, "-f", "-"], input=script, text=True, check=True, capture_output=True)


class Cut:
    """cut = Cut(page); cut.start(); …; cut.restore() -> time.monotonic() of the restore."""

    _count = 0

    def __init__(self, page):
        self.page = page
        Cut._count += 1
        self.table = f"sprechzimmer_cut_{os.getpid()}_{Cut._count}"
        self.ports = []
        self.active = False

    # What the rules do with the page's packets: all dropped.
    verdict = "drop"
    # A cut takes the signalling too; a bad line (Lossy) leaves it.
    offline = True

    def start(self):
        self.ports = sorted(self.page.evaluate(LOCAL_UDP_PORTS))
        assert self.ports, "the page has no ICE sockets to cut"
        ports = ", ".join(str(p) for p in self.ports)
        rules = f"udp sport {{ {ports} }} {self.verdict}\n    udp dport {{ {ports} }} {self.verdict}"
        _nft(f"""table inet {self.table} {{
  chain input {{ type filter hook input priority -10; policy accept;
    {rules}
  }}
  chain output {{ type filter hook output priority -10; policy accept;
    {rules}
  }}
}}
""")
        self.active = True
        if self.offline:
            self.page.context.set_offline(True)
        return time.monotonic()

    def restore(self):
        if self.active:
            _nft(f"delete table inet {self.table}\n")
            self.active = False
        if self.offline:
            self.page.context.set_offline(False)
        return time.monotonic()

    def dropped_table_exists(self):
        listed = subprocess.run([NFT, "list", "tables"], check=False, capture_output=True,
                            text=True).stdout
        return self.table in listed

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        try:
            self.restore()
        except Exception:  # noqa: BLE001 - the page may be gone; the rules must go anyway
            subprocess.run([NFT, "delete", "table", "inet", self.table], check=False,
                           capture_output=True)


class Lossy(Cut):
    """A bad line instead of a cut: a share of the page's media packets (each way) is
    dropped at random; the signalling stays. with Lossy(page, percent=25): …"""

    offline = False

    def __init__(self, page, percent=25):
        super().__init__(page)
        self.verdict = f"numgen random mod 100 < {int(percent)} drop"


def inbound(page):
    return page.evaluate(INBOUND)


def _flowing(before, now, frames=3):
    """Frames decoded and audio packets received since `before` (or on a new connection)."""
    if now["pc"] is None:
        return False
    if now["pc"] != before["pc"]:
        return now["frames"] >= frames and now["audio"] > 0
    return now["frames"] >= before["frames"] + frames and now["audio"] > before["audio"]


def media_back(pages, since, timeout=30.0):
    """Seconds from `since` (time.monotonic()) until every page decodes frames and
    receives audio again; None if that did not happen within `timeout`."""
    before = {id(p): inbound(p) for p in pages}
    waiting = set(before)
    deadline = since + timeout
    while waiting and time.monotonic() < deadline:
        for page in pages:
            if id(page) in waiting and _flowing(before[id(page)], inbound(page)):
                waiting.discard(id(page))
        if waiting:
            pages[0].wait_for_timeout(100)
    return None if waiting else time.monotonic() - since


def media_stalled(pages, seconds=2.0):
    """True when no page decodes a frame nor receives audio for `seconds` (the cut works)."""
    pages[0].wait_for_timeout(1000)  # what was under way when the cut began
    before = {id(p): inbound(p) for p in pages}
    pages[0].wait_for_timeout(seconds * 1000)
    after = {id(p): inbound(p) for p in pages}
    return all(after[k]["pc"] == before[k]["pc"] and after[k]["frames"] == before[k]["frames"]
               and after[k]["audio"] == before[k]["audio"] for k in before)


# Per other member of a group call (by relay key): decoded frames and audio packets on
# the page's live relay connection, and which connection it is.
MEMBERS_INBOUND = """async () => {
  const call = window.sprechzimmerCall;
  const pc = call && call.pc;
  if (!pc) return {pc: null, by: {}};
  if (!pc.e2eId) pc.e2eId = Math.random().toString(36).slice(2);
  const slots = call.slots || {};
  const by = {};
  (await pc.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp" || !slots[r.mid]) return;
    const entry = by[slots[r.mid]] = by[slots[r.mid]] || {frames: 0, audio: 0};
    if (r.kind === "video") entry.frames += r.framesDecoded || 0;
    else entry.audio += r.packetsReceived || 0;
  });
  return {pc: pc.e2eId, by};
}"""


def members_inbound(page):
    return page.evaluate(MEMBERS_INBOUND)


def _member_flowing(before, now, key, frames=3):
    was = before["by"].get(key, {"frames": 0, "audio": 0}) if now["pc"] == before["pc"] \
        else {"frames": 0, "audio": 0}
    got = now["by"].get(key)
    return bool(now["pc"]) and got is not None and got["frames"] >= was["frames"] + frames \
        and got["audio"] > was["audio"]


def members_back(pages, since, timeout=30.0):
    """pages: {key: page} of a group call. Seconds from `since` until every page decodes
    frames and receives audio from every other member again (a slot now carrying the
    member counts from zero); None if not within `timeout`."""
    before = {key: members_inbound(page) for key, page in pages.items()}
    waiting = {(own, key) for own in pages for key in pages if key != own}
    deadline = since + timeout
    any_page = next(iter(pages.values()))
    while time.monotonic() < deadline:
        for own, page in pages.items():
            if not any(o == own for o, _ in waiting):
                continue
            now = members_inbound(page)
            for key in pages:
                if (own, key) in waiting and _member_flowing(before[own], now, key):
                    waiting.discard((own, key))
        if not waiting:
            # A few frames are not a picture back (a key that is about to be replaced, a
            # last key frame): it counts once the frames keep coming for a second.
            back = time.monotonic() - since
            first = {own: members_inbound(page) for own, page in pages.items()}
            any_page.wait_for_timeout(1000)
            waiting = {(own, key) for own, page in pages.items() for key in pages if key != own
                       and not _member_flowing(first[own], members_inbound(page), key, frames=5)}
            if not waiting:
                return back
            before = first
        any_page.wait_for_timeout(100)
    return None
