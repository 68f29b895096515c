"""python -m media_relay: the relay process, stopped by SIGTERM/SIGINT."""
import asyncio
import logging
import signal
import sys

import logfmt

from .config import ConfigError, RelayConfig
from .control import ControlApi, start_control_server
from .forwarding import install_udp_port_range, restrict_host_addresses
from .rooms import Relay

logger = logging.getLogger("media_relay")


async def serve(config: RelayConfig, ready=None):
    loop = asyncio.get_running_loop()
    restrict_host_addresses(config.bind_ips)
    install_udp_port_range(loop, config.udp_port_min, config.udp_port_max)
    relay = Relay(config)
    server = await start_control_server(
        ControlApi(relay, config.secret), config.control_host, config.control_port
    )
    housekeeping = asyncio.ensure_future(relay.housekeeping())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info(
        "media relay started control=%s:%d udp=%d-%d bind=%s announced=%s max_rooms=%d",
        config.control_host, config.control_port, config.udp_port_min, config.udp_port_max,
        ",".join(config.bind_ips), config.public_ip or "-", config.max_rooms,
    )
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        logger.info("shutting down rooms=%d", len(relay.rooms))
        housekeeping.cancel()
        server.close()
        await relay.close()
        await server.wait_closed()


def main():
    logfmt.configure()
    # aioice and aiortc log peer addresses at INFO; ids are enough here
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    try:
        config = RelayConfig.from_env()
    except ConfigError as exc:
        print(f"media_relay: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
