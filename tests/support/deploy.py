"""The deploy/ files as the tests run them: templates rendered the way deploy/install.sh
renders them (@NAME@ replaced, nothing left over), the processes' command lines read
from the systemd units, and the real coturn and Caddy from Debian.

Without /usr/bin/turnserver (or /usr/bin/caddy) the tests that need it skip with the
reason; CI sets REQUIRE_COTURN=1 (REQUIRE_CADDY=1) so that a missing one fails instead.
"""
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.chromium import launch
from tests.support.machine import need
from tests.support.ports import free_port, free_udp_range
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
COTURN = "/usr/bin/turnserver"
CADDY = "/usr/bin/caddy"
# Where install.sh puts the code; the units name it, the tests run from the checkout.
APP_DIR = "/opt/sprechzimmer"
PLACEHOLDER = re.compile(r"@([A-Z][A-Z_]*)@")
UP_TIMEOUT = 30


def require(binary, flag, package):
    need(None if os.path.exists(binary) else f"needs {binary} (apt-get install {package})", flag)


# -- templates -------------------------------------------------------------------------

def placeholders(name):
    return set(PLACEHOLDER.findall((DEPLOY / name).read_text()))


def render(name, **values):
    """deploy/<name> with every @NAME@ replaced; a missing value is an error, as in install.sh."""
    text = (DEPLOY / name).read_text()
    missing = placeholders(name) - set(values)
    assert not missing, f"no test value for {sorted(missing)} in deploy/{name}"
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def set_option(text, key, value):
    """coturn's `key=value` line switched to another value (the line must be there)."""
    pattern = re.compile(rf"^{re.escape(key)}=.*$", re.M)
    assert pattern.search(text), f"no {key}= line"
    return pattern.sub(f"{key}={value}", text)


def switch_line(text, old, new):
    """One exact line replaced (it must be there once)."""
    lines = text.split("\n")
    hits = [i for i, line in enumerate(lines) if line.strip() == old]
    assert len(hits) == 1, f"expected the line {old!r} once, found it {len(hits)} times"
    indent = lines[hits[0]][: len(lines[hits[0]]) - len(lines[hits[0]].lstrip())]
    lines[hits[0]] = indent + new
    return "\n".join(lines)


# -- systemd units ---------------------------------------------------------------------

def unit_settings(name):
    """{key: [values]} of a unit file's [Service] section."""
    settings, section = {}, None
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def unit_environment(name):
    env = {}
    for value in unit_settings(name).get("Environment", []):
        for assignment in shlex.split(value):
            key, _, val = assignment.partition("=")
            env[key] = val
    return env


def unit_command(name, env):
    """The unit's ExecStart as argv, with ${VAR}/$VAR expanded from `env` as systemd does
    (unit Environment=, then the environment file) and the installed venv's programs
    taken from the venv running the tests."""
    settings = unit_settings(name)
    (command,) = settings["ExecStart"]
    assert settings["WorkingDirectory"] == [APP_DIR], settings["WorkingDirectory"]
    argv = []
    for word in shlex.split(command):
        word = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], word)
        argv.append(word)
    venv_bin = APP_DIR + "/.venv/bin/"
    assert argv[0].startswith(venv_bin), argv[0]
    program = argv[0][len(venv_bin):]
    argv[0] = sys.executable if program == "python" else str(Path(sys.executable).parent / program)
    return argv


# -- coturn ----------------------------------------------------------------------------

def coturn_fixture(secret):
    """A module-scoped fixture `coturn`: deploy/turnserver.conf on loopback with `secret`."""

    @pytest.fixture(scope="module")
    def coturn(tmp_path_factory):
        require(COTURN, "REQUIRE_COTURN", "coturn")
        server = Coturn(tmp_path_factory.mktemp("coturn"), secret).start()
        yield server
        server.stop()

    return coturn


class Coturn:
    """coturn from Debian running deploy/turnserver.conf on loopback: the listening ports
    and the relay range switched to free ones, the log to a file, the server's address
    127.0.0.1 (which the config's allowed-peer-ip for the server's own address then
    allows), and loopback peers allowed (test only): the only way two browsers on this
    machine can relay to each other."""

    def __init__(self, tmp, secret, tls_dir=None):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.secret = secret
        self.port, self.tls_port = free_port(), free_port()
        self.relay_min, self.relay_max = free_udp_range(40, start=49200)
        self.tls_dir = Path(tls_dir) if tls_dir else self.tmp / "no-tls"
        text = render("turnserver.conf", LISTEN_IP="127.0.0.1", EXTERNAL_IP="127.0.0.1", DOMAIN="localhost",
                      TURN_SECRET=secret, TLS_DIR=self.tls_dir)
        text = set_option(text, "listening-port", self.port)
        text = set_option(text, "tls-listening-port", self.tls_port)
        text = set_option(text, "min-port", self.relay_min)
        text = set_option(text, "max-port", self.relay_max)
        text = switch_line(text, "syslog", f"log-file={self.tmp / 'turn.log'}")
        # For the test only: coturn refuses loopback peers before it reads its lists;
        # the config's own lists still decide (127.0.0.1 allowed, the rest of 127/8 not).
        text += "\nallow-loopback-peers\n"
        self.config = self.tmp / "turnserver.conf"
        self.config.write_text(text)
        self.process = None

    def url(self, transport="udp"):
        if transport == "tls":
            return f"turns:localhost:{self.tls_port}?transport=tcp"
        return f"turn:127.0.0.1:{self.port}?transport={transport}"

    def start(self):
        from app.ops import turn

        self.process = subprocess.Popen([COTURN, "-c", str(self.config), "--pidfile", str(self.tmp / "turn.pid")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + UP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"coturn exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                turn.binding(turn.parse_url(self.url()), timeout=0.5)
                return self
            except (OSError, turn.TurnError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"coturn does not answer:\n{self.log_tail()}") from None

    def log_tail(self, lines=40):
        logs = sorted(self.tmp.glob("turn*.log"))
        return "\n".join("\n".join(p.read_text(errors="replace").splitlines()[-lines:]) for p in logs)

    def stop(self):
        processes.stop(self.process)


# -- Caddy -----------------------------------------------------------------------------

# Only what a test run needs around the project's Caddyfile: no admin endpoint, no
# trust store changes, free ports, storage in the test's folder.
CADDY_GLOBALS = """{{
	admin off
	skip_install_trust
	http_port {http_port}
	https_port {https_port}
	storage file_system {storage}
}}
"""


class Caddy:
    """Caddy from Debian running deploy/Caddyfile: the site address on loopback, the
    `tls` line switched to Caddy's internal CA, the log into the test's folder.
    ``web_port``: one gunicorn's port, or a list of them (its upstreams, load-balanced as
    the Caddyfile says). With `site` (a format string with {https_port} and {web_port})
    it runs that site instead."""

    def __init__(self, tmp, web_port, app_dir=ROOT, site=None):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.https_port = free_port()
        self.storage = self.tmp / "caddy"
        self.access_log = self.tmp / "access.log"
        web_ports = list(web_port) if isinstance(web_port, (list, tuple)) else [web_port]
        web_port = web_ports[0]
        if site is None:
            upstreams = " ".join(f"127.0.0.1:{port}" for port in web_ports)
            site = render("Caddyfile", DOMAIN=f"localhost:{self.https_port}", ACME_EMAIL="it@praxis-beispiel.de",
                          ACCESS_LOG=self.access_log, APP_DIR=app_dir, WEB_UPSTREAMS=upstreams)
            site = switch_line(site, "tls it@praxis-beispiel.de", "tls internal")
        else:
            site = site.format(https_port=self.https_port, web_port=web_port)
        self.config = self.tmp / "Caddyfile"
        self.config.write_text(CADDY_GLOBALS.format(http_port=free_port(), https_port=self.https_port,
                                                    storage=self.storage) + site)
        self.base_url = f"https://localhost:{self.https_port}"
        self.process = None

    def start(self):
        env = {**os.environ, "HOME": str(self.tmp), "XDG_DATA_HOME": str(self.tmp),
               "XDG_CONFIG_HOME": str(self.tmp)}
        log = open(self.tmp / "caddy.log", "wb")
        self.process = subprocess.Popen([CADDY, "run", "--config", str(self.config), "--adapter", "caddyfile"],
                                        env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + UP_TIMEOUT
        while not (self.intermediate.exists() and (self.storage / "certificates").exists()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Caddy did not come up:\n"
                                   + (self.tmp / "caddy.log").read_text(errors="replace")[-3000:])
            time.sleep(0.05)
        return self

    @property
    def intermediate(self):
        return self.storage / "pki" / "authorities" / "local" / "intermediate.crt"

    @property
    def root(self):
        return self.storage / "pki" / "authorities" / "local" / "root.crt"

    def browser(self, playwright, *args):
        """Chromium that trusts certificates issued by this Caddy's CA, and only those:
        the CA's key is pinned, no certificate check is switched off."""
        return launch(playwright, f"--ignore-certificate-errors-spki-list={self.spki_pin()}", *args)

    def spki_pin(self):
        """base64 SHA-256 of the intermediate CA's key, for Chromium's
        --ignore-certificate-errors-spki-list."""
        import base64
        import hashlib

        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        cert = x509.load_pem_x509_certificate(self.intermediate.read_bytes())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    def access_entries(self):
        import json

        if not self.access_log.exists():
            return []
        # Only whole lines: Caddy may be writing the last one right now.
        lines = self.access_log.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self):
        processes.stop(self.process)


# -- the app's processes as systemd starts them ------------------------------------------

class DeployStack:
    """The three services started from their unit files (``start_unit``), with the
    environment systemd gives them; ``flask`` runs a CLI command as `sprechzimmer
    <command>` does (same settings, same database)."""

    def __init__(self, base_url, env, log_dir, practices, password):
        self.base_url, self.env, self.log_dir = base_url, env, Path(log_dir)
        self.practices = {tariff: {"name": name, "email": email, "password": password}
                          for tariff, (name, email) in practices.items()}
        self.password = password
        self.processes = []
        self.commands = {}

    def flask(self, *args):
        result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"flask {' '.join(args[:2])} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def start_unit(self, name, unit, **env):
        """The unit's ExecStart (read from the file, ${VAR} expanded) in the checkout,
        which stands for its WorkingDirectory. ``env``: settings of this one process
        (a second web process's BIND, as its own unit would set it)."""
        env = {**self.env, **env}
        argv = unit_command(unit, env)
        with open(self.log_dir / f"{name}.log", "wb") as log:
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((name, process))
        self.commands[name] = argv
        return process

    def wait_until_up(self, ports, timeout=UP_TIMEOUT):
        import socket

        def up(port):
            for name, process in self.processes:
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited with {process.returncode}:\n"
                                         + (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        for name, port in ports.items():
            wait_until(lambda: up(port), f"{name} answers on port {port}", timeout,
                       log=self.log_dir / f"{name}.log")

    def log(self, name):
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self):
        processes.stop_all([process for _, process in reversed(self.processes)])
