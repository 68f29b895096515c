"""The hub on a Redis of the test's own, and web processes as ./run starts them (gunicorn)
sharing it: Redis can be stopped, killed and restarted for real, a web process killed
with -9 and started again (tests/test_hub_faults.py, tests/e2e/test_hub_faults.py,
bench/faults.py).

The system Redis is never touched: each ``RedisServer`` is its own redis-server on a
free loopback port, with the persistence README "Redis" asks for (appendonly), its files
in the test's directory.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.machine import need_redis_server
from tests.support.ports import free_port
from tests.support.sockets import LiveServer
from tests.support.stack import ROOT, gunicorn_args, listening
from tests.support.waiting import wait_until

UP_TIMEOUT = 30  # a hang guard for process starts, not a speed check


class RedisServer:
    """redis-server on a free port; ``restart()`` stops it (TERM: it writes its append
    log first; or kill -9) and starts it again on the same port and files."""

    def __init__(self, workdir, appendonly=True, appendfsync="everysec"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.process = None
        self.starts = 0

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.starts += 1
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", self.appendfsync, "--protected-mode", "no"]
        with open(self.dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.answers, f"redis-server answers on port {self.port}", UP_TIMEOUT, log=self.dir / "redis.log")
        return self

    def answers(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
        import redis

        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def stop(self, kill=False):
        """TERM (Redis flushes its append log and exits) or kill -9; returns when it is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
            self.process.wait()
        else:
            processes.stop(self.process)

    def restart(self, down_seconds=0.0, kill=False):
        """Down for `down_seconds`, then up again; the time.monotonic() it answers again."""
        self.stop(kill=kill)
        time.sleep(down_seconds)
        self.start()
        return time.monotonic()

    def client(self):
        import redis

        return redis.Redis(port=self.port, decode_responses=True, socket_connect_timeout=2)


class WebProcess(LiveServer):
    """gunicorn with one gthread worker as ./run starts it, on a fixed port (a restart
    comes back on the same one); ``connect`` opens real websockets to it, carrying a test
    client's session (same SECRET_KEY and database as the test's app)."""

    def __init__(self, name, env, log_dir, port=None):
        self.name = name
        self.env = env
        self.log_path = Path(log_dir) / f"{name}.log"
        self.port = port or free_port()
        self.server = None
        self.sockets = []
        self.popen = None

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen([sys.executable, "-m", *gunicorn_args(self.port, threads=32)],
                                          cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

        def up():
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            return listening(self.port)

        wait_until(up, f"{self.name} answers on port {self.port}", UP_TIMEOUT, log=self.log_path)
        return self

    def kill(self):
        """kill -9 of the whole process group's worker and master: no cleanup runs."""
        for pid in processes.children(self.popen.pid):
            os.kill(pid, signal.SIGKILL)
        self.popen.kill()
        self.popen.wait()

    def drop_sockets(self):
        """Close the test's sockets without a close handshake (the server may be gone)."""
        sockets, self.sockets = self.sockets, []
        for ws in sockets:
            try:
                ws.shutdown()
            except Exception:  # noqa: BLE001 - already closed
                pass

    def stop(self):
        self.drop_sockets()
        if self.popen is not None:
            processes.stop(self.popen)

    def log_tail(self, lines=40):
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def web_env(app, redis_url, **overrides):
    """The environment of a web process that shares the test app's database, secret key
    and the Redis at `redis_url` (hub and rate limits)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VONAGE_", "FLASK_", "MAIL_", "RELAY_", "HUB_", "RATELIMIT_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY=app.config["SECRET_KEY"],
        OUTBOX_DIR=app.config["OUTBOX_DIR"],
        PUBLIC_BASE_URL="http://127.0.0.1",
        HUB_URL=redis_url,
        HUB_PREFIX="sprechzimmer:",
        RATELIMIT_STORAGE_URI=redis_url,
        RELAY_SECRET="hub-faults-" + os.urandom(8).hex(),
        RELAY_URL=f"http://127.0.0.1:{free_port()}",  # no relay: 1:1 calls only
    )
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own (appendonly), stopped afterwards."""
    need_redis_server()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def web_processes(app, own_redis, tmp_path):
    """web_processes(n=2, **settings) -> n gunicorn processes on the test app's database,
    sharing `own_redis`; stopped afterwards."""
    started = []

    def factory(n=2, **settings):
        env = web_env(app, own_redis.url, **settings)
        for index in range(n):
            started.append(WebProcess(f"web{len(started) + 1}", env, tmp_path).start())
        return started[-n:]

    yield factory
    for web in started:
        web.drop_sockets()
    processes.stop_all([web.popen for web in started])
