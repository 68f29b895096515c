"""1:1 calls over TURN: coturn's CPU and the server's bandwidth per call. It prints
figures, it asserts nothing.

    .venv/bin/python bench/turn.py [--calls 1 2] [--seconds 20]

coturn from Debian runs deploy/turnserver.conf on loopback (tests/support/deploy.py);
the app's processes run as the browser tests start them, with ICE_TRANSPORT_POLICY=relay
and TURN_URLS/TURN_SECRET pointing at that coturn, so every call's media passes coturn
(both browsers use relay candidates only, the worst case for the server). Per step, K
calls run at once between Chromium pages (fake 640x360 camera, fake microphone); over
the measuring window it reads coturn's CPU time from /proc/<pid>/stat and each page's
bytes sent and received on its selected candidate pair (getStats). What the clients
send enters the server, what they receive leaves it: per call, in = both pages' sent
bytes, out = both pages' received bytes.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.steps import invite, login, patient_waits, start_call  # noqa: E402
from tests.support.chromium import launch  # noqa: E402
from tests.support.deploy import Coturn  # noqa: E402
from tests.support.fakes import SmtpServer  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.stack import running_stack  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")

PAIR_BYTES = """async () => {
  const pc = window.sprechzimmerCall.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let out = null;
  stats.forEach((r) => {
    if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") {
      const local = stats.get(r.localCandidateId);
      out = {sent: r.bytesSent, received: r.bytesReceived, local: local.candidateType,
             policy: pc.getConfiguration().iceTransportPolicy};
    }
  });
  return out;
}"""


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="turn-bench-"))
    secret = "bench-turn-" + os.urandom(16).hex()
    coturn = Coturn(tmp / "coturn", secret).start()
    smtp = SmtpServer().start()
    port = free_port()
    print(f"coturn {coturn.url()} (deploy/turnserver.conf), ICE_TRANSPORT_POLICY=relay, "
          f"{args.seconds:.0f} s per step; load average {os.getloadavg()[0]:.2f}")
    print(f"{'calls':>5} {'coturn CPU':>11} {'per call':>9} {'in Mbit/s':>10} {'out Mbit/s':>11} "
          f"{'per call in+out':>16}")
    try:
        with running_stack(smtp, tmp, port, f"http://127.0.0.1:{port}", TURN_URLS=coturn.url("udp"),
                           TURN_SECRET=secret, ICE_TRANSPORT_POLICY="relay") as server, \
                sync_playwright() as playwright:
            browser = launch(playwright)
            email = server.practices["premium"]["email"]
            opened = []
            number = 0
            for calls in args.calls:
                while len(opened) < calls:
                    number += 1
                    staff, patient = (browser.new_context(base_url=server.base_url, locale="de-DE").new_page()
                                      for _ in range(2))
                    for page in (staff, patient):
                        page.set_default_timeout(30_000)
                    login(staff, email)
                    name = f"Turn{number}"
                    link = invite(staff, server, smtp, "Bea", name, f"turn{number}@example.org")
                    patient_waits(patient, link)
                    start_call(staff, patient, f"Bea {name}")
                    opened.append((staff, patient))
                time.sleep(3)  # bitrates ramp up
                pages = [p for pair in opened for p in pair]
                before = [p.evaluate(PAIR_BYTES) for p in pages]
                cpu_before, started = cpu_seconds(coturn.process.pid), time.monotonic()
                time.sleep(args.seconds)
                after = [p.evaluate(PAIR_BYTES) for p in pages]
                cpu = (cpu_seconds(coturn.process.pid) - cpu_before) / (time.monotonic() - started)
                elapsed = time.monotonic() - started
                assert all(b and b["local"] == "relay" and b["policy"] == "relay" for b in after), after
                sent = sum(a["sent"] - b["sent"] for a, b in zip(after, before, strict=True))
                received = sum(a["received"] - b["received"] for a, b in zip(after, before, strict=True))
                mbit_in, mbit_out = sent * 8 / elapsed / 1e6, received * 8 / elapsed / 1e6
                print(f"{calls:>5} {cpu * 100:>10.1f}% {cpu * 100 / calls:>8.1f}% {mbit_in:>10.2f} "
                      f"{mbit_out:>11.2f} {(mbit_in + mbit_out) / calls:>16.2f}", flush=True)
            browser.close()
    finally:
        smtp.stop()
        coturn.stop()


if __name__ == "__main__":
    main()
