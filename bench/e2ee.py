"""End-to-end encrypted group calls in the browser (issue 13): it prints figures, it
asserts nothing.

    .venv/bin/python bench/e2ee.py [--seconds 10] [--joins 7]

Starts its own gunicorn, outbox sender, relay and SMTP stand-in (tests/support/stack.py),
then runs one Premium group call of five Chromium pages (staff, patient, three guests;
one browser, five contexts, fake camera and microphone) twice:
  encrypted  the product as it is (SFrame frame transform on every sender and receiver)
  clear      the same pages without frame transforms (an old browser everywhere, let in
             by the practice setting): the cost of the call without encryption
Per mode, after a warm-up:
  fps        frames decoded per second from every other member on every page (getStats)
  cpu        CPU of all Chromium processes over the same window, in cores and per
             decoded remote frame
  join       a guest reloads and clicks Annehmen again: from the click, and from its
             relay connection being up, to the first frame of that guest decoded on
             every other page (getStats every 40 ms)
  leave gap  a guest hangs up (everyone makes new keys): the longest time without a new
             frame on any remaining page's remaining streams in the 4 s around it,
             against the same window without a leave
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

from tests.e2e.steps import (  # noqa: E402
    NO_FRAME_TRANSFORMS, add_participant, allow_unencrypted_group_calls, guest_joins, guest_key, guest_link,
    in_relay_mode, invite, login, open_panel, patient_waits, start_call,
)
from tests.support.chromium import launch  # noqa: E402
from tests.support.fakes import SmtpServer  # noqa: E402
from tests.support.page_media import measure  # noqa: E402
from tests.support.stack import local_stack  # noqa: E402

NOW = "performance.timeOrigin + performance.now()"
# When frames from each member were decoded, as wall-clock times per member key: getStats
# every 40 ms (requestVideoFrameCallback follows rendering, which headless Chromium
# throttles on a busy machine, so it would measure the compositor, not the media).
WATCH_FRAMES = f"""() => {{
  if (window.benchFrames) return;
  window.benchFrames = {{}};
  const last = {{}};
  window.benchPoll = setInterval(async () => {{
    const call = window.sprechzimmerCall;
    const pc = call && call.pc;
    if (!pc) return;
    const slots = call.slots;
    const now = {NOW};
    (await pc.getStats()).forEach((r) => {{
      if (r.type !== "inbound-rtp" || r.kind !== "video" || !slots[r.mid]) return;
      const id = pc.getTransceivers().length + ":" + r.mid + ":" + r.ssrc;
      if (r.framesDecoded > (last[id] || 0)) {{
        (window.benchFrames[slots[r.mid]] = window.benchFrames[slots[r.mid]] || []).push(now);
      }}
      last[id] = r.framesDecoded;
    }});
  }}, 40);
}}"""
# When this page's relay connection came up.
WATCH_CONNECTED = f"""() => {{
  window.benchConnected = null;
  const poll = setInterval(() => {{
    const pc = window.sprechzimmerCall.pc;
    if (pc && pc.connectionState === "connected" && window.sprechzimmerCall.mode === "relay") {{
      window.benchConnected = {NOW}; clearInterval(poll);
    }}
  }}, 5);
}}"""
CLICK_AT = f"""(selector) => {{ const t = {NOW}; document.querySelector(selector).click(); return t; }}"""


def chromium_ticks():
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"chrom" not in f.read().split(b"\0")[0]:
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def cpu_over(seconds, during):
    """Cores of Chromium while during() runs (it takes about ``seconds``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    before, started = chromium_ticks(), time.monotonic()
    result = during()
    return (chromium_ticks() - before) / ticks / (time.monotonic() - started), result


def fps_window(pages, seconds):
    figures = measure(pages)
    time.sleep(max(0.0, seconds - 3))
    return figures


def p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def gaps_around(pages, keys, at, span=2000.0):
    """Longest gap between frames per (page, member) within at ± span (ms)."""
    out = []
    for own, page in pages.items():
        frames = page.evaluate("window.benchFrames")
        for key in keys:
            if key == own:
                continue
            times = [t for t in frames.get(key, []) if at - span <= t <= at + span]
            if len(times) > 1:
                out.append(max(b - a for a, b in zip(times, times[1:])))
            else:
                out.append(2 * span)
    return out


def run_mode(browser, server, smtp, email, encrypted, args, tag):
    contexts = [browser.new_context(base_url=server.base_url, locale="de-DE") for _ in range(5)]
    if not encrypted:
        for context in contexts:
            context.add_init_script(NO_FRAME_TRANSFORMS)
    staff, patient, *guests = (c.new_page() for c in contexts)
    for page in (staff, patient, *guests):
        page.set_default_timeout(20_000)
    login(staff, email)
    patient_name = f"Bea Bench{tag}"
    link = invite(staff, server, smtp, "Bea", f"Bench{tag}", f"bea.bench{tag}@example.org")
    appointment_id = open_panel(staff, patient_name)
    keys, links = [], []
    for n in range(3):
        mail = f"gast{n}.{tag}@example.org"
        add_participant(staff, appointment_id, "Gast", f"Nummer{n}{tag}", mail)
        keys.append(guest_key(staff, appointment_id, f"Gast Nummer{n}{tag}"))
        links.append(guest_link(smtp, mail))
    patient_waits(patient, link)
    for guest, guest_link_ in zip(guests, links):
        patient_waits(guest, guest_link_)
    start_call(staff, patient, patient_name)
    for guest in guests:
        guest_joins(guest)
    pages = {"staff": staff, "patient": patient, **dict(zip(keys, guests))}
    for page in pages.values():
        in_relay_mode(page)
        if encrypted:
            page.wait_for_function("() => document.getElementById('e2ee').dataset.state === 'encrypted'")
    time.sleep(5)  # warm-up: encoders ramp up

    cores, figures = cpu_over(args.seconds, lambda: fps_window(pages, args.seconds))
    rates = [r["fps"] for r in rates_of(figures)]

    # joins: the last guest reloads and takes the call again
    for page in pages.values():
        page.evaluate(WATCH_FRAMES)
    joiner_key, joiner = keys[-1], guests[-1]
    joins, after_connect = [], []
    others = {k: pg for k, pg in pages.items() if k != joiner_key}
    for _ in range(args.joins):
        joiner.locator('[data-action="hangup"]').click()
        time.sleep(1.5)
        joiner.reload()
        joiner.locator("#ring-dialog").wait_for(state="visible")
        joiner.evaluate(WATCH_CONNECTED)
        clicked = joiner.evaluate(CLICK_AT, "#ring-dialog [data-action=accept]")
        firsts = []
        for page in others.values():
            page.wait_for_function("([key, t]) => (window.benchFrames[key] || []).some((x) => x > t)",
                                   arg=[joiner_key, clicked], timeout=30_000)
            firsts.append(page.evaluate("([key, t]) => window.benchFrames[key].find((x) => x > t)",
                                        [joiner_key, clicked]))
        joiner.wait_for_function("() => window.benchConnected !== null")
        connected = joiner.evaluate("window.benchConnected")
        joins.append(max(firsts) - clicked)
        after_connect.append(max(firsts) - connected)
        time.sleep(2)

    # the leave gap: a guest hangs up (everyone else makes new keys)
    joiner.evaluate(WATCH_FRAMES)  # its page was reloaded
    time.sleep(3)
    quiet_at = staff.evaluate(NOW)
    time.sleep(2.5)
    leaver_key = keys[0]
    left_at = guests[0].evaluate(CLICK_AT, '[data-action="hangup"]')
    time.sleep(3)
    staying = {k: pg for k, pg in pages.items() if k != leaver_key}
    remaining = list(staying)
    quiet = gaps_around(staying, remaining, quiet_at)
    leave = gaps_around(staying, remaining, left_at)

    for context in contexts:
        context.close()
    frames = sum(r["fps"] for r in rates_of(figures)) * args.seconds
    return {"fps": rates, "cores": cores, "frames": frames, "joins": joins, "after_connect": after_connect,
            "quiet_gap": quiet, "leave_gap": leave, "seconds": args.seconds}


def rates_of(figures):
    return [r for result in figures.values() for k, r in result["rates"].items() if not k.startswith("?")]


def report(mode, r):
    fps = r["fps"]
    print(f"{mode}:")
    print(f"  fps per remote stream (20 streams): min {min(fps):.1f}, median {statistics.median(fps):.1f}, "
          f"max {max(fps):.1f}")
    per_frame = r["cores"] * r["seconds"] * 1000 / r["frames"]
    print(f"  Chromium CPU: {r['cores']:.2f} cores, {per_frame:.1f} ms of CPU per decoded remote video frame")
    for label, values in (("Annehmen click", r["joins"]), ("its relay connection up", r["after_connect"])):
        print(f"  newcomer's {label} -> its first frame decoded on every other page: "
              f"median {statistics.median(values):.0f} ms, p95 {p(values, 0.95):.0f} ms, "
              f"max {max(values):.0f} ms (n={len(values)})")
    print(f"  longest gap between frames, per remaining stream: without a leave max {max(r['quiet_gap']):.0f} ms "
          f"(median {statistics.median(r['quiet_gap']):.0f}); around a leave max {max(r['leave_gap']):.0f} ms "
          f"(median {statistics.median(r['leave_gap']):.0f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--joins", type=int, default=7)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    tmp = Path(tempfile.mkdtemp(prefix="e2ee-bench-"))
    stack = ExitStack()
    smtp = SmtpServer().start()
    stack.callback(smtp.stop)
    try:
        server = stack.enter_context(local_stack(smtp, tmp))
        email = server.practices["premium"]["email"]
        results = {}
        with sync_playwright() as playwright:
            browser = launch(playwright)
            admin = browser.new_context(base_url=server.base_url, locale="de-DE").new_page()
            login(admin, email)
            results["encrypted"] = run_mode(browser, server, smtp, email, True, args, "a")
            allow_unencrypted_group_calls(admin, True)
            results["clear"] = run_mode(browser, server, smtp, email, False, args, "b")
            allow_unencrypted_group_calls(admin, False)
            browser.close()
    finally:
        stack.close()
    print()
    for mode, r in results.items():
        report(mode, r)
    def per_frame(r):
        return r["cores"] / r["frames"]
    extra = per_frame(results["encrypted"]) / per_frame(results["clear"]) - 1
    print(f"CPU per decoded frame with encryption: {extra * 100:+.0f} % against the clear call "
          "(on 2 cores five pages use all there is, so the total says little)")


if __name__ == "__main__":
    main()
