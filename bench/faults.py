"""Recovery of calls after real network cuts, and the outbox after a crashed sender: it
prints figures, it asserts nothing.

    .venv/bin/python bench/faults.py [--runs 10] [--cuts 5,20,40,180] [--who patient,staff]
    .venv/bin/python bench/faults.py --redis [--runs 10] [--down 0,2,10]
                                     [--kinds 1to1,group] [--relay-kills 0] [--outbox-runs 3]

Needs root and nft (tests/support/faults.py). Starts its own gunicorn, outbox sender,
relay and SMTP stand-in (tests/support/stack.py, as the browser tests do) and one
Chromium with a context per person (fake camera and microphone).

- 1to1: staff and patient, browser to browser (Standard tariff).
- group: staff, patient and a guest through the media relay (Premium).

Per run one page (--who) loses its network for real (its ICE ports dropped by nftables,
its context offline) for the cut's length; the figure is the time from the restore until
every page decodes frames from every other member and receives their audio again. A run
that does not recover within 60 s counts as "never" and the call is started afresh.

--relay-kills N (0: none) kills the media relay with SIGKILL N times in a running group
call and starts it again at once (as systemd would); the figure is the time from the
kill until every page has media from every other member again.

--outbox-runs N (0: none) runs bench/outbox_crash.py's measurement N times afterwards:
the pick-up time of a message whose sender was killed with SIGKILL mid-delivery.

--redis: a Redis restart under a running call instead (no root needed). A Redis of the
bench's own (appendonly, tests/support/redis_stack.py) carries the hub of two gunicorn
processes; the staff page talks to the first, the patient's to the second. Per run Redis
is stopped, kept down for the given seconds and started; the figures are the times from
Redis answering again until both pages' sockets are open again, and until signalling
works again: the staff page's camera switch (media-state through Redis's pub/sub from
one process to the other) shows on the patient's page.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.outbox_crash import one_run as outbox_run  # noqa: E402
from tests.e2e.steps import group_call, invite, login, patient_waits, start_call  # noqa: E402
from tests.support.chromium import launch, new_page  # noqa: E402
from tests.support.faults import Cut, faults_missing, media_back, members_back  # noqa: E402
from tests.support.fakes import SmtpServer  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.redis_stack import RedisServer  # noqa: E402
from tests.support.stack import gunicorn_args, listening, local_stack, running_stack  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

GIVE_UP_SECONDS = 60.0
SOCKET_OPEN = "() => document.getElementById('call').dataset.socket === 'open'"
SOCKET_RECONNECTING = "() => document.getElementById('call').dataset.socket === 'reconnecting'"
CONNECTED = "() => window.sprechzimmerCall.state === 'connected'"
TILES_LIVE = """() => [...document.querySelectorAll('#call-grid .tile')]
  .every((t) => t.dataset.connection === 'live')"""


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def load():
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class OneToOne:
    """Staff and patient in a 1:1 call; start() again after a run that never came back."""

    label = "1:1"
    # Calls started in this process: each invites a person of its own, as the same one at
    # the same time would be refused as a double booking.
    started = 0

    def __init__(self, browser, server, smtp):
        self.browser, self.server, self.smtp = browser, server, smtp
        self.contexts = []

    def start(self):
        for context in self.contexts:
            context.close()
        OneToOne.started += 1
        staff_ctx, self.staff = new_page(self.browser, self.server.base_url)
        patient_ctx, self.patient = new_page(self.browser, self.server.base_url)
        self.contexts = [staff_ctx, patient_ctx]
        login(self.staff, self.server.practices["standard"]["email"])
        last = f"Netzbench{chr(ord('a') + OneToOne.started)}"
        link = invite(self.staff, self.server, self.smtp, "Bea", last, f"bea.{last.lower()}@example.org")
        patient_waits(self.patient, link)
        start_call(self.staff, self.patient, f"Bea {last}")
        self.pages = {"staff": self.staff, "patient": self.patient}
        assert media_back(list(self.pages.values()), time.monotonic(), timeout=20) is not None

    def back(self, since):
        return media_back(list(self.pages.values()), since, timeout=GIVE_UP_SECONDS)

    def settle(self):
        for page in self.pages.values():
            page.wait_for_function(CONNECTED, timeout=10_000)


class Group(OneToOne):
    """Staff, patient and a guest through the relay."""

    label = "group of 3"

    def start(self):
        for context in self.contexts:
            context.close()
        OneToOne.started += 1
        staff_ctx, staff = new_page(self.browser, self.server.base_url)
        patient_ctx, patient = new_page(self.browser, self.server.base_url)
        guest_ctx, guest = new_page(self.browser, self.server.base_url)
        self.contexts = [staff_ctx, patient_ctx, guest_ctx]
        login(staff, self.server.practices["premium"]["email"])
        suffix = chr(ord("a") + OneToOne.started)
        _, self.pages, _ = group_call(self.server, self.smtp, staff, patient, [guest], f"Greta Gruppenbench{suffix}",
                                      [("Gero", f"Gastbench{suffix}")])
        assert members_back(self.pages, time.monotonic(), timeout=20) is not None

    def back(self, since):
        return members_back(self.pages, since, timeout=GIVE_UP_SECONDS)

    def settle(self):
        super().settle()
        for page in self.pages.values():
            page.wait_for_function(TILES_LIVE, timeout=10_000)


def cuts_of(call, whos, cuts, runs, results):
    for who in whos:
        for seconds in cuts:
            figures = results.setdefault((call.label, who, seconds), [])
            for run in range(runs):
                with Cut(call.pages[who]) as cut:
                    call.pages["staff"].wait_for_timeout(seconds * 1000)
                    restored = cut.restore()
                took = call.back(restored)
                figures.append(took)
                shown = "never" if took is None else f"{took:.2f} s"
                print(f"{call.label}: {who} cut {seconds:5.0f} s, run {run + 1}: media from everyone "
                      f"{shown} after the restore (load {load()})", flush=True)
                if took is None:
                    # Start over so that one broken run does not spoil the rest.
                    call.start()
                else:
                    call.settle()


def relay_kills(call, runs, results):
    figures = results.setdefault((call.label, "relay kill -9", 0), [])
    for run in range(runs):
        killed = time.monotonic()
        call.server.relay.restart()
        took = call.back(killed)
        figures.append(took)
        shown = "never" if took is None else f"{took:.2f} s"
        print(f"{call.label}: relay killed, run {run + 1}: media from everyone {shown} after the kill "
              f"(load {load()})", flush=True)
        if took is None:
            call.start()
        else:
            call.settle()


def summary(results, started, load_before):
    print(f"\nrecovery after a real cut: restore -> frames decoded and audio received from every "
          f"other member on every page (loopback, {time.monotonic() - started:.0f} s in all; "
          f"load average 1/5/15 min before {load_before}, after {load()}; {os.cpu_count()} cores)")
    print("| call | whose network | cut | n | p50 | p95 | max | never |")
    print("|---|---|---|---|---|---|---|---|")
    for (label, who, seconds), figures in results.items():
        ok = [f for f in figures if f is not None]
        never = len(figures) - len(ok)
        cut = f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s" if seconds else "–"
        if ok:
            print(f"| {label} | {who} | {cut} | {len(figures)} | {statistics.median(ok):.2f} s | "
                  f"{percentile(ok, 95):.2f} s | {max(ok):.2f} s | {never} |")
        else:
            print(f"| {label} | {who} | {cut} | {len(figures)} | – | – | – | {never} |")


def outbox(runs, invites=20, lease=30.0):
    held_times = []
    for run in range(runs):
        held, others, copies = outbox_run(invites, lease)
        held_times.append(held)
        print(f"outbox run {run + 1}: the killed sender's message after {held:5.1f} s, the other "
              f"{len(others)} within {max(others):5.1f} s; {copies} e-mails for {invites} invitations "
              f"(load {load()})", flush=True)
    print(f"\noutbox pick-up after SIGKILL (lease {lease:.0f} s, n={runs}): p50 "
          f"{statistics.median(held_times):.1f} s, p95 {percentile(held_times, 95):.1f} s, "
          f"max {max(held_times):.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="runs per case")
    parser.add_argument("--cuts", default="5,20,40,180", help="cut lengths in seconds")
    parser.add_argument("--who", default="patient,staff", help="whose network is cut")
    parser.add_argument("--redis", action="store_true", help="restart Redis instead of cutting a network")
    parser.add_argument("--down", default="0,2,10", help="--redis: seconds Redis stays down")
    parser.add_argument("--kinds", default="1to1,group", help="1to1, group or both")
    parser.add_argument("--relay-kills", type=int, default=0, help="relay SIGKILLs in a group call (0: none)")
    parser.add_argument("--outbox-runs", type=int, default=3, help="outbox crash runs (0: none)")
    args = parser.parse_args()
    if args.redis:
        redis_restarts(args.runs, [float(d) for d in args.down.split(",")])
        return
    missing = faults_missing()
    if missing:
        sys.exit(f"bench/faults.py: {missing}")
    cuts = [float(c) for c in args.cuts.split(",") if c]
    whos = [w for w in args.who.split(",") if w]
    kinds = {"1to1": OneToOne, "group": Group}
    chosen = [kinds[k] for k in args.kinds.split(",") if k]

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="faults-bench-"))
    stack = ExitStack()
    smtp = SmtpServer().start()
    stack.callback(smtp.stop)
    results = {}
    started, load_before = time.monotonic(), load()
    try:
        if (cuts and whos and chosen) or args.relay_kills:
            server = stack.enter_context(local_stack(smtp, tmp))
            with sync_playwright() as playwright:
                browser = launch(playwright)
                for kind in chosen if cuts and whos else []:
                    call = kind(browser, server, smtp)
                    call.start()
                    cuts_of(call, whos, cuts, args.runs, results)
                    for context in call.contexts:
                        context.close()
                if args.relay_kills:
                    call = Group(browser, server, smtp)
                    call.start()
                    relay_kills(call, args.relay_kills, results)
                    for context in call.contexts:
                        context.close()
                browser.close()
    finally:
        stack.close()
    if results:
        summary(results, started, load_before)
    if args.outbox_runs:
        outbox(args.outbox_runs)


def redis_restarts(runs, downs):
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="redis-bench-"))
    stack = ExitStack()
    smtp = SmtpServer().start()
    stack.callback(smtp.stop)
    redis = RedisServer(tmp / "redis").start()
    stack.callback(redis.stop)
    port, second_port = free_port(), free_port()
    server = stack.enter_context(running_stack(smtp, tmp, port, f"http://127.0.0.1:{port}",
                                               HUB_URL=redis.url, RATELIMIT_STORAGE_URI=redis.url))
    server.start("web2", gunicorn_args(second_port))
    wait_until(lambda: listening(second_port), "the second web process answers", 30)
    second_url = f"http://127.0.0.1:{second_port}"
    results = {}
    started = time.monotonic()
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            staff_ctx, staff = new_page(browser, server.base_url)
            login(staff, server.practices["standard"]["email"])
            link = invite(staff, server, smtp, "Rolf", "Redisbench", "rolf.redisbench@example.org")
            patient_ctx, patient = new_page(browser, second_url)
            patient_waits(patient, link.replace(server.base_url, second_url))
            start_call(staff, patient, "Rolf Redisbench")
            camera = staff.locator('[data-action="camera"]')
            for down in downs:
                figures = results.setdefault(down, [])
                for run in range(runs):
                    redis.stop()
                    for page in (staff, patient):
                        page.wait_for_function(SOCKET_RECONNECTING, timeout=20_000)
                    time.sleep(down)
                    redis.start()
                    up = time.monotonic()
                    for page in (staff, patient):
                        page.wait_for_function(SOCKET_OPEN, timeout=GIVE_UP_SECONDS * 1000)
                    sockets = time.monotonic() - up
                    # Switch the camera until the patient's page shows it: signalling works.
                    expected = "off" if camera.get_attribute("aria-pressed") == "false" else "on"
                    camera.click()
                    patient.wait_for_function(f"() => document.getElementById('call').dataset.remoteCamera "
                                              f"=== '{expected}'", timeout=GIVE_UP_SECONDS * 1000)
                    signalling = time.monotonic() - up
                    figures.append((sockets, signalling))
                    print(f"redis down {down:4.1f} s, run {run + 1}: sockets open {sockets:.2f} s, "
                          f"signalling {signalling:.2f} s after Redis answers again", flush=True)
                    staff.wait_for_function(CONNECTED, timeout=10_000)
            browser.close()
    finally:
        stack.close()

    print(f"\nRedis restart under a 1:1 call on two web processes: Redis answers again -> both "
          f"sockets open / a media-state from staff shows on the patient's page "
          f"(loopback, {time.monotonic() - started:.0f} s in all)")
    for down, figures in results.items():
        for index, what in ((0, "sockets open"), (1, "signalling")):
            values = [f[index] for f in figures]
            print(f"  down {down:4.1f} s, {what:<12}: p50 {statistics.median(values):5.2f} s   "
                  f"p95 {percentile(values, 95):5.2f} s   max {max(values):5.2f} s   (n={len(values)})")


if __name__ == "__main__":
    main()
