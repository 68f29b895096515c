"""The outbox after a crashed sender (issue 9): it prints figures, it asserts nothing.

    .venv/bin/python bench/outbox_crash.py [--runs 3] [--invites 20] [--lease 30]

Per run: a fresh SQLite database with `--invites` invitations, a real SMTP server on
loopback that holds the first message at RCPT, `flask outbox work` as a process. Once
the first message is held, the sender is killed with SIGKILL and a second one started.
Figures: how long after the kill the held message arrived (its lease running out), and
how long the others took (they were never leased, so they should not wait), and how
many copies arrived (a kill before SMTP's acceptance should send each exactly once).
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from tests.support.fakes import SmtpServer  # noqa: E402
from tests.support.forms import appointment_form  # noqa: E402
from tests.support.webapp import PASSWORD, Auth, make_config  # noqa: E402


def prepare(tmp, invites):
    """A practice with `invites` invitations waiting in the outbox."""
    from app.auth.services import create_practice
    from app.extensions import db

    url = f"sqlite:///{tmp / 'bench.db'}"
    app = create_app(make_config(tmp, url))
    with app.app_context():
        db.create_all()
        create_practice("Praxis Bench", "basis", "bench@praxis.example", "Dr. Bench", PASSWORD)
    auth = Auth(app.test_client())
    assert auth.login("bench@praxis.example").status_code == 302
    for n in range(invites):
        response = auth.post("/patienten/termine", data=appointment_form(email=f"p{n}@example.org"))
        assert response.status_code == 201, response.status_code
    return app


def sender(app, smtp_port, lease, log):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "MAIL_", "OUTBOX_"))}
    env.update(FLASK_APP="wsgi.py", PYTHONPATH=str(ROOT), SECRET_KEY=app.config["SECRET_KEY"],
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], MAIL_SERVER="127.0.0.1",
               MAIL_PORT=str(smtp_port), OUTBOX_LEASE_SECONDS=str(lease), OUTBOX_POLL_SECONDS="1")
    return subprocess.Popen([sys.executable, "-m", "flask", "outbox", "work"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def one_run(invites, lease):
    tmp = Path(tempfile.mkdtemp(prefix="outbox-bench-"))
    app = prepare(tmp, invites)
    smtp = SmtpServer(hold="before").start()
    arrivals = {}
    with open(tmp / "sender.log", "ab") as log:
        first = sender(app, smtp.port, lease, log)
        assert smtp.held.wait(60), "the sender never reached SMTP"
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = time.monotonic()
        smtp.release.set()
        second = sender(app, smtp.port, lease, log)
        deadline = killed + lease + 60
        while len(smtp.messages) < invites and time.monotonic() < deadline:
            with smtp.lock:
                for message in smtp.messages:
                    arrivals.setdefault(message["To"], time.monotonic() - killed)
            time.sleep(0.05)
        time.sleep(2)
        second.terminate()
        second.wait()
    copies = len(smtp.messages)
    with smtp.lock:
        for message in smtp.messages:
            arrivals.setdefault(message["To"], time.monotonic() - killed)
    smtp.stop()
    held = max(arrivals.values())
    others = sorted(arrivals.values())[:-1]
    return held, others, copies


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--invites", type=int, default=20)
    parser.add_argument("--lease", type=float, default=30.0, help="OUTBOX_LEASE_SECONDS (product default 30)")
    args = parser.parse_args()
    held_times, other_times = [], []
    for run in range(args.runs):
        held, others, copies = one_run(args.invites, args.lease)
        held_times.append(held)
        other_times.extend(others)
        print(f"run {run + 1}: held message after {held:5.1f} s, the other {len(others)} within "
              f"{max(others):5.1f} s (median {statistics.median(others):4.1f} s), "
              f"{copies} e-mails for {args.invites} invitations", flush=True)
    print(f"\nlease {args.lease:.0f} s, {args.runs} runs: held message picked up after "
          f"{min(held_times):.1f}–{max(held_times):.1f} s; others median {statistics.median(other_times):.1f} s, "
          f"max {max(other_times):.1f} s")


if __name__ == "__main__":
    main()
