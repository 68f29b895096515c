"""How many signalling websockets one web process holds, and the relay's message latency.

    .venv/bin/python bench/websockets.py                  # N = 100 250 500 1000 pairs, gthread
    .venv/bin/python bench/websockets.py --pairs 1000 --threads 2100 --seconds 20
    .venv/bin/python bench/websockets.py --behind-caddy --pairs 1000   # two processes, Caddy

With --behind-caddy: TWO gunicorn processes (each as ./run and the systemd unit start
it) share the Redis hub (HUB_URL, system Redis), and Caddy runs the project's
deploy/Caddyfile with both as upstreams (tls internal, tests/support/deploy.py). The
same N pairs are measured twice in one run: first straight to the two gunicorns (socket
by socket alternating, so staff and patient of a pair sit on different processes and
every message crosses Redis), then over wss:// through Caddy, whose least_conn policy
spreads them the same way. Caddy's CPU over its window is printed beside.

Starts gunicorn as ./run does (one worker, gthread) on 127.0.0.1 with a fresh SQLite
database, creates one practice and N appointments, redeems each patient link with a
Flask test client of the same app (same SECRET_KEY, so its cookies are valid on the
server) and opens N staff + N patient sockets. Each staff socket then sends one relayed
message a second (a `signal` candidate carrying its send time); the patient socket
records when it arrives. Prints p50/p99/max latency over all messages, lost messages,
and the worker's RSS and thread count. A figure, not a test: it asserts nothing.
"""
import argparse
import json
import math
import os
import resource
import ssl
import secrets
import selectors
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
VENV_BIN = ROOT / ".venv" / "bin"
PASSWORD = "bench-passwort-1"

from tests.support.ports import free_port  # noqa: E402
from tests.support.stack import gunicorn_args, listening  # noqa: E402


def percentile(values, p):
    if not values:
        return float("nan")
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def worker_stats(master_pid):
    """RSS (MiB) and threads of gunicorn's worker process (the master's child)."""
    children = subprocess.run(["ps", "--ppid", str(master_pid), "-o", "pid="], capture_output=True,
                              text=True).stdout.split()
    rss = threads = 0
    for pid in children:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields["VmRSS"].split()[0]) // 1024
        threads += int(fields["Threads"])
    return rss, threads


def prepare(env, pairs):
    """Practice, appointments, and the cookies of one staff login and N patient sessions."""
    os.environ.update(env)
    from app import create_app
    from app.auth.services import create_practice
    from app.tokens import new_token
    from app.extensions import db
    from app.patients.models import Appointment, Contact
    from app.timeutil import utcnow
    from config import Config
    from tests.support.outbox import opened_link
    from tests.support.webapp import logged_in

    class BenchConfig(Config):
        RATELIMIT_ENABLED = False  # the bench redeems hundreds of links from one address

    app = create_app(BenchConfig)
    tokens = []
    with app.app_context():
        practice, staff = create_practice("Bench-Praxis", "premium", "bench@praxis.example", "Dr. Bench", PASSWORD)
        now = utcnow()
        for i in range(pairs):
            contact = Contact(practice_id=practice.id, first_name="Bench", last_name=f"P{i}",
                              email=f"p{i}@bench.example", search_name=f"bench p{i}")
            token, token_hash = new_token()
            db.session.add(Appointment(
                practice_id=practice.id, contact=contact, starts_at=now + timedelta(hours=1),
                duration_minutes=20, token_hash=token_hash, consent_at=now, consent_by_id=staff.id,
                consent_text="bench", created_by_id=staff.id))
            tokens.append(token)
        db.session.commit()
        ids = [a.id for a in db.session.execute(db.select(Appointment).order_by(Appointment.id)).scalars()]

    staff_cookie = logged_in(app, "bench@praxis.example", PASSWORD).client.get_cookie("session").value
    patient_cookies = [opened_link(app, token).get_cookie("session").value for token in tokens]
    return ids, staff_cookie, patient_cookies


def start_gunicorn(env, port, worker, threads, connections, log_path):
    cmd = [sys.executable, "-m", *gunicorn_args(port, threads, worker, connections, extra=("--backlog", "4096"))]
    # The log goes to a file: an unread pipe fills up and stalls every thread that logs.
    with open(log_path, "ab") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log,
                                   start_new_session=True)
    for _ in range(200):
        if listening(port):
            return process
        time.sleep(0.05)
    raise RuntimeError("gunicorn did not start")


class Pairs:
    """N staff+patient sockets; one thread reads them all, one sends. ``bases``: where
    socket n connects, bases[n % len(bases)] (ws://host:port or wss://host:port)."""

    def __init__(self, port, ids, staff_cookie, patient_cookies, bases=None, ca=None):
        import websocket

        self.websocket = websocket
        self.port = port
        self.bases = bases or [f"ws://127.0.0.1:{port}"]
        self.sslopt = {"ca_certs": str(ca), "cert_reqs": ssl.CERT_REQUIRED} if ca else None
        self.opened = 0
        self.ids = ids
        self.staff_cookie = staff_cookie
        self.patient_cookies = patient_cookies
        self.staff = []
        self.patients = []
        self.latencies = []
        self.received = 0
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.stop = False

    def _open(self, path, cookie):
        ws = self.websocket.WebSocket(sslopt=self.sslopt)
        ws.settimeout(30)
        base = self.bases[self.opened % len(self.bases)]
        self.opened += 1
        ws.connect(f"{base}{path}", cookie=f"session={cookie}")
        welcome = json.loads(ws.recv())
        assert welcome["type"] == "welcome", welcome
        return ws

    def open(self, count):
        start = time.perf_counter()
        for i in range(len(self.staff), count):
            staff = self._open(f"/ws/anruf/{self.ids[i]}", self.staff_cookie)
            patient = self._open("/ws/sprechstunde", self.patient_cookies[i])
            self.staff.append(staff)
            self.patients.append(patient)
            self.selector.register(staff.sock, selectors.EVENT_READ, staff)
            self.selector.register(patient.sock, selectors.EVENT_READ, patient)
        return time.perf_counter() - start

    def read_loop(self):
        while not self.stop:
            for key, _ in self.selector.select(timeout=0.2):
                ws = key.data
                try:
                    # Returns on control frames too (a ping is answered inside): a plain
                    # recv() would wait for the next text frame and stall every other socket.
                    opcode, data = ws.recv_data(control_frame=True)
                except self.websocket.WebSocketTimeoutException:
                    continue
                except Exception:  # noqa: BLE001 - closed: counted as lost messages
                    self.selector.unregister(key.fileobj)
                    continue
                if opcode != self.websocket.ABNF.OPCODE_TEXT:
                    if opcode == self.websocket.ABNF.OPCODE_CLOSE:
                        self.selector.unregister(key.fileobj)
                    continue
                self._count(data)
                # TLS: a record can hold several frames; what is decrypted already does
                # not make the socket readable again.
                pending = getattr(ws.sock, "pending", None)
                while pending is not None and pending() > 0:
                    try:
                        opcode, data = ws.recv_data(control_frame=True)
                    except Exception:  # noqa: BLE001 - closed: counted as lost messages
                        break
                    if opcode == self.websocket.ABNF.OPCODE_TEXT:
                        self._count(data)

    def _count(self, data):
        arrived = time.perf_counter()
        message = json.loads(data)
        if message["type"] == "signal" and message["candidate"]["candidate"].startswith("bench "):
            sent = float(message["candidate"]["candidate"].split()[1])
            with self.lock:
                self.latencies.append(arrived - sent)
                self.received += 1

    def send_for(self, seconds):
        """Every staff socket sends once a second, spread evenly over the second."""
        count = len(self.staff)
        interval = 1.0 / count
        sent = 0
        start = time.perf_counter()
        next_at = start
        while time.perf_counter() - start < seconds:
            ws = self.staff[sent % count]
            now = time.perf_counter()
            if next_at > now:
                time.sleep(next_at - now)
            message = {"type": "signal", "candidate": {"candidate": f"bench {time.perf_counter():.6f}",
                                                       "sdpMid": "0", "sdpMLineIndex": 0}}
            ws.send(json.dumps(message))
            sent += 1
            next_at += interval
        return sent


def run(args):
    tmp = Path(tempfile.mkdtemp(prefix="sprechzimmer-ws-bench-"))
    env = {
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "SECRET_KEY": secrets.token_hex(32),
        "SPRECHZIMMER_ENV": "development",
        "OUTBOX_DIR": str(tmp / "outbox"),
        "PUBLIC_BASE_URL": "http://127.0.0.1",
        "FLASK_APP": "wsgi.py",
    }
    subprocess.run([str(VENV_BIN / "flask"), "db", "upgrade"], cwd=ROOT, env={**os.environ, **env},
                   check=True, capture_output=True)
    steps = args.pairs or [100, 250, 500, 1000]
    ids, staff_cookie, patient_cookies = prepare(env, max(steps))
    port = free_port()
    threads = args.threads or 2 * max(steps) + 64
    connections = args.connections or 2 * max(steps) + 64
    server = start_gunicorn(env, port, args.worker, threads, connections, tmp / "gunicorn.log")
    print(f"gunicorn --workers 1 --worker-class {args.worker} --threads {threads} "
          f"--worker-connections {connections}; {args.seconds} s per step, 1 msg/s per pair; "
          f"log {tmp / 'gunicorn.log'}")
    print(f"{'pairs':>6} {'sockets':>7} {'open s':>7} {'msgs':>6} {'lost':>5} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'RSS MiB':>8} {'threads':>7}")
    pairs = Pairs(port, ids, staff_cookie, patient_cookies)
    reader = threading.Thread(target=pairs.read_loop, daemon=True)
    reader.start()
    try:
        for n in steps:
            try:
                opened = pairs.open(n)
            except Exception as exc:  # noqa: BLE001 - the figure is where it stops
                print(f"{n:>6} could not open all sockets: {type(exc).__name__}: {exc} "
                      f"(open: {len(pairs.patients)} pairs)")
                break
            time.sleep(1)  # presence messages settle
            with pairs.lock:
                pairs.latencies.clear()
                pairs.received = 0
            sent = pairs.send_for(args.seconds)
            time.sleep(2)  # stragglers
            with pairs.lock:
                values = sorted(pairs.latencies)
                received = pairs.received
            rss, nthreads = worker_stats(server.pid)
            print(f"{n:>6} {2 * n:>7} {opened:>7.1f} {sent:>6} {sent - received:>5} "
                  f"{percentile(values, 50) * 1000:>7.1f} {percentile(values, 99) * 1000:>7.1f} "
                  f"{(values[-1] if values else float('nan')) * 1000:>7.1f} {rss:>8} {nthreads:>7}", flush=True)
    finally:
        pairs.stop = True
        for ws in pairs.staff + pairs.patients:
            try:
                ws.close(timeout=0.2)
            except Exception:  # noqa: BLE001
                pass
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def proc_cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def close_sockets(pairs):
    pairs.stop = True
    for ws in pairs.staff + pairs.patients:
        try:
            ws.close(timeout=0.2)
        except Exception:  # noqa: BLE001
            pass


def run_behind_caddy(args):
    """Two web processes on the Redis hub, measured directly and through Caddy in one run."""
    from tests.support.deploy import Caddy
    from tests.support.machine import REDIS_URL

    # 2,000 sockets: this process holds one per socket, Caddy two (client and upstream).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = (args.pairs or [1000])[-1]
    tmp = Path(tempfile.mkdtemp(prefix="sprechzimmer-ws-caddy-"))
    prefix = f"sprechzimmer-bench-{secrets.token_hex(4)}:"
    env = {
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "SECRET_KEY": secrets.token_hex(32),
        "SPRECHZIMMER_ENV": "development",
        "OUTBOX_DIR": str(tmp / "outbox"),
        "PUBLIC_BASE_URL": "http://127.0.0.1",
        "FLASK_APP": "wsgi.py",
        "HUB_URL": REDIS_URL,
        "HUB_PREFIX": prefix,
    }
    subprocess.run([str(VENV_BIN / "flask"), "db", "upgrade"], cwd=ROOT, env={**os.environ, **env},
                   check=True, capture_output=True)
    ids, staff_cookie, patient_cookies = prepare(env, n)
    ports = [free_port(), free_port()]
    threads = args.threads or n + 64
    connections = args.connections or n + 64
    servers = [start_gunicorn(env, port, args.worker, threads, connections, tmp / f"gunicorn{i}.log")
               for i, port in enumerate(ports)]
    caddy = Caddy(tmp / "caddy", ports).start()
    print(f"2 x gunicorn --workers 1 --worker-class {args.worker} --threads {threads} "
          f"--worker-connections {connections}, Redis hub {REDIS_URL}; Caddy {caddy.base_url} "
          f"(deploy/Caddyfile, both upstreams); {n} pairs = {2 * n} sockets; {args.seconds} s, "
          f"1 msg/s per pair; open files {hard} (was {soft}); load average {os.getloadavg()[0]:.2f}")
    print(f"{'path':>7} {'sockets':>7} {'open s':>7} {'msgs':>6} {'lost':>5} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'Caddy CPU':>9} {'RSS MiB':>12} {'threads':>11}")
    modes = [("direct", [f"ws://127.0.0.1:{port}" for port in ports], None),
             ("caddy", [caddy.base_url.replace("https://", "wss://")], caddy.root)]
    results = {}
    try:
        for mode, bases, ca in modes:
            pairs = Pairs(None, ids, staff_cookie, patient_cookies, bases=bases, ca=ca)
            reader = threading.Thread(target=pairs.read_loop, daemon=True)
            reader.start()
            try:
                opened = pairs.open(n)
            except Exception as exc:  # noqa: BLE001 - the figure is where it stops
                print(f"{mode:>7} could not open all sockets: {type(exc).__name__}: {exc} "
                      f"(open: {len(pairs.patients)} pairs)")
                close_sockets(pairs)
                continue
            time.sleep(2)  # presence messages settle
            with pairs.lock:
                pairs.latencies.clear()
                pairs.received = 0
            caddy_before, started = proc_cpu_seconds(caddy.process.pid), time.monotonic()
            sent = pairs.send_for(args.seconds)
            time.sleep(2)  # stragglers
            caddy_cpu = (proc_cpu_seconds(caddy.process.pid) - caddy_before) / (time.monotonic() - started)
            with pairs.lock:
                values = sorted(pairs.latencies)
                received = pairs.received
            stats = [worker_stats(server.pid) for server in servers]
            rss = "/".join(str(r) for r, _ in stats)
            nthreads = "/".join(str(t) for _, t in stats)
            results[mode] = values
            print(f"{mode:>7} {2 * n:>7} {opened:>7.1f} {sent:>6} {sent - received:>5} "
                  f"{percentile(values, 50) * 1000:>7.1f} {percentile(values, 99) * 1000:>7.1f} "
                  f"{(values[-1] if values else float('nan')) * 1000:>7.1f} "
                  f"{caddy_cpu * 100 if mode == 'caddy' else 0:>8.1f}% {rss:>12} {nthreads:>11}", flush=True)
            close_sockets(pairs)
            time.sleep(3)  # the servers clean the sockets up before the next mode
        if len(results) == 2:
            d, c = results["direct"], results["caddy"]
            print(f"Caddy's overhead: p50 +{(percentile(c, 50) - percentile(d, 50)) * 1000:.1f} ms, "
                  f"p99 +{(percentile(c, 99) - percentile(d, 99)) * 1000:.1f} ms")
    finally:
        caddy.stop()
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        from tests.support.hubs import delete_keys

        delete_keys(prefix + "*")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, nargs="*", help="steps of staff+patient pairs (default 100 250 500 1000)")
    parser.add_argument("--threads", type=int, help="gunicorn --threads (default 2*pairs+64)")
    parser.add_argument("--connections", type=int, help="gunicorn --worker-connections (default 2*pairs+64)")
    parser.add_argument("--worker", default="gthread", help="gthread (as ./run) or gevent")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--behind-caddy", action="store_true",
                        help="two web processes on the Redis hub, direct and through Caddy (last --pairs step)")
    arguments = parser.parse_args()
    (run_behind_caddy if arguments.behind_caddy else run)(arguments)
