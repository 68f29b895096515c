"""The "Heute" board (issue 11): how soon 50 open boards show a patient who enters the
waiting room, and how long the server takes to render a board of 200 appointments.

    .venv/bin/python bench/board.py                     # 50 boards, 20 entries, 200 today
    .venv/bin/python bench/board.py --boards 50 --rounds 20 --today 200 --renders 100

Starts gunicorn as ./run does (one worker, gthread) on 127.0.0.1 with a fresh SQLite
database (`flask db upgrade`), one practice with ``--today`` appointments today plus
``--rounds`` appointments whose patients enter one after the other. Every board is a
real staff page's pair: a websocket on /ws/praxis and a keep-alive HTTP connection,
one thread each, all on one staff login. A round: the patient's socket opens
(/ws/sprechstunde with the redeemed link's cookie; the clock starts just before the
connect), and each board waits for its "board" message, then fetches
GET /patienten/heute?nach=<change> (HX-Request), as board.js does, until the fragment shows the
patient "im Wartezimmer"; the clock stops there. Then the patient leaves and the
boards settle. Printed: p50/p95/max over boards x rounds (target p95 <= 300 ms).

Render: GET /patienten/heute with 200 + rounds appointments today, --renders times
after 10 warm-ups, in-process (Flask test client, no server) and through gunicorn (one
client, keep-alive); p50/p95 (target <= 50 ms). A figure, not a test: it asserts nothing.
"""
import argparse
import gc
import http.client
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "bench-passwort-1"
BOARD = "/patienten/heute"

from tests.support.ports import free_port  # noqa: E402
from tests.support.stack import gunicorn_args, listening  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)] if values else float("nan")


def setup(env, today, rounds):
    """The practice, its appointments, one staff login; the entering patients' cookies."""
    os.environ.update(env)
    from app import create_app
    from app.auth.services import create_practice
    from app.extensions import db
    from app.patients.models import Appointment, Contact
    from app.timeutil import utcnow
    from app.tokens import new_token
    from config import Config
    from tests.support.outbox import opened_link
    from tests.support.webapp import logged_in

    # Rate limits stay on: --rounds links (30 a minute) from one address are within them.
    app = create_app(Config)
    tokens, entering = [], []
    with app.app_context():
        practice, staff = create_practice("Board-Praxis", "premium", "board@praxis.example",
                                          "Dr. Board", PASSWORD)
        now = utcnow()
        for i in range(today + rounds):
            contact = Contact(practice_id=practice.id, first_name="Heute", last_name=f"P{i}",
                              email=f"p{i}@board.example", search_name=f"heute p{i}")
            token, token_hash = new_token()
            # Spread over the next minutes: all still today, whatever the hour.
            appointment = Appointment(
                practice_id=practice.id, contact=contact,
                starts_at=now + timedelta(seconds=i), duration_minutes=20, token_hash=token_hash,
                consent_at=now, consent_by_id=staff.id, consent_text="bench", created_by_id=staff.id)
            db.session.add(appointment)
            if i >= today:
                tokens.append(token)
                entering.append(appointment)
        db.session.commit()
        entering = [a.id for a in entering]
    staff = logged_in(app, "board@praxis.example", PASSWORD)
    cookies = [opened_link(app, token).get_cookie("session").value for token in tokens]
    return app, staff, entering, cookies


def start_web(env, port, log_path):
    cmd = [sys.executable, "-m", *gunicorn_args(port, 256)]
    with open(log_path, "ab") as log:  # a file: an unread pipe would stall the worker
        process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log,
                                   stderr=log, start_new_session=True)
    deadline = time.monotonic() + 20
    while not listening(port):
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not start")
        time.sleep(0.05)
    return process


def fetch(conn, cookie, change=None):
    """The board fragment; a keep-alive connection the server closed meanwhile (gunicorn
    keeps idle ones 2 s) is opened again, as a browser does."""
    for attempt in range(2):
        try:
            path = f"{BOARD}?nach={change}" if change else BOARD  # as board.js asks
            conn.request("GET", path, headers={"Cookie": f"session={cookie}", "HX-Request": "true"})
            return conn.getresponse().read().decode()
        except (http.client.HTTPException, OSError):
            conn.close()
            if attempt:
                raise
    return ""


class Board(threading.Thread):
    """One staff page: its board socket and its HTTP connection."""

    def __init__(self, port, cookie, results):
        super().__init__(daemon=True)
        import websocket

        self.port, self.cookie, self.results = port, cookie, results
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/praxis",
                                              cookie=f"session={cookie}", timeout=30)
        assert json.loads(self.ws.recv())["type"] == "welcome"
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.round = None  # (appointment id, start time) while a patient enters
        self.done = threading.Event()

    def expect(self, appointment_id, started):
        self.done.clear()
        self.round = (appointment_id, started)

    def run(self):
        import websocket

        while True:
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # noqa: BLE001 - closed at the end
                return
            if message.get("type") != "board" or self.round is None:
                continue
            appointment_id, started = self.round
            html = fetch(self.http, self.cookie, message.get("change"))
            if re.search(rf'id="board-appointment-{appointment_id}"[^>]*\s+data-status="waiting"', html):
                self.results.append(time.perf_counter() - started)
                self.round = None
                self.done.set()


def latency(port, staff_cookie, entering, cookies, boards):
    import websocket

    results = []
    pages = [Board(port, staff_cookie, results) for _ in range(boards)]
    for page in pages:
        page.start()
    missed = 0
    for appointment_id, cookie in zip(entering, cookies):
        started = time.perf_counter()
        for page in pages:
            page.expect(appointment_id, started)
        patient = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/sprechstunde",
                                              cookie=f"session={cookie}", timeout=30)
        missed += sum(not page.done.wait(5) for page in pages)
        patient.close()
        time.sleep(0.5)  # the "left" news and its fetches settle
    for page in pages:
        page.ws.close()
    return results, missed


def render_times(request, count):
    times = []
    for i in range(count + 10):
        start = time.perf_counter()
        html = request()
        if i >= 10:
            times.append(time.perf_counter() - start)
    return times, html.count('class="board-line')


def run(args):
    tmp = Path(tempfile.mkdtemp(prefix="sprechzimmer-board-bench-"))
    env = {"DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}", "SECRET_KEY": secrets.token_hex(32),
           "SPRECHZIMMER_ENV": "development", "OUTBOX_DIR": str(tmp / "outbox"),
           "PUBLIC_BASE_URL": "http://127.0.0.1", "FLASK_APP": "wsgi.py"}
    subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, **env}, check=True, capture_output=True)
    app, staff, entering, cookies = setup(env, args.today, args.rounds)
    # As wsgi.py does after start-up (the gunicorn figures below run through it).
    gc.collect()
    gc.freeze()
    cookie = staff.client.get_cookie("session").value
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; "
          f"{args.today + args.rounds} appointments today; log {tmp / 'gunicorn.log'}")

    times, lines = render_times(lambda: staff.get(BOARD).get_data(as_text=True), args.renders)
    print(f"render in-process  {lines} lines: p50 {pct(times, 50) * 1000:6.1f} ms  "
          f"p95 {pct(times, 95) * 1000:6.1f} ms  (target p95 <= 50 ms)")

    port = free_port()
    server = start_web(env, port, tmp / "gunicorn.log")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times, lines = render_times(lambda: fetch(conn, cookie), args.renders)
        print(f"render gunicorn    {lines} lines: p50 {pct(times, 50) * 1000:6.1f} ms  "
              f"p95 {pct(times, 95) * 1000:6.1f} ms")
        results, missed = latency(port, cookie, entering, cookies, args.boards)
        print(f"board update {args.boards} boards x {len(entering)} entries: "
              f"p50 {pct(results, 50) * 1000:6.1f} ms  p95 {pct(results, 95) * 1000:6.1f} ms  "
              f"max {max(results, default=float('nan')) * 1000:6.1f} ms  missed {missed}  "
              f"(target p95 <= 300 ms)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--today", type=int, default=200)
    parser.add_argument("--renders", type=int, default=100)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
