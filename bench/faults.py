"""Recovery of a 1:1 call after real network cuts: it prints figures, it asserts nothing.

    .venv/bin/python bench/faults.py [--runs 10] [--cuts 5,20,40,180] [--who patient,staff]

Needs root and nft (tests/support/faults.py). Starts its own gunicorn, outbox sender,
relay and SMTP stand-in (tests/support/stack.py, as the browser tests do) and one
Chromium with two contexts (staff, patient; fake camera and microphone). Per run one
page loses its network for real (its ICE ports dropped by nftables, its context offline)
for the cut's length; the figure is the time from the restore until both pages decode
the other's frames and receive its audio again. A run that does not recover within
60 s counts as "never" and the call is started afresh.
"""
import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.steps import invite, login, patient_waits, start_call  # noqa: E402
from tests.support.chromium import launch, new_page  # noqa: E402
from tests.support.faults import Cut, faults_missing, media_back  # noqa: E402
from tests.support.fakes import SmtpServer  # noqa: E402
from tests.support.stack import local_stack  # noqa: E402

GIVE_UP_SECONDS = 60.0
SOCKET_OPEN = "() => document.getElementById('call').dataset.socket === 'open'"
CONNECTED = "() => window.sprechzimmerCall.state === 'connected'"


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cuts", default="5,20,40,180", help="cut lengths in seconds")
    parser.add_argument("--who", default="patient,staff", help="whose network is cut")
    args = parser.parse_args()
    missing = faults_missing()
    if missing:
        sys.exit(f"bench/faults.py: {missing}")
    cuts = [float(c) for c in args.cuts.split(",")]
    whos = args.who.split(",")

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="faults-bench-"))
    stack = ExitStack()
    smtp = SmtpServer().start()
    stack.callback(smtp.stop)
    server = stack.enter_context(local_stack(smtp, tmp))
    results = {}
    started = time.monotonic()
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            staff_ctx, staff = new_page(browser, server.base_url)
            login(staff, server.practices["standard"]["email"])
            link = invite(staff, server, smtp, "Bea", "Netzbench", "bea.netzbench@example.org")
            patient_ctx, patient = new_page(browser, server.base_url)
            patient_waits(patient, link)

            def fresh_call():
                start_call(staff, patient, "Bea Netzbench")
                assert media_back([staff, patient], time.monotonic(), timeout=20) is not None

            fresh_call()
            for who in whos:
                page = patient if who == "patient" else staff
                for seconds in cuts:
                    figures = results.setdefault((who, seconds), [])
                    for run in range(args.runs):
                        with Cut(page) as cut:
                            staff.wait_for_timeout(seconds * 1000)
                            restored = cut.restore()
                        took = media_back([staff, patient], restored, timeout=GIVE_UP_SECONDS)
                        figures.append(took)
                        shown = "never" if took is None else f"{took:.2f} s"
                        print(f"{who} cut {seconds:5.0f} s, run {run + 1}: frames both ways "
                              f"{shown} after the restore", flush=True)
                        if took is None:
                            # Start over so that one broken run does not spoil the rest.
                            hangup = staff.get_by_role("button", name="Auflegen")
                            if hangup.is_visible():
                                hangup.click()
                            for p in (staff, patient):
                                p.reload()
                            patient.wait_for_function(SOCKET_OPEN)
                            fresh_call()
                        else:
                            # Settle: both pages say "connected" before the next cut.
                            for p in (staff, patient):
                                p.wait_for_function(CONNECTED, timeout=10_000)
            browser.close()
    finally:
        stack.close()

    print(f"\nrecovery after a real cut: restore -> frames decoded and audio received both ways "
          f"(1:1, loopback, {time.monotonic() - started:.0f} s in all)")
    for (who, seconds), figures in results.items():
        ok = [f for f in figures if f is not None]
        never = len(figures) - len(ok)
        line = f"  {who:<8} cut {seconds:5.0f} s: "
        if ok:
            line += (f"p50 {statistics.median(ok):5.2f} s   p95 {percentile(ok, 95):5.2f} s   "
                     f"max {max(ok):5.2f} s")
        line += f"   (n={len(figures)}, never {never})"
        print(line)


if __name__ == "__main__":
    main()
