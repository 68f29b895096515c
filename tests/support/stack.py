"""The app as ./run starts it, in subprocesses: gunicorn, the outbox sender and the
media relay, on a fresh SQLite database; the browser tests (tests/e2e) and the
benchmarks run against it."""
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from tests.support import processes
from tests.support.ports import free_port
from tests.support.relay import RelayProcess
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT = 30  # a hang guard for process starts, not a speed check
PASSWORD = "e2e-passwort-1"
PRACTICES = {
    "premium": ("Praxis Dr. Premium", "premium@praxis.example"),
    "standard": ("Praxis Dr. Standard", "standard@praxis.example"),
    "basis": ("Praxis Dr. Basis", "basis@praxis.example"),
}


def gunicorn_args(port, threads=64, worker_class="gthread", connections=None, extra=()):
    """`python -m` arguments of the web process as ./run starts it: one worker (the
    signalling hub lives in it), threads."""
    args = ["gunicorn", "--workers", "1", "--worker-class", worker_class]
    if worker_class == "gthread":
        args += ["--threads", str(threads)]
    if connections:
        args += ["--worker-connections", str(connections)]
    return args + ["--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", *extra, "wsgi:app"]


def listening(port):
    """Whether something accepts connections on the loopback port (the app's socket
    listens only once it is ready)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Stack:
    """The running processes: ``flask`` runs a CLI command against the same database and
    settings, ``relay`` is the RelayProcess (it can crash and come back)."""

    def __init__(self, base_url, env, log_dir, relay):
        self.base_url = base_url
        self.env = env
        self.log_dir = log_dir
        self.relay = relay
        self.practices = {tariff: {"name": name, "email": email, "password": PASSWORD}
                          for tariff, (name, email) in PRACTICES.items()}
        self.processes = []

    def flask(self, *args, check=True):
        """Run a flask CLI command against the same database and settings."""
        result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"flask {' '.join(args[:2])} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self, name, args):
        with open(self.log_dir / f"{name}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((name, process))
        return process

    def log_tail(self, name, lines=30):
        if name == "relay":
            return self.relay.log_tail(lines)
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def wait_until_up(self, web_port, timeout=UP_TIMEOUT):
        """Until the app and the relay answer; fails at once when a process ended."""
        def web_up():
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            return listening(web_port)

        wait_until(web_up, f"the web app answers on port {web_port}", timeout, log=self.log_dir / "web.log")
        self.relay.wait_up(timeout)

    def stop(self):
        for _, process in reversed(self.processes):
            process.terminate()
        self.relay.stop()
        processes.stop_all([process for _, process in reversed(self.processes)])


# A production start needs the operator for the legal pages (app/legal): as an install's
# /etc/sprechzimmer/env holds it.
OPERATOR_ENV = {"OPERATOR_NAME": "E2E-Betreiber GmbH", "OPERATOR_ADDRESS": "Teststraße 1|10115 Berlin",
                "OPERATOR_EMAIL": "betrieb@e2e.example", "OPERATOR_DPO": "Daten Schutz|dsb@e2e.example"}


@contextmanager
def running_stack(smtp, tmp, port, base_url, relay_udp_start=47000, **env_overrides):
    """gunicorn, outbox sender and relay on `port` with the three e2e practices, as ./run
    starts them; `base_url` is where the browsers reach the app (PUBLIC_BASE_URL). A
    second stack beside the package's needs its own `relay_udp_start`."""
    # Five browsers take one bundled port each at the relay; room to spare for rejoins.
    relay = RelayProcess(tmp / "relay.log", secret=("e2e-relay-" + os.urandom(16).hex()).encode(),
                         udp_start=relay_udp_start, udp_size=40, **env_overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VONAGE_", "FLASK_", "MAIL_", "RELAY_"))}
    env.update(
        FLASK_APP="wsgi.py",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=f"sqlite:///{tmp / 'e2e.db'}",
        SECRET_KEY="e2e-" + os.urandom(16).hex(),
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp.port),
        MAIL_TIMEOUT="5",
        PUBLIC_BASE_URL=base_url,
        OUTBOX_POLL_SECONDS="0.2",
        OUTBOX_DIR=str(tmp / "outbox"),
        # Every test logs in through the form; the product's 10 per minute would
        # make a growing suite trip over its own logins.
        LOGIN_RATE_LIMIT="200 per minute",
        # The relay as ./run starts it; the app and the relay share the secret.
        RELAY_SECRET=relay.secret.decode(),
        RELAY_URL=relay.url,
        **OPERATOR_ENV,
    )
    env.update(env_overrides)
    stack = Stack(base_url, env, tmp, relay)
    stack.flask("db", "upgrade")
    try:
        stack.start("web", gunicorn_args(port))
        stack.start("outbox", ["flask", "outbox", "work"])
        relay.spawn()
        # Each CLI run starts the app anew; side by side they cost the time of one.
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda item: stack.flask(
                "practice", "create", "--name", item[1]["name"], "--tariff", item[0], "--email", item[1]["email"],
                "--staff-name", "Dr. E2E", "--password", PASSWORD), stack.practices.items()))
        stack.wait_until_up(port)
        yield stack
    finally:
        stack.stop()


@contextmanager
def local_stack(smtp, tmp):
    """running_stack on a free port, reached at http://127.0.0.1:<port>."""
    port = free_port()
    with running_stack(smtp, tmp, port, f"http://127.0.0.1:{port}") as stack:
        yield stack
