"""Group calls over three relays (RELAY_URLS): how evenly new rooms spread, and how fast
a killed relay's rooms are back on the others. It prints figures, it asserts nothing.

    .venv/bin/python bench/placement.py [--rooms 12] [--members 2]

Three `python -m media_relay` processes (tests/support/relay.py), the web app's relay
adapter (app/consultation/relay.py) in this process with its placement in the system
Redis, and synthetic aiortc members (tests/support/browsers.py) that publish a VP8 clip
and Opus. Each room gets --members members that join and exchange media. Then the
relay holding the most rooms is killed (SIGKILL), and every member of its rooms offers
again at once, as a page does when its relay connection fails (the page's own
detection time comes on top: Chromium ~5.7 s plus call.js's 3 s grace, measured in
tests/e2e/test_group_call_faults.py). Per room: kill -> room created on another relay,
and kill -> every member connected there and receiving the others' media.
"""
import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.browsers import BrowserLoop  # noqa: E402
from tests.support.hubs import delete_keys, new_prefix  # noqa: E402
from tests.support.machine import REDIS_URL  # noqa: E402
from tests.support.relay import SECRET, RelayProcess  # noqa: E402


KEYS = ["staff", "patient", "guest-1", "guest-2", "guest-3"]


def receiving(browsers):
    """Every member gets video packets from every other member of its room."""
    for browser in browsers:
        for other in browsers:
            if other is browser:
                continue
            mid = browser.mid_for(other.key, "video")
            if mid is None or browser.count_from(mid, other) < 3:
                return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=12)
    parser.add_argument("--members", type=int, default=2)
    args = parser.parse_args()

    from app import create_app
    from app.consultation import relay
    from config import TestConfig
    from media_relay.forwarding import restrict_host_addresses

    restrict_host_addresses(["127.0.0.1"])  # the members gather on loopback only, as in the tests
    tmp = Path(tempfile.mkdtemp(prefix="placement-bench-"))
    relays = [RelayProcess(tmp / f"relay{n}.log", udp_start=46400 + 100 * n, udp_size=80, RELAY_MAX_ROOMS="16")
              for n in range(3)]
    for process in relays:
        process.start()
    prefix = new_prefix()

    class BenchConfig(TestConfig):
        RELAY_URLS = ",".join(r.url for r in relays)
        RELAY_SECRET = SECRET.decode()
        HUB_URL = REDIS_URL
        HUB_PREFIX = prefix
        SQLALCHEMY_DATABASE_URI = "sqlite://"

    app = create_app(BenchConfig)
    for noisy in ("aioice", "aiortc"):  # peer addresses at INFO for every member
        logging.getLogger(noisy).setLevel(logging.WARNING)
    loop = BrowserLoop()
    members = {}  # room -> [browser]

    def join(room, key):
        browser = loop.browser(key)
        offer = loop.run(browser.offer())
        with app.app_context():
            joined = relay.join(room, key, offer)
        loop.run(browser.answer(joined.sdp))
        browser.slots = joined.slots
        return browser

    def settle(browsers, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not all(b.connected() for b in browsers) or not receiving(browsers):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not all members connected and receiving")
            time.sleep(0.02)

    try:
        print(f"3 relays (RELAY_MAX_ROOMS=16), placement in Redis, {args.rooms} rooms of {args.members} "
              f"members; load average {os.getloadavg()[0]:.2f}")
        for n in range(args.rooms):
            appointment = 7000 + n
            with app.app_context():
                room = relay.create_room(appointment, 5)
            # Members join in turn, as pages do; a room's later members see the earlier ones.
            members[room] = [join(room, key) for key in KEYS[:args.members]]
            # slots of the earlier members change with each join: ask the relay.
            with app.app_context():
                status = relay.room(room)
            for browser in members[room]:
                browser.slots = next(p["slots"] for p in status["participants"] if p["participant"] == browser.key)
        for room, browsers in members.items():
            settle(browsers, room)
        spread = [r.client().status() for r in relays]
        print("rooms per relay:", " / ".join(str(s["rooms"]) for s in spread),
              "  members:", " / ".join(str(s["participants"]) for s in spread),
              "  relay CPU (share of a core):", " / ".join(f"{s['cpu']:.2f}" for s in spread))

        with app.app_context():
            where = {room: relay.relay_of(room) for room in members}
        victim = max(relays, key=lambda r: sum(1 for url in where.values() if url == r.url))
        moved = [room for room, url in where.items() if url == victim.url]
        victim.kill()
        killed = time.monotonic()
        created, back = {}, {}
        for room in moved:
            with app.app_context():
                relay.create_room(int(room.rsplit("-", 1)[1]), 5)
            created[room] = time.monotonic() - killed
            members[room] = [join(room, b.key) for b in members[room]]
        for room in moved:
            with app.app_context():
                status = relay.room(room)
            for browser in members[room]:
                browser.slots = next(p["slots"] for p in status["participants"] if p["participant"] == browser.key)
        for room in moved:
            settle(members[room], room)
            back[room] = time.monotonic() - killed
        with app.app_context():
            after = {room: relay.relay_of(room) for room in members}
        assert all(after[room] != victim.url for room in moved)
        spread = [r.client().status()["rooms"] if r is not victim else "killed" for r in relays]
        print(f"killed relay {relays.index(victim) + 1} with {len(moved)} rooms; now: "
              + " / ".join(str(s) for s in spread))
        print(f"  kill -> room created on another relay: median {statistics.median(created.values()) * 1000:.0f} ms, "
              f"last {max(created.values()) * 1000:.0f} ms")
        print(f"  kill -> all members connected there with media: median {statistics.median(back.values()):.2f} s, "
              f"last {max(back.values()):.2f} s")
    finally:
        loop.close()
        for process in relays:
            process.stop()
        delete_keys(prefix + "*")


if __name__ == "__main__":
    main()
