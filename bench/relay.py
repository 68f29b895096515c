"""Media relay benchmark (issue 4): rooms of five synthetic participants, ramped from
one room upwards against `python -m media_relay`.

Each participant is an aiortc client (tests/relay/clients.py) that publishes a
pre-encoded VP8 clip at 640x360@15 fps (~500 kbit/s) and 20 ms Opus, and counts what
it receives without decoding. The send time travels in the abs-send-time header
extension, which the relay forwards unchanged. The relay runs on CPU 0, the clients
on CPU 1.

Per step it prints relay CPU per room, relay CPU µs per forwarded packet, the lowest
delivered fps of any subscription, one-way delay p50/p95 (client send → relay →
client receive on loopback), UDP receive-buffer errors and the clients' own CPU; the
ramp stops when the clients saturate their core or delivery drops below 14.5 fps.

    .venv/bin/python bench/relay.py [--max-rooms 6] [--window 10]

Not yet measured: the same clients against Janus VideoRoom (Debian `janus`), for the
µs-per-packet ratio the issue asks for.
"""
import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media_relay.client import RelayClient  # noqa: E402
from media_relay.forwarding import install_udp_port_range, restrict_host_addresses  # noqa: E402
from tests.relay.clients import Participant, vp8_clip  # noqa: E402
from tests.servers import free_port  # noqa: E402

SECRET = b"bench-secret-0123456789abcdef"
PEOPLE_PER_ROOM = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")
NTP_EPOCH = 2208988800


def cpu_seconds(pid="self"):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def udp_rcvbuf_errors():
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


class Counter:
    """What one participant receives, per m-line: packets, frames, delays."""

    def __init__(self):
        self.kinds = {}
        self.packets = 0
        self.frames = {}
        self.delays = []
        self._n = 0

    def on_packet(self, mid, packet):
        self.packets += 1
        if self.kinds.get(mid) == "video" and packet.marker:
            self.frames[mid] = self.frames.get(mid, 0) + 1
        self._n += 1
        if self._n % 8 == 0 and packet.extensions.abs_send_time is not None:
            now = int((time.time() + NTP_EPOCH) * 262144) & 0xFFFFFF
            self.delays.append(((now - packet.extensions.abs_send_time) & 0xFFFFFF) / 262144)

    def reset(self):
        self.packets = 0
        self.frames = {}
        self.delays = []


async def add_room(client, index, clip, counters, people):
    room = f"bench{index}"
    await asyncio.to_thread(client.create_room, room)
    for n in range(PEOPLE_PER_ROOM):
        counter = Counter()
        person = Participant(f"p{n}", slots=PEOPLE_PER_ROOM - 1, clip=clip,
                             on_packet=counter.on_packet)
        await person.join(client, room, spy=False)
        counter.kinds = {t.mid: t.kind for t in person.receiving}
        counters.append(counter)
        people.append(person)


async def run(args):
    affinity = os.sched_getaffinity(0)
    two_cores = len(affinity) >= 2
    relay_cpu, client_cpu = (sorted(affinity)[:2] if two_cores else (None, None))
    port = free_port()
    env = {**os.environ, "RELAY_SECRET": SECRET.decode(), "RELAY_CONTROL_PORT": str(port),
           "RELAY_UDP_PORT_MIN": "44000", "RELAY_UDP_PORT_MAX": "44999",
           "RELAY_BIND_IP": "127.0.0.1", "RELAY_MAX_ROOMS": str(args.max_rooms),
           "PYTHONPATH": str(ROOT)}
    relay = subprocess.Popen(
        [sys.executable, "-m", "media_relay"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, {relay_cpu})) if two_cores else None,
    )
    if two_cores:
        os.sched_setaffinity(0, {client_cpu})
    restrict_host_addresses(["127.0.0.1"])
    install_udp_port_range(asyncio.get_running_loop(), 45000, 45999)
    client = RelayClient("127.0.0.1", port, SECRET)
    for _ in range(100):
        try:
            await asyncio.to_thread(client.status)
            break
        except OSError:
            await asyncio.sleep(0.1)

    print("encoding the 640x360@15 VP8 clip once ...", flush=True)
    clip = vp8_clip(width=640, height=360, frames=45, fps=15, bitrate=500_000)
    kbit = sum(map(len, clip)) * 8 / 3 / 1000
    print(f"clip: {len(clip)} frames, {kbit:.0f} kbit/s; relay on CPU {relay_cpu}, "
          f"clients on CPU {client_cpu}\n")
    load = float(Path("/proc/loadavg").read_text().split()[0])
    if load > len(os.sched_getaffinity(relay.pid)) + len(os.sched_getaffinity(0)) - 1:
        print(f"warning: load average {load:.1f} — other processes share these cores; fps "
              "and delay suffer first, CPU per packet stays meaningful\n")
    print("rooms  relay%/room  µs/packet  packets/s  min fps  delay p50/p95 ms  "
          "rcvbuf errs  client CPU%")

    counters, people, results = [], [], []
    try:
        for rooms in range(1, args.max_rooms + 1):
            await add_room(client, rooms, clip, counters, people)
            await asyncio.sleep(args.warmup)
            for c in counters:
                c.reset()
            r0, c0, e0, t0 = cpu_seconds(relay.pid), cpu_seconds(), udp_rcvbuf_errors(), time.monotonic()
            await asyncio.sleep(args.window)
            r1, c1, e1, t1 = cpu_seconds(relay.pid), cpu_seconds(), udp_rcvbuf_errors(), time.monotonic()
            elapsed = t1 - t0
            packets = sum(c.packets for c in counters)
            # rooms are full, so every video m-line carries someone
            subscriptions = [c.frames.get(mid, 0) / elapsed for c in counters
                             for mid, kind in c.kinds.items() if kind == "video"]
            min_fps = min(subscriptions) if subscriptions else 0.0
            delays = sorted(d for c in counters for d in c.delays)
            p50 = statistics.median(delays) * 1000 if delays else float("nan")
            p95 = delays[int(len(delays) * 0.95)] * 1000 if delays else float("nan")
            relay_share = (r1 - r0) / elapsed
            client_share = (c1 - c0) / elapsed
            us_per_packet = (r1 - r0) / packets * 1e6 if packets else float("nan")
            results.append((rooms, relay_share, us_per_packet, min_fps, client_share))
            print(f"{rooms:5d}  {relay_share / rooms * 100:11.1f}  {us_per_packet:9.1f}  "
                  f"{packets / elapsed:9.0f}  {min_fps:7.1f}  {p50:7.1f} / {p95:6.1f}  "
                  f"{e1 - e0:11d}  {client_share * 100:10.0f}", flush=True)
            if client_share > 0.9:
                print(f"-> the clients saturate their core at {rooms} room(s): the ramp ends "
                      "here; figures beyond would measure the clients, not the relay")
                break
            if min_fps < 14.5:
                print(f"-> delivery below 14.5 fps at {rooms} room(s)")
                break
    finally:
        for person in people:
            await person.close()
        relay.terminate()
        relay.wait(10)

    good = [r for r in results if r[3] >= 14.5 and r[4] <= 0.9]
    if good:
        rooms, share, us, _, _ = good[-1]
        per_room = share / rooms
        print(f"\nrelay cost: {per_room * 100:.1f}% of a core per room, {us:.0f} µs per "
              f"forwarded packet (at {rooms} room(s))")
        print(f"rooms one relay core carries at ≤ 70% CPU: {int(0.70 / per_room)} "
              "(from the measured cost per room)")
    print("Janus VideoRoom comparison: not run (TODO: Debian `janus` on loopback).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-rooms", type=int, default=6)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
