"""Media relay benchmark (issue 4): rooms of five synthetic participants, ramped from
one room upwards, against `python -m media_relay` and then against Janus VideoRoom
(Debian's `janus`, a native C SFU) with the same clients, in the same run.

Each participant is a synthetic browser (tests/support/browsers.py) that publishes a
pre-encoded VP8 clip at 640x360@15 fps (~500 kbit/s) and 20 ms Opus as av.Packets (no
encoder runs anywhere) and counts what it receives without decoding. Every frame
carries its send time (time.time(), 8 bytes appended to the payload; nobody decodes,
and neither SFU touches payloads), so the latency client → SFU → client is measured
the same way for both; on loopback all of it is added by the SFU and the clients' own
event loop. Every peer connection is made with RTCConfiguration(iceServers=[])
through media_relay.forwarding.peer_connection, and all traffic stays on 127.0.0.x
(see reexec_in_private_netns for why Janus needs 127.0.0.2).

The SFU runs on one core, the clients in this process on another. Per step it prints
the SFU's CPU per room (/proc/PID/stat), its CPU µs per forwarded packet (packets the
subscribers received), the lowest delivered fps of any subscription, latency
p50/p95, UDP receive-buffer errors (/proc/net/snmp), the clients' own CPU, how long
SFU and clients waited for a CPU that other processes held (/proc/PID/task/*/
schedstat; "wait%") and the load average. The ramp stops when the clients saturate
their core (their figures would then be the clients', not the SFU's), or delivery
drops below 14.5 fps or loses packets, saying whether other processes starved it.

    .venv/bin/python bench/relay.py [--max-rooms 12] [--window 8] [--no-janus]
    .venv/bin/python bench/relay.py --quick        # about a minute, smoke run
"""
import argparse
import asyncio
import http.client
import itertools
import json
import os
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
from aiortc import MediaStreamTrack, RTCSessionDescription

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media_relay.forwarding import (  # noqa: E402
    install_udp_port_range,
    peer_connection,
    restrict_host_addresses,
)
from tests.support.browsers import SyntheticBrowser, vp8_clip  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import cpu_seconds  # noqa: E402
from tests.support.relay import RelayProcess  # noqa: E402

SECRET = b"bench-secret-0123456789abcdef"
PEOPLE_PER_ROOM = 5
MIN_FPS = 14.5
CORE_BUDGET = 0.70
CLIENT_SATURATED = 0.90
# run-queue wait of SFU + clients per second of wall time (see runqueue_wait)
STARVED = 0.10
STAMP = struct.Struct("!d")
JANUS_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")
JANUS_TEMPLATES = Path(__file__).resolve().parent / "janus"


def runqueue_wait(pid="self"):
    """Seconds the process's threads spent runnable but waiting for a CPU: high
    when other processes on the machine take the core away."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass  # the thread ended meanwhile
    return total / 1e9


def udp_rcvbuf_errors():
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


def load_average():
    return float(Path("/proc/loadavg").read_text().split()[0])


# --- clients -------------------------------------------------------------------------

class StampedTrack(MediaStreamTrack):
    """Appends the send time to each frame the inner PacketTrack yields."""

    def __init__(self, inner):
        super().__init__()
        self.kind = inner.kind
        self._inner = inner

    async def recv(self):
        packet = await self._inner.recv()
        stamped = av.Packet(bytes(packet) + STAMP.pack(time.time()))
        stamped.pts, stamped.time_base = packet.pts, packet.time_base
        return stamped


def stamp(person):
    for transceiver in (person.audio, person.video):
        transceiver.sender.replaceTrack(StampedTrack(transceiver.sender.track))


class Counter:
    """What one peer connection receives, per m-line: packets, frames, delays."""

    def __init__(self):
        self.kinds = {}
        self.packets = 0
        self.frames = {}
        self.delays = []

    def watch(self, pc):
        """Counts instead of handing packets to aiortc's jitter buffer and decoder."""
        for transceiver in pc.getTransceivers():
            self._hook(transceiver)

    def _hook(self, transceiver):
        async def handle_rtp(packet, arrival_time_ms):
            self.on_packet(transceiver.mid, packet)

        transceiver.receiver._handle_rtp_packet = handle_rtp

    def on_packet(self, mid, packet):
        self.packets += 1
        kind = self.kinds.get(mid)
        if kind == "video":
            if not packet.marker:
                return
            self.frames[mid] = self.frames.get(mid, 0) + 1
        elif kind != "audio":
            return
        # the last packet of a frame ends with its stamp (unless the packetizer left
        # fewer than 8 bytes of the frame for it: then the plausibility check drops it)
        if len(packet.payload) >= 12:
            delay = time.time() - STAMP.unpack_from(packet.payload, len(packet.payload) - 8)[0]
            if 0 <= delay < 5:
                self.delays.append(delay)

    def reset(self):
        self.packets = 0
        self.frames = {}
        self.delays = []

    def video_mids(self):
        return [mid for mid, kind in self.kinds.items() if kind == "video"]


# --- the two SFUs ----------------------------------------------------------------------

class OurRelay:
    name = "media_relay"

    def __init__(self, args, cpu):
        self.args, self.cpu = args, cpu
        self.relay = self.process = None
        self.client = None
        self.people = []

    async def start(self):
        command = ("-m", "media_relay")
        if self.args.profile:
            command = ("-m", "cProfile", "-o", self.args.profile, "-m", "media_relay")
        log = Path(tempfile.mkdtemp(prefix="bench-relay-")) / "relay.log"
        self.relay = RelayProcess(log, secret=SECRET, udp_range=(44000, 44999), command=command,
                                  preexec_fn=pin(self.cpu), RELAY_MAX_ROOMS=str(self.args.max_rooms))
        await asyncio.to_thread(self.relay.start)
        self.process = self.relay.process
        self.client = self.relay.client()

    async def add_room(self, index, clip, counters):
        room = f"bench{index}"
        await asyncio.to_thread(self.client.create_room, room)
        for n in range(PEOPLE_PER_ROOM):
            counter = Counter()
            person = SyntheticBrowser(f"p{n}", slots=PEOPLE_PER_ROOM - 1, clip=clip,
                                      on_packet=counter.on_packet)
            stamp(person)
            self.people.append(person)
            await person.join(self.client, room, spy=False)
            counter.kinds = {t.mid: t.kind for t in person.receiving}
            counters.append(counter)

    async def stop(self):
        for person in self.people:
            await person.close()
        if self.relay is not None:
            # SIGTERM lets cProfile (--profile) write its file
            self.relay.stop()


class JanusError(Exception):
    pass


class JanusApi:
    """Janus's HTTP API, synchronous (called through asyncio.to_thread): one session,
    a handle per peer connection; asynchronous VideoRoom replies are fetched by long
    poll and matched by transaction."""

    def __init__(self, port):
        self.port = port
        self._tx = itertools.count(1)
        self.session = None

    def _http(self, method, path, body=None, timeout=15):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=data,
                               headers={"Content-Type": "application/json"} if data else {})
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def _post(self, path, body):
        transaction = f"t{next(self._tx)}"
        reply = self._http("POST", path, {**body, "transaction": transaction})
        if reply.get("janus") == "error":
            raise JanusError(reply["error"])
        return transaction, reply

    def create_session(self):
        _, reply = self._post("/janus", {"janus": "create"})
        self.session = reply["data"]["id"]

    def attach(self):
        _, reply = self._post(f"/janus/{self.session}",
                              {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        return reply["data"]["id"]

    def message(self, handle, body, jsep=None):
        """A VideoRoom request; returns (plugin data, jsep) of its reply."""
        request = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        transaction, reply = self._post(f"/janus/{self.session}/{handle}", request)
        if reply.get("janus") == "ack":
            reply = self._wait_for(transaction)
        data = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{data.get('error_code')}: {data['error']}")
        return data, reply.get("jsep")

    def _wait_for(self, transaction, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self._http("GET", f"/janus/{self.session}?maxev=10", timeout=40)
            for event in events if isinstance(events, list) else [events]:
                if event.get("transaction") == transaction and event.get("janus") != "ack":
                    return event
        raise JanusError(f"no reply to {transaction}")

    def trickle_done(self, handle):
        self._post(f"/janus/{self.session}/{handle}",
                   {"janus": "trickle", "candidate": {"completed": True}})

    def destroy(self):
        if self.session is not None:
            try:
                self._post(f"/janus/{self.session}", {"janus": "destroy"})
            except (OSError, JanusError, ValueError):
                pass


class JanusRoomClient:
    """What SyntheticBrowser.join expects of a relay client: join(room, name, offer sdp)
    → {"sdp": answer}; here through a VideoRoom publisher handle."""

    def __init__(self, api):
        self.api = api

    def join(self, room, name, sdp):
        handle = self.api.attach()
        self.api.message(handle, {"request": "join", "ptype": "publisher", "room": room,
                                  "id": name, "display": name})
        _, jsep = self.api.message(handle, {"request": "publish", "audio": True, "video": True},
                                   {"type": "offer", "sdp": sdp})
        self.api.trickle_done(handle)
        if jsep is None:
            raise JanusError("publish: no answer")
        return {"sdp": jsep["sdp"], "slots": []}


class Janus:
    name = "Janus"

    def __init__(self, args, cpu):
        self.args, self.cpu = args, cpu
        self.process = None
        self.api = None
        self.people = []
        self.subscribers = []
        self.dir = None
        self.log = None

    @staticmethod
    def unavailable():
        """Why Janus cannot run here, or None."""
        if shutil.which("janus") is None:
            return "the `janus` executable is not installed (apt-get install -y janus)"
        for lib in ("plugins/libjanus_videoroom.so", "transports/libjanus_http.so"):
            if not (JANUS_LIBS / lib).exists():
                return f"{JANUS_LIBS / lib} is missing"
        return None

    def version(self):
        out = subprocess.run(["janus", "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "?"

    async def start(self):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-janus-"))
        folders = {name: self.dir / name for name in
                   ("configs", "plugins", "transports", "events", "loggers")}
        for folder in folders.values():
            folder.mkdir()
        # only the two libraries the benchmark needs: no other plugin, transport,
        # event handler or logger can load
        (folders["plugins"] / "libjanus_videoroom.so").symlink_to(
            JANUS_LIBS / "plugins/libjanus_videoroom.so")
        (folders["transports"] / "libjanus_http.so").symlink_to(
            JANUS_LIBS / "transports/libjanus_http.so")
        port = free_port()
        values = {**{k: str(v) for k, v in folders.items()},
                  "rtp_ports": "46000-46999", "http_port": str(port), "ice_ip": JANUS_IP}
        for template in JANUS_TEMPLATES.glob("*.jcfg"):
            text = template.read_text()
            for key, value in values.items():
                text = text.replace("{" + key + "}", value)
            (folders["configs"] / template.name).write_text(text)
        self.log = self.dir / "janus.log"
        self.process = subprocess.Popen(
            ["janus", "-C", str(folders["configs"] / "janus.jcfg"), "-F", str(folders["configs"]),
             "-o", "-N", "-L", str(self.log)],
            cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            preexec_fn=pin(self.cpu),
        )
        self.api = JanusApi(port)
        for _ in range(100):
            if self.process.poll() is not None:
                raise JanusError(f"janus exited with {self.process.returncode}: {self.log_tail()}")
            try:
                await asyncio.to_thread(self.api.create_session)
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise JanusError(f"janus HTTP API did not answer: {self.log_tail()}")

    def log_tail(self, lines=8):
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def add_room(self, index, clip, counters):
        room = f"bench{index}"
        admin = await asyncio.to_thread(self.api.attach)
        await asyncio.to_thread(self.api.message, admin, {
            "request": "create", "room": room, "publishers": PEOPLE_PER_ROOM,
            "audiocodec": "opus", "videocodec": "vp8", "bitrate": 600_000,
            "notify_joining": False, "permanent": False,
        })
        names = [f"{room}p{n}" for n in range(PEOPLE_PER_ROOM)]
        publishers = JanusRoomClient(self.api)
        for name in names:
            person = SyntheticBrowser(name, slots=0, clip=clip)
            stamp(person)
            self.people.append(person)
            await person.join(publishers, room, spy=False)
        for name in names:
            # Janus >= 1.0: one multistream subscriber handle (one peer connection)
            # per participant, carrying the four other feeds
            counter = Counter()
            pc = peer_connection([])
            self.subscribers.append(pc)
            handle = await asyncio.to_thread(self.api.attach)
            offer = await self._subscribe(handle, room, [other for other in names if other != name])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
            counter.watch(pc)
            await pc.setLocalDescription(await pc.createAnswer())
            counter.kinds = {t.mid: t.kind for t in pc.getTransceivers()}
            await asyncio.to_thread(self.api.message, handle, {"request": "start"},
                                    {"type": "answer", "sdp": pc.localDescription.sdp})
            await asyncio.to_thread(self.api.trickle_done, handle)
            counters.append(counter)

    async def _subscribe(self, handle, room, feeds):
        """Janus offers a feed only once its publisher's media is set up ("No such
        feed" until then)."""
        for _ in range(100):
            try:
                _, offer = await asyncio.to_thread(self.api.message, handle, {
                    "request": "join", "ptype": "subscriber", "room": room,
                    "streams": [{"feed": feed} for feed in feeds],
                })
                return offer
            except JanusError as exc:
                if not str(exc).startswith("428:"):
                    raise
                await asyncio.sleep(0.1)
        raise JanusError(f"feeds {feeds} never became available: {self.log_tail()}")

    async def stop(self):
        for pc in self.subscribers:
            await pc.close()
        for person in self.people:
            await person.close()
        if self.api is not None:
            await asyncio.to_thread(self.api.destroy)
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def pin(cpu):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


# --- the ramp ----------------------------------------------------------------------

HEADER = ("rooms  SFU%/room  µs/packet  packets/s  min fps  latency p50/p95 ms  "
          "rcvbuf errs  client CPU%  wait%  load")


async def ramp(sfu, args, clip, max_rooms, stop_below_fps=True):
    """Returns one dict per measured step."""
    print(f"\n== {sfu.name} ==")
    print(HEADER, flush=True)
    counters, results = [], []
    for rooms in range(1, max_rooms + 1):
        await sfu.add_room(rooms, clip, counters)
        await asyncio.sleep(args.warmup)
        for c in counters:
            c.reset()
        pid = sfu.process.pid
        s0, c0, e0, t0 = cpu_seconds(pid), cpu_seconds(), udp_rcvbuf_errors(), time.monotonic()
        w0 = runqueue_wait(pid) + runqueue_wait()
        await asyncio.sleep(args.window)
        s1, c1, e1, t1 = cpu_seconds(pid), cpu_seconds(), udp_rcvbuf_errors(), time.monotonic()
        w1 = runqueue_wait(pid) + runqueue_wait()
        elapsed = t1 - t0
        packets = sum(c.packets for c in counters)
        # rooms are full, so every video m-line carries someone
        subscriptions = [c.frames.get(mid, 0) / elapsed for c in counters for mid in c.video_mids()]
        delays = sorted(d for c in counters for d in c.delays)
        step = {
            "rooms": rooms,
            "sfu": (s1 - s0) / elapsed,
            "client": (c1 - c0) / elapsed,
            "us": (s1 - s0) / packets * 1e6 if packets else float("nan"),
            "pps": packets / elapsed,
            "min_fps": min(subscriptions) if subscriptions else 0.0,
            "p50": statistics.median(delays) * 1000 if delays else float("nan"),
            "p95": delays[int(len(delays) * 0.95)] * 1000 if delays else float("nan"),
            "errors": e1 - e0,
            "wait": (w1 - w0) / elapsed,
            "load": load_average(),
        }
        step["saturated"] = step["client"] >= CLIENT_SATURATED
        step["starved"] = step["wait"] >= STARVED
        results.append(step)
        print(f"{rooms:5d}  {step['sfu'] / rooms * 100:9.1f}  {step['us']:9.1f}  "
              f"{step['pps']:9.0f}  {step['min_fps']:7.1f}  {step['p50']:7.1f} / {step['p95']:6.1f}"
              f"  {step['errors']:11d}  {step['client'] * 100:10.0f}  {step['wait'] * 100:7.0f}"
              f"  {step['load']:4.1f}", flush=True)
        if not packets:
            print(f"-> {sfu.name} delivered no packets: stopping")
            break
        if step["saturated"]:
            print(f"-> the clients saturate their core at {rooms} room(s) ({step['client']:.0%}"
                  " of a core): the ramp ends here; this step's fps and latency are the "
                  "clients', not the SFU's")
            break
        if step["min_fps"] < MIN_FPS or step["errors"]:
            cause = (f"SFU and clients waited {step['wait']:.0%} of the time for a CPU taken by "
                     f"other processes (load {step['load']:.1f}): not the SFU's own limit"
                     if step["starved"] else "with unsaturated, unstarved clients")
            print(f"-> min fps {step['min_fps']:.1f}, {step['errors']} rcvbuf errors at {rooms} "
                  f"room(s): {cause}")
            if stop_below_fps:
                break
    return results


def summarise(name, results):
    """The last step with unsaturated clients and full delivery, or None."""
    good = [r for r in results
            if r["min_fps"] >= MIN_FPS and not r["errors"] and not r["saturated"]]
    if not good:
        print(f"{name}: no step with unsaturated clients, min fps ≥ {MIN_FPS} and no drops")
        return None
    best = good[-1]
    per_room = best["sfu"] / best["rooms"]
    print(f"{name}: {per_room * 100:.1f}% of a core per room, {best['us']:.1f} µs per forwarded "
          f"packet, latency p95 {best['p95']:.1f} ms (at {best['rooms']} room(s)); one core at "
          f"≤ {CORE_BUDGET:.0%} carries {int(CORE_BUDGET / per_room) if per_room else 0} "
          "room(s) (from the measured cost per room)")
    return best


async def run(args):
    affinity = sorted(os.sched_getaffinity(0))
    sfu_cpu, client_cpu = (affinity[0], affinity[1]) if len(affinity) >= 2 else (None, None)
    load = load_average()
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]} "
          f"({os.cpu_count()} CPUs)")
    if load > 1.5:
        print(f"WARNING: load average {load:.2f} > 1.5: other processes share these cores; "
              "fps and latency suffer first, CPU per packet stays the more trustworthy figure")
    if args.in_netns:
        print(f"running in a private network namespace (lo + {JANUS_IP} on {JANUS_IFACE}); "
              "UDP errors count this namespace only")
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    else:
        print("WARNING: only one CPU available: SFU and clients share it")
    restrict_host_addresses(["127.0.0.1"])
    install_udp_port_range(asyncio.get_running_loop(), 45000, 45999)

    clip = vp8_clip(width=640, height=360, frames=45, fps=15, bitrate=500_000)
    kbit = sum(map(len, clip)) * 8 / 3 / 1000
    print(f"clip: {len(clip)} frames 640x360@15, {kbit:.0f} kbit/s VP8 + 20 ms Opus; "
          f"SFU on CPU {sfu_cpu}, clients on CPU {client_cpu}; step: {args.warmup:g} s warm-up, "
          f"{args.window:g} s window")

    ours = OurRelay(args, sfu_cpu)
    try:
        await ours.start()
        relay_results = await ramp(ours, args, clip, args.max_rooms)
    finally:
        await ours.stop()

    janus_results = []
    if args.no_janus:
        why = "--no-janus"
    else:
        why = getattr(args, "janus_unavailable", None) or Janus.unavailable()
    if why is None:
        janus = Janus(args, sfu_cpu)
        print(f"\n{janus.version()}, VideoRoom multistream subscriptions, ICE on {JANUS_IP} "
              "in a private network namespace")
        # libnice pairs Janus's 127.0.0.2 (not a loopback interface to it) only with
        # a remote on the same footing: the clients use that address for Janus too
        restrict_host_addresses([JANUS_IP])
        try:
            await janus.start()
            # the same steps as the relay reached, so the comparison is like for like
            janus_results = await ramp(janus, args, clip, max(len(relay_results), 1),
                                       stop_below_fps=False)
        except (JanusError, OSError, KeyError, TypeError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        finally:
            await janus.stop()

    print("\n== summary ==")
    print(f"load average at end: {Path('/proc/loadavg').read_text().split()[:3]}")
    best = summarise("media_relay", relay_results)
    janus_best = summarise("Janus", janus_results) if janus_results else None
    if why is not None:
        print(f"Janus VideoRoom comparison not run: {why}")
    else:
        # like for like: the same number of rooms, clients unsaturated in both runs
        pairs = [(r, j) for r in relay_results for j in janus_results
                 if r["rooms"] == j["rooms"] and not (r["saturated"] or j["saturated"])]
        for r, j in pairs:
            clean = min(r["min_fps"], j["min_fps"]) >= MIN_FPS and not (r["errors"] or j["errors"])
            caveat = "" if clean else (
                f"  (min fps {r['min_fps']:.1f} / {j['min_fps']:.1f}, "
                f"rcvbuf errors {r['errors']} / {j['errors']})")
            print(f"ratio media_relay / Janus µs per packet at {r['rooms']} room(s): "
                  f"{r['us'] / j['us']:.2f} ({r['us']:.1f} / {j['us']:.1f} µs){caveat}")
        if not pairs:
            print("no step to compare: the clients saturated first")
    if janus_results:
        print(f"Janus's UDP sockets keep the kernel default receive buffer "
              f"({Path('/proc/sys/net/core/rmem_default').read_text().strip()} bytes; "
              "media_relay sets 2 MB): its rcvbuf errors show drops on a busy core")
    saturated = [r["rooms"] for r in relay_results + janus_results if r["saturated"]]
    if saturated:
        print(f"clients saturated their core at {min(saturated)} room(s): steps beyond that "
              "need a second client machine (or core), not a faster SFU")


# Janus 1.1 gathers ICE candidates on every interface that is up, running and *not*
# a loopback (janus_ice_setup_local skips IFF_LOOPBACK; when its enforce list then
# matches nothing, libnice falls back to all other interfaces, i.e. the machine's
# real address). So the whole benchmark runs in a private network namespace with
# no way out: lo plus a veth pair whose one end carries 127.0.0.2, the only address
# Janus may use. 127.0.0.0/8 is routed locally, so every packet still goes over
# loopback, and nothing can leave the machine even by mistake.
NETNS_FLAG = "--in-private-netns"
JANUS_IFACE, JANUS_IP = "jbench0", "127.0.0.2"
NETNS_SETUP = (
    f"ip link set lo up && ip link add {JANUS_IFACE} type veth peer name jbench1 && "
    f"ip addr add {JANUS_IP}/32 dev {JANUS_IFACE} && ip link set jbench1 up && "
    f"ip link set {JANUS_IFACE} up"
)


def reexec_in_private_netns():
    """Runs this benchmark again inside `unshare --net`; returns its exit code, or
    the reason it cannot (then the caller runs without Janus)."""
    if os.geteuid() != 0:
        return "a private network namespace needs root (unshare --net, ip link)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SETUP],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot set up a private network namespace: {probe.stderr.strip()}"
    command = " ".join(map(shlex.quote, [sys.executable, *sys.argv, NETNS_FLAG]))
    return subprocess.run(["unshare", "--net", "sh", "-c", f"{NETNS_SETUP} && exec {command}"]).returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-rooms", type=int, default=12)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run of about a minute: 2 rooms, short windows")
    parser.add_argument("--no-janus", action="store_true")
    parser.add_argument("--profile", metavar="FILE",
                        help="run the relay under cProfile and write its stats to FILE")
    parser.add_argument(NETNS_FLAG, dest="in_netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.max_rooms, args.window, args.warmup = min(args.max_rooms, 2), 4.0, 2.0
    if not args.no_janus and not args.in_netns and Janus.unavailable() is None:
        result = reexec_in_private_netns()
        if isinstance(result, int):
            sys.exit(result)
        args.janus_unavailable = f"Janus needs {result}"
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
