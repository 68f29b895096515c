"""Call latency in the browser over loopback: it prints figures, it asserts nothing.

    .venv/bin/python bench/call_latency.py [--runs 7]

Starts its own gunicorn, outbox sender, relay and SMTP stand-in (tests/support/stack.py,
as the browser tests do), then per run, with two Chromium contexts (fake camera and microphone) of one browser:
  ring    click on "Anruf starten" (staff page) -> ring dialog shown (patient page)
  frame   click on "Annehmen" -> first decoded remote frame, on the patient's page and
          on the staff page (requestVideoFrameCallback, else getStats framesDecoded)
Both pages read performance.timeOrigin + performance.now(): the same machine clock.
"""
import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.steps import invite, login  # noqa: E402
from tests.support.chromium import launch  # noqa: E402
from tests.support.fakes import SmtpServer  # noqa: E402
from tests.support.stack import local_stack  # noqa: E402

NOW = "performance.timeOrigin + performance.now()"

# Click inside the page so that the time taken is the click's own, not Playwright's
# round trips before it.
CLICK_AT = f"""(selector) => {{ const t = {NOW}; document.querySelector(selector).click(); return t; }}"""

# Resolves with the time of the first remote video frame after this call.
FIRST_FRAME_WATCH = f"""() => {{
  window.benchFirstFrame = null;
  const video = document.getElementById("remote-video");
  const done = () => {{ if (window.benchFirstFrame === null) window.benchFirstFrame = {NOW}; }};
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(done);
  const poll = setInterval(async () => {{
    const pc = window.sprechzimmerCall.pc;
    if (window.benchFirstFrame !== null) {{ clearInterval(poll); return; }}
    if (!pc) return;
    (await pc.getStats()).forEach((r) => {{
      if (r.type === "inbound-rtp" && r.kind === "video" && r.framesDecoded > 0) done();
    }});
  }}, 5);
}}"""


def start_servers(tmp, stack):
    """SMTP stand-in, then the app's processes as the browser tests start them (relay included)."""
    smtp = SmtpServer().start()
    stack.callback(smtp.stop)
    server = stack.enter_context(local_stack(smtp, tmp))
    return smtp, server, server.practices["premium"]["email"]


def summary(label, values):
    values = sorted(values)
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    print(f"{label:<44} median {statistics.median(values):7.1f} ms   min {values[0]:7.1f}   max {values[-1]:7.1f}"
          f"   IQR {q[2] - q[0]:6.1f}   (n={len(values)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    from playwright.sync_api import expect, sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="call-bench-"))
    stack = ExitStack()
    smtp, server, staff_email = start_servers(tmp, stack)
    rings, patient_frames, staff_frames = [], [], []
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            contexts = [browser.new_context(base_url=server.base_url, locale="de-DE") for _ in range(2)]
            staff, patient = (c.new_page() for c in contexts)
            for page in (staff, patient):
                page.set_default_timeout(15_000)
            login(staff, staff_email)
            link = invite(staff, server, smtp, "Bea", "Bench", "bench.patient@example.org")
            patient.goto(link)
            patient.get_by_role("link", name="Weiter zum Wartezimmer").click()
            patient.wait_for_function("() => document.getElementById('call').dataset.socket === 'open'")
            staff.goto("/patienten")
            staff.locator("#patient-list").get_by_role("link", name="Bea Bench").first.click()
            staff.wait_for_url("**/patienten/kontakte/*")
            panel_url = staff.url

            for run in range(args.runs):
                staff.goto(panel_url)
                clicked = staff.evaluate(CLICK_AT, "#panel form[action$='/starten'] button")
                dialog = patient.get_by_role("dialog", name="Ihre Praxis ruft an")
                expect(dialog).to_be_visible()
                shown = float(patient.locator("#call").get_attribute("data-ring-shown-at"))
                staff.wait_for_url("**/anruf/*")
                staff.wait_for_function("() => document.getElementById('call').dataset.socket === 'open'")
                for page in (staff, patient):
                    page.evaluate(FIRST_FRAME_WATCH)
                accepted = patient.evaluate(CLICK_AT, "#ring-dialog [data-action=accept]")
                for page, into in ((patient, patient_frames), (staff, staff_frames)):
                    page.wait_for_function("() => window.benchFirstFrame !== null")
                    into.append(page.evaluate("window.benchFirstFrame") - accepted)
                rings.append(shown - clicked)
                print(f"run {run + 1}: ring {rings[-1]:6.1f} ms   first frame patient {patient_frames[-1]:6.1f} ms"
                      f"   staff {staff_frames[-1]:6.1f} ms", flush=True)
                staff.get_by_role("button", name="Auflegen").click()
                expect(patient.get_by_role("heading", name="Die Videosprechstunde ist beendet.")).to_be_visible()
            browser.close()
    finally:
        stack.close()

    print()
    summary("Anruf starten -> ringing on the patient's page", rings)
    summary("Annehmen -> first remote frame (patient)", patient_frames)
    summary("Annehmen -> first remote frame (staff)", staff_frames)


if __name__ == "__main__":
    main()
