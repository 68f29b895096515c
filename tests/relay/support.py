"""Helpers for the relay tests: an in-process relay, async tests without plugins and
the loopback guard (no conftest.py here: its module name would shadow tests/conftest.py,
which other tests import as `conftest`)."""
import asyncio
import contextlib
import functools
import ipaddress
import socket

import aioice.ice
import pytest

from media_relay.client import RelayClient
from media_relay.config import RelayConfig
from media_relay.control import ControlApi, start_control_server
from media_relay.forwarding import install_udp_port_range, restrict_host_addresses
from media_relay.rooms import Relay
from tests.servers import free_port

SECRET = b"test-secret-0123456789abcdef"
TEST_TIMEOUT = 40


def asynctest(coro):
    """Async tests without plugins, as aiortc's tests/utils.py does."""

    @functools.wraps(coro)
    def wrap(*args, **kwargs):
        asyncio.run(asyncio.wait_for(coro(*args, **kwargs), TEST_TIMEOUT))

    return wrap


def _is_loopback(host):
    if host in ("localhost", None, ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Records (and refuses) every name lookup and datagram/connection to anything but
    loopback: aiortc's Google STUN default or a host candidate on another interface
    would show up here. Every relay test asserts the list stays empty."""
    violations = []
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_sendto = socket.socket.sendto
    real_connect = socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            violations.append(("resolve", host))
            raise socket.gaierror(f"test guard: no lookups of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):
        if not _is_loopback(host):
            violations.append(("resolve", host))
            raise socket.gaierror(f"test guard: no lookups of {host}")
        return real_gethostbyname(host)

    def sendto(sock, data, *args):
        address = args[-1]
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            violations.append(("sendto", address[0]))
            raise OSError("test guard: only loopback traffic")
        return real_sendto(sock, data, *args)

    def connect(sock, address):
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            violations.append(("connect", address[0]))
            raise OSError("test guard: only loopback traffic")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    restrict_host_addresses(["127.0.0.1"])
    yield violations
    assert violations == [], f"traffic beyond loopback: {violations}"


@contextlib.asynccontextmanager
async def running_relay(**overrides):
    """The relay in this process and loop, its control API on a free port."""
    settings = dict(secret=SECRET, control_port=free_port(), udp_port_min=42000,
                    udp_port_max=42999, bind_ips=("127.0.0.1",))
    settings.update(overrides)
    config = RelayConfig(**settings)
    install_udp_port_range(asyncio.get_running_loop(), config.udp_port_min, config.udp_port_max)
    relay = Relay(config)
    server = await start_control_server(ControlApi(relay, SECRET), "127.0.0.1", config.control_port)
    try:
        yield relay, RelayClient("127.0.0.1", config.control_port, SECRET)
    finally:
        server.close()
        await relay.close()
        await server.wait_closed()
