"""Free loopback ports for the servers the tests start."""
import socket


def free_port():
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_range(size=20, start=44000):
    """(first, last) of a block of UDP ports free right now on loopback (for a relay
    process). tests/relay uses fixed ports below 44000; callers running side by side
    pick different starts."""
    for base in range(start, 60000, size):
        sockets = []
        try:
            for port in range(base, base + size):
                sockets.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                sockets[-1].bind(("127.0.0.1", port))
            return base, base + size - 1
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free UDP port range")
