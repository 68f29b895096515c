"""deploy/ as files: install.sh refuses bad input before it changes anything, its shell
scripts are shellcheck clean, every placeholder of the templates gets a value, the
systemd units are hardened and start gunicorn exactly as ./run does.

install.sh runs here with every command that could change the system replaced by a
stub that records the call and fails: a refusal must come before the first of them.
shellcheck: skips without it; CI sets REQUIRE_SHELLCHECK=1.
"""
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.deploy import DEPLOY, ROOT, placeholders, require, unit_environment, unit_settings

INSTALL = DEPLOY / "install.sh"
# Everything install.sh uses to change the system.
CHANGERS = ["apt-get", "dpkg-query", "useradd", "install", "rsync", "systemctl", "runuser", "ln", "rm", "cp", "mv",
            "chown", "chmod", "flock", "psql", "createuser", "createdb", "caddy", "python3", "sha256sum", "tee",
            "redis-cli"]
GOOD = ["--domain", "video.praxis-beispiel.de", "--email", "it@praxis-beispiel.de"]


@pytest.fixture
def stubbed(tmp_path):
    """A PATH whose system-changing commands only write their name into calls.log."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "calls.log"
    for name in CHANGERS:
        path = stubs / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexit 1\n')
        path.chmod(0o755)
    return stubs, log


def install(stubbed, *args, os_release=None, as_user=None, script=INSTALL):
    stubs, log = stubbed
    env = {"PATH": f"{stubs}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    if os_release:
        env["SPRECHZIMMER_OS_RELEASE"] = str(os_release)
    command = ["bash", str(script), *args]
    if as_user:
        command = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *command]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd="/")
    calls = log.read_text() if log.exists() else ""
    return result, calls


def refused(result, calls, german, english):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert not calls, f"install.sh changed something before refusing: {calls}"
    assert result.stdout == ""
    assert f"Fehler: {german}" in result.stderr, result.stderr
    assert f"Error: {english}" in result.stderr, result.stderr


def test_help_in_german_and_english(stubbed):
    for flag in ("--help", "-h"):
        result, calls = install(stubbed, flag)
        assert result.returncode == 0 and not calls
        assert "Sprechzimmer auf einem Debian-12-Server installieren oder aktualisieren" in result.stdout
        assert "Install or update Sprechzimmer on a Debian 12 server" in result.stdout
        assert "--domain NAME" in result.stdout and "--email ADRESSE" in result.stdout
        assert "--email ADDRESS" in result.stdout


@pytest.mark.parametrize("args, german, english", [
    ([], "--domain fehlt", "--domain is missing"),
    (["--email", "it@praxis-beispiel.de"], "--domain fehlt", "--domain is missing"),
    (["--domain", "203.0.113.10", "--email", "it@praxis-beispiel.de"],
     "--domain 203.0.113.10 ist eine IP-Adresse", "--domain 203.0.113.10 is an IP address"),
    (["--domain", "2001:db8::1", "--email", "it@praxis-beispiel.de"],
     "--domain 2001:db8::1 ist eine IP-Adresse", "--domain 2001:db8::1 is an IP address"),
    (["--domain", "video praxis.de", "--email", "it@praxis-beispiel.de"],
     "--domain video praxis.de ist kein gültiger Domainname", "--domain video praxis.de is not a valid domain name"),
    (["--domain", "localhost", "--email", "it@praxis-beispiel.de"],
     "--domain localhost ist kein gültiger Domainname", "--domain localhost is not a valid domain name"),
    (["--domain", "video.praxis-beispiel.de"], "--email fehlt", "--email is missing"),
    (["--domain", "video.praxis-beispiel.de", "--email", "keine-adresse"],
     "--email keine-adresse ist keine gültige E-Mail-Adresse", "--email keine-adresse is not a valid e-mail address"),
    (["--domain"], "--domain braucht einen Wert", "--domain needs a value"),
    (["--domain", "--email", "it@praxis-beispiel.de"], "--domain braucht einen Wert", "--domain needs a value"),
    ([*GOOD, "--public-ip", "999.1.1.1"], "--public-ip 999.1.1.1 ist keine IPv4-Adresse",
     "--public-ip 999.1.1.1 is not an IPv4 address"),
    ([*GOOD, "--verbose"], "Unbekannte Option: --verbose", "unknown option: --verbose"),
])
def test_bad_arguments_are_refused_before_any_change(stubbed, args, german, english):
    result, calls = install(stubbed, *args)
    refused(result, calls, german, english)
    assert "deploy/install.sh --help" in result.stderr


def test_not_root_is_refused(stubbed):
    if os.geteuid() != 0:
        result, calls = install(stubbed, *GOOD)
        refused(result, calls, "Bitte als root ausführen", "please run as root")
        return
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to drop root")
    # The checkout may sit where nobody else can read it (/root/...): a readable copy of
    # the script is enough, the root check comes before it looks at its checkout.
    folder = tempfile.mkdtemp(prefix="install-as-nobody-")
    try:
        os.chmod(folder, 0o755)
        (Path(folder) / "deploy").mkdir(mode=0o755)
        shutil.copy(INSTALL, Path(folder) / "deploy" / "install.sh")
        result, calls = install(stubbed, *GOOD, as_user="65534", script=Path(folder) / "deploy" / "install.sh")
    finally:
        shutil.rmtree(folder)
    refused(result, calls, "Bitte als root ausführen", "please run as root")


@pytest.mark.parametrize("release, shown", [
    ('ID=ubuntu\nVERSION_ID="24.04"\n', "ubuntu 24.04"),
    ('ID=debian\nVERSION_ID="11"\n', "debian 11"),
    ('ID=fedora\nVERSION_ID=40\n', "fedora 40"),
])
def test_other_systems_are_refused(stubbed, tmp_path, release, shown):
    if os.geteuid() != 0:
        pytest.skip("the system check comes after the root check")
    os_release = tmp_path / "os-release"
    os_release.write_text(release)
    result, calls = install(stubbed, *GOOD, os_release=os_release)
    refused(result, calls, f"Dieses Skript richtet Debian 12 (bookworm) ein; hier läuft {shown}. "
                           "Es wurde nichts verändert.",
            f"this script sets up Debian 12 (bookworm); this is {shown}. Nothing was changed.")


def test_shell_scripts_are_shellcheck_clean():
    require("/usr/bin/shellcheck", "REQUIRE_SHELLCHECK", "shellcheck")
    scripts = sorted(str(p) for p in DEPLOY.glob("*.sh"))
    assert scripts
    result = subprocess.run(["shellcheck", "--severity=style", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # The `sprechzimmer` command install.sh writes, as it writes it.
    block = re.search(r'^wrapper="\$\(cat <<EOF\n.*?^EOF\n\)"$', INSTALL.read_text(), re.S | re.M).group(0)
    wrapper = subprocess.run(["bash", "-c", block + '\nprintf "%s\\n" "$wrapper"'], capture_output=True, text=True,
                             env={"ENV_FILE": "/etc/sprechzimmer/env", "APP_DIR": "/opt/sprechzimmer",
                                  "SERVICE_USER": "sprechzimmer", "PATH": os.environ["PATH"]}).stdout
    assert wrapper.startswith("#!/bin/bash") and 'runuser -u "sprechzimmer"' in wrapper, wrapper
    result = subprocess.run(["shellcheck", "-"], input=wrapper, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + wrapper


def test_install_gives_every_placeholder_a_value():
    """install.sh's render calls name each placeholder of the template they render
    (the tests render them with deploy_parts.render, which insists on the same)."""
    script = INSTALL.read_text()
    for template in ("Caddyfile", "turnserver.conf"):
        call = re.search(rf"render {re.escape(template)} (.*?)\)\"$", script, re.S | re.M)
        assert call, f"install.sh does not render {template}"
        given = set(re.findall(r"\b([A-Z][A-Z_]*)=", call.group(1)))
        assert placeholders(template) == given, (template, placeholders(template), given)


SERVICES = ["sprechzimmer-web.service", "sprechzimmer-outbox.service", "sprechzimmer-relay.service"]


@pytest.mark.parametrize("name", SERVICES + ["sprechzimmer-backup.service"])
def test_units_are_hardened(name):
    settings = unit_settings(name)
    for key, value in {"User": "sprechzimmer", "EnvironmentFile": "/etc/sprechzimmer/env",
                       "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
                       "StateDirectory": "sprechzimmer"}.items():
        assert settings.get(key) == [value], (name, key, settings.get(key))
    if name in SERVICES:
        assert settings["Restart"] == ["on-failure"]
        install_section = (DEPLOY / "systemd" / name).read_text().split("[Install]")[1]
        assert "WantedBy=sprechzimmer.target" in install_section
    else:
        assert settings["ReadWritePaths"] == ["/var/backups/sprechzimmer"]


def test_web_unit_starts_gunicorn_exactly_as_run_does():
    """./run's gunicorn line and the unit's ExecStart, each with its defaults filled in."""
    run = (ROOT / "run").read_text()
    line = re.search(r"^\.venv/bin/gunicorn (.*?wsgi:app)", run, re.S | re.M).group(1).replace("\\\n", " ")
    run_args = [re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), word) for word in shlex.split(line)]
    run_args = [re.sub(r"\$\{(\w+):-(.*)\}", lambda m: m.group(2), word) for word in run_args]  # nested default
    defaults = {"WEB_THREADS": "2100", "WEB_CONNECTIONS": "2100", "BIND": "127.0.0.1:5000"}
    env = unit_environment("sprechzimmer-web.service")
    assert {k: env[k] for k in defaults} == defaults
    (command,) = unit_settings("sprechzimmer-web.service")["ExecStart"]
    unit_args = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word) for word in shlex.split(command)[1:]]
    assert run_args == unit_args, (run_args, unit_args)
    assert unit_settings("sprechzimmer-outbox.service")["ExecStart"] == ["/opt/sprechzimmer/.venv/bin/flask outbox work"]
    assert "\n.venv/bin/flask outbox work &" in run
    assert unit_settings("sprechzimmer-relay.service")["ExecStart"] == ["/opt/sprechzimmer/.venv/bin/python -m media_relay"]
    assert "\n.venv/bin/python -m media_relay &" in run
