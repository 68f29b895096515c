"""deploy/turnserver.conf in a real coturn (Debian), on loopback ports with a test
secret: only the web app's time-limited credentials get a relay, private and loopback
peers are refused (but for the server's own address), and TURN over TLS serves the
certificate Caddy obtained, handed over by deploy/turn-cert.sh, renewed by SIGUSR2.

Without coturn (or Caddy) these tests skip with the reason; CI sets REQUIRE_COTURN=1
and REQUIRE_CADDY=1.
"""
import grp
import os
import ssl
import stat
import subprocess
import time

import pytest

from app.consultation.ice import ice_servers
from app.ops import turn
from tests.support.deploy import CADDY, COTURN, DEPLOY, Caddy, Coturn, coturn_fixture, require
from tests.support.ports import free_port

SECRET = "turn-test-secret-" + "5" * 20


def credentials(secret=SECRET, url="turn:127.0.0.1:3478", ttl=600, now=None):
    (server,) = ice_servers({"TURN_URLS": url, "TURN_SECRET": secret, "TURN_TTL_SECONDS": ttl}, 42, now=now)
    return server["username"], server["credential"]


coturn = coturn_fixture(SECRET)


def test_only_issued_credentials_get_a_relay(coturn):
    url = turn.parse_url(coturn.url("udp"))
    assert turn.binding(url)[0] == "127.0.0.1"
    relayed = turn.allocate(url, *credentials())
    assert relayed[0] == "127.0.0.1" and coturn.relay_min <= relayed[1] <= coturn.relay_max

    user, _ = credentials()
    refused = {
        "another secret": credentials(secret="nicht-das-richtige-secret"),
        "expired": credentials(now=time.time() - 3600),
        "made-up password": (user, "geraten"),
    }
    for case, (username, password) in refused.items():
        with pytest.raises(turn.TurnError) as caught:
            turn.allocate(url, username, password)
        assert caught.value.code == 401, case


def test_private_and_loopback_peers_are_refused(coturn):
    """denied-peer-ip: a credential holder cannot make coturn talk into the server's
    networks. CreatePermission sends nothing to the peer; coturn answers 403."""
    with turn.Allocation(turn.parse_url(coturn.url("udp")), *credentials()) as allocation:
        for peer in ("10.1.2.3", "172.16.0.9", "192.168.178.1", "100.64.0.1", "169.254.169.254", "127.0.0.2",
                     "0.0.0.1", "224.0.0.251"):
            with pytest.raises(turn.TurnError) as caught:
                allocation.permit(peer)
            assert caught.value.code == 403, peer
        # The server's own address (here 127.0.0.1) is the one exception (allowed-peer-ip).
        allocation.permit("127.0.0.1")
        # A public address is fine.
        allocation.permit("198.51.99.7")


def _group():
    return grp.getgrgid(os.getgid()).gr_name


def turn_cert(env_extra, **kwargs):
    env = {"PATH": os.environ["PATH"], "TURN_TLS_GROUP": _group(), "TURN_RELOAD": "", "TURN_RESTART": "",
           **env_extra}
    return subprocess.run(["bash", str(DEPLOY / "turn-cert.sh")], env=env, capture_output=True, text=True,
                          timeout=30, **kwargs)


def test_turn_over_tls_with_the_certificate_caddy_obtained(tmp_path):
    require(COTURN, "REQUIRE_COTURN", "coturn")
    require(CADDY, "REQUIRE_CADDY", "caddy")
    # Caddy with the project's Caddyfile obtains a certificate for its site (here from
    # its internal CA, for localhost); the web app need not run for that.
    caddy = Caddy(tmp_path / "caddy-run", web_port=free_port()).start()
    try:
        crt = caddy.storage / "certificates" / "local" / "localhost" / "localhost.crt"
        deadline = time.monotonic() + 30
        while not crt.exists():
            assert time.monotonic() < deadline, "Caddy issued no certificate for localhost"
            time.sleep(0.1)
        root_ca = caddy.root.read_bytes()
    finally:
        caddy.stop()

    tls_dir = tmp_path / "turn-tls"
    env = {"SPRECHZIMMER_DOMAIN": "localhost", "CADDY_DATA_DIR": str(caddy.storage), "TURN_TLS_DIR": str(tls_dir)}
    marker = tmp_path / "restarted"
    first = turn_cert({**env, "TURN_RESTART": f"touch {marker}"})
    assert first.returncode == 0, first.stderr
    assert "certificate for localhost updated" in first.stdout
    assert marker.exists()  # the first certificate: coturn is restarted to open its TLS port
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o750
    for name in ("cert.pem", "key.pem"):
        assert stat.S_IMODE((tls_dir / name).stat().st_mode) == 0o640
    assert (tls_dir / "cert.pem").read_bytes() == crt.read_bytes()

    server = Coturn(tmp_path / "coturn", SECRET, tls_dir=tls_dir).start()
    try:
        context = ssl.create_default_context(cadata=root_ca.decode())
        url = turn.parse_url(server.url("tls"))
        assert turn.binding(url, ssl_context=context)[0] == "127.0.0.1"
        assert turn.allocate(url, *credentials(), ssl_context=context)
        with pytest.raises(ssl.SSLCertVerificationError):  # it is Caddy's certificate, nothing else
            turn.binding(url, ssl_context=ssl.create_default_context())

        # Nothing new at Caddy: nothing copied, coturn left alone.
        reloaded = tmp_path / "reloaded"
        again = turn_cert({**env, "TURN_RELOAD": f"touch {reloaded}"})
        assert again.returncode == 0 and again.stdout == "" and not reloaded.exists()

        # Caddy renewed (here: a certificate from another CA takes the old one's place):
        # copied, coturn told with SIGUSR2, and the TLS port serves the new one.
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("localhost")
        crt.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        crt.with_suffix(".key").write_bytes(leaf.private_key_pem.bytes())
        renewed = turn_cert({**env, "TURN_RELOAD": f"kill -USR2 {server.process.pid}"})
        assert renewed.returncode == 0 and "updated" in renewed.stdout, renewed.stderr
        new_context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
        deadline = time.monotonic() + 10
        while True:
            try:
                turn.binding(url, ssl_context=new_context)
                break
            except ssl.SSLError:
                assert time.monotonic() < deadline, "coturn still serves the old certificate:\n" + server.log_tail()
                time.sleep(0.2)
    finally:
        server.stop()


def test_turn_cert_without_a_certificate_yet(tmp_path):
    result = turn_cert({"SPRECHZIMMER_DOMAIN": "video.praxis-beispiel.de", "CADDY_DATA_DIR": str(tmp_path),
                        "TURN_TLS_DIR": str(tmp_path / "tls")})
    assert result.returncode == 0
    assert "no certificate for video.praxis-beispiel.de" in result.stderr
    assert not (tmp_path / "tls").exists()
