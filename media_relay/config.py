"""Relay settings from the environment, with safe single-machine defaults."""
import json
import os
from dataclasses import dataclass, field


class ConfigError(Exception):
    pass


@dataclass
class RelayConfig:
    secret: bytes
    control_host: str = "127.0.0.1"
    control_port: int = 5100
    udp_port_min: int = 40000
    udp_port_max: int = 40999
    bind_ips: tuple = ("127.0.0.1",)
    public_ip: str = ""
    max_rooms: int = 8
    max_participants: int = 5
    ice_servers: list = field(default_factory=list)
    max_video_bitrate: int = 600_000

    @classmethod
    def from_env(cls, environ=None):
        env = os.environ if environ is None else environ
        secret = env.get("RELAY_SECRET", "")
        if len(secret) < 16:
            raise ConfigError("RELAY_SECRET must be set (at least 16 characters)")
        try:
            config = cls(
                secret=secret.encode(),
                control_host=env.get("RELAY_CONTROL_HOST", "127.0.0.1").strip() or "127.0.0.1",
                control_port=int(env.get("RELAY_CONTROL_PORT", "5100")),
                udp_port_min=int(env.get("RELAY_UDP_PORT_MIN", "40000")),
                udp_port_max=int(env.get("RELAY_UDP_PORT_MAX", "40999")),
                bind_ips=tuple(
                    ip.strip() for ip in env.get("RELAY_BIND_IP", "127.0.0.1").split(",")
                    if ip.strip()
                ),
                public_ip=env.get("RELAY_PUBLIC_IP", "").strip(),
                max_rooms=int(env.get("RELAY_MAX_ROOMS", "8")),
                ice_servers=parse_ice_servers(env.get("RELAY_ICE_SERVERS", "")),
                max_video_bitrate=int(env.get("RELAY_MAX_VIDEO_BITRATE", "600000")),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if not 0 < config.udp_port_min <= config.udp_port_max <= 65535:
            raise ConfigError("RELAY_UDP_PORT_MIN/MAX must form a port range")
        return config


def parse_ice_servers(text):
    """RELAY_ICE_SERVERS is a JSON list like the browser's iceServers:
    [{"urls": "turn:turn.praxis.example:3478", "username": "...", "credential": "..."}].
    Empty means no STUN/TURN at all (never aiortc's Google default)."""
    from aiortc import RTCIceServer

    if not text.strip():
        return []
    try:
        entries = json.loads(text)
        return [
            RTCIceServer(urls=e["urls"], username=e.get("username"),
                         credential=e.get("credential"))
            for e in entries
        ]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"RELAY_ICE_SERVERS is not a JSON list of servers: {exc}") from exc
