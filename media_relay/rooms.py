"""Rooms and peers: one peer connection per peer (a browser in the call); each peer's
publications are forwarded into a free slot of every other peer.

"Peer" here, never "participant": in the web app a Participant is a further person of
an appointment. The control API's JSON still says "participant" for a peer's id
(docs/signalling.md, "Group calls"); it is the wire format both sides share.
"""
import asyncio
import logging
import os
import random
import re
import time

from aiortc import RTCSessionDescription

from logfmt import IdLogger

from .forwarding import (
    Publication,
    Slot,
    UnsupportedCodec,
    announce_address,
    peer_connection,
    restrict_codecs,
    split_transceivers,
)

logger = logging.getLogger("media_relay.rooms")
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CPU_WINDOW = 2.0  # seconds over which status "cpu" is averaged


class Refused(Exception):
    """A request the relay turns down; status and reason code go to the web app."""

    def __init__(self, status, code):
        super().__init__(code)
        self.status = status
        self.code = code


class Peer:
    def __init__(self, room, peer_id, pc):
        self.room = room
        self.id = peer_id
        self.pc = pc
        self.publications = []
        self.slots = []
        # Set once its offer is answered: only then do others' media get its slots
        # and its media theirs (joins run concurrently).
        self.ready = False
        self.log = IdLogger(logger, room=room.id, peer=peer_id)

    def status(self):
        return {
            "participant": self.id,
            "state": self.pc.connectionState,
            "publications": [{"mid": p.mid, "kind": p.kind} for p in self.publications],
            "slots": [
                {
                    "mid": s.mid,
                    "kind": s.kind,
                    "participant": s.publication.owner.id if s.publication else None,
                    "publication": s.publication.mid if s.publication else None,
                }
                for s in self.slots
            ],
        }


class Room:
    def __init__(self, room_id, max_participants):
        self.id = room_id
        self.max_participants = max_participants
        self.peers = {}
        # Rises with every join and leave, also across a restart of the relay (the
        # monotonic clock counts from boot; µs stay exact in JavaScript): the web
        # app's rosters, built from status() in several threads, are told apart by it.
        self.version = time.monotonic_ns() // 1000

    def connect(self, newcomer):
        self.version = time.monotonic_ns() // 1000
        newcomer.ready = True
        for other in self.peers.values():
            if other is newcomer or not other.ready:
                continue
            for publication in other.publications:
                self._give_slot(newcomer, publication)
            for publication in newcomer.publications:
                self._give_slot(other, publication)

    @staticmethod
    def _give_slot(subscriber, publication):
        if any(slot.publication is publication for slot in subscriber.slots):
            return
        for slot in subscriber.slots:
            if slot.kind == publication.kind and slot.publication is None:
                slot.attach(publication)
                return
        subscriber.log.info("no free slot kind=%s publisher=%s",
                            publication.kind, publication.owner.id)

    def status(self):
        return {
            "room": self.id,
            "max_participants": self.max_participants,
            "version": self.version,
            "participants": [p.status() for p in self.peers.values()],
        }


class Relay:
    def __init__(self, config):
        self.config = config
        self.rooms = {}
        self._rng = random.SystemRandom()
        self._tasks = set()
        # The share of one core this process used lately (status "cpu"): the web apps
        # place new rooms on the least loaded relay (RELAY_URLS). One event loop never
        # uses more than one core, so 1.0 is full.
        self.cpu = 0.0
        self._cpu_mark = (time.monotonic(), time.process_time())

    def create_room(self, room_id, max_participants=None):
        """Returns (room, created). Creating an existing room is not an error: the web
        app may repeat it after a restart of either side."""
        max_participants = max_participants or self.config.max_participants
        if not ID_PATTERN.match(str(room_id)):
            raise Refused(400, "bad_room_id")
        limit = self.config.max_participants
        if not isinstance(max_participants, int) or not 2 <= max_participants <= limit:
            raise Refused(400, "bad_max_participants")
        room = self.rooms.get(room_id)
        if room is not None:
            return room, False
        if len(self.rooms) >= self.config.max_rooms:
            logger.warning("refused room reason=relay_full room=%s rooms=%d",
                           room_id, len(self.rooms))
            raise Refused(503, "relay_full")
        room = self.rooms[room_id] = Room(room_id, max_participants)
        logger.info("room created room=%s max_peers=%d", room_id, max_participants)
        return room, True

    def room(self, room_id):
        room = self.rooms.get(room_id)
        if room is None:
            raise Refused(404, "no_room")
        return room

    async def join(self, room_id, peer_id, offer_sdp):
        room = self.room(room_id)
        if not ID_PATTERN.match(str(peer_id)):
            raise Refused(400, "bad_participant_id")
        if not isinstance(offer_sdp, str) or not offer_sdp.startswith("v=0"):
            raise Refused(400, "bad_offer")
        previous = room.peers.get(peer_id)
        if previous is not None:  # a reconnect replaces the old connection
            await self._remove(previous)
        if len(room.peers) >= room.max_participants:
            raise Refused(503, "room_full")

        pc = peer_connection(self.config.ice_servers)
        peer = Peer(room, peer_id, pc)
        # reserve the place before the first await, so concurrent joins count it
        room.peers[peer_id] = peer
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if not pc.getTransceivers():
                raise Refused(400, "bad_offer")
            restrict_codecs(pc)
            publishing, slots = split_transceivers(pc)
            peer.publications = [Publication(peer, t) for t in publishing]
            peer.slots = [Slot(peer, t, self._rng) for t in slots]
            await pc.setLocalDescription(await pc.createAnswer())
        except UnsupportedCodec as exc:
            peer.log.info("refused reason=unsupported_codec kind=%s", exc)
            await self._remove(peer)
            raise Refused(400, "unsupported_codec") from None
        except Refused:
            await self._remove(peer)
            raise
        except Exception as exc:  # aiortc raises many kinds on a malformed offer
            peer.log.info("refused reason=bad_offer error=%s", type(exc).__name__)
            await self._remove(peer)
            raise Refused(400, "bad_offer") from exc
        answer = pc.localDescription.sdp
        if "a=candidate:" not in answer:
            peer.log.warning("refused reason=no_udp_port")
            await self._remove(peer)
            raise Refused(503, "no_udp_port")

        @pc.on("connectionstatechange")
        def on_state():
            peer.log.info("connection state=%s", pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                self._spawn(self._remove(peer))

        room.connect(peer)
        peer.log.info("joined publications=%d slots=%d", len(peer.publications), len(peer.slots))
        return announce_address(answer, self.config.public_ip), peer.status()

    async def leave(self, room_id, peer_id):
        peer = self.room(room_id).peers.get(peer_id)
        if peer is None:
            raise Refused(404, "no_participant")
        await self._remove(peer)

    async def close_room(self, room_id):
        room = self.room(room_id)
        for peer in list(room.peers.values()):
            await self._remove(peer)
        self.rooms.pop(room_id, None)
        logger.info("room closed room=%s", room_id)

    async def _remove(self, peer):
        room = peer.room
        if room.peers.get(peer.id) is not peer:
            return
        del room.peers[peer.id]
        room.version = time.monotonic_ns() // 1000
        for publication in peer.publications:
            publication.detach_all()
        for slot in peer.slots:
            slot.detach()
        await peer.pc.close()
        peer.log.info("left")

    def measure_cpu(self, window=CPU_WINDOW):
        """Updates ``cpu`` once ``window`` seconds have passed since the last update."""
        wall, used = time.monotonic(), time.process_time()
        mark_wall, mark_used = self._cpu_mark
        if wall - mark_wall >= window:
            self.cpu = max(0.0, (used - mark_used) / (wall - mark_wall))
            self._cpu_mark = (wall, used)

    async def housekeeping(self, interval=1.0):
        while True:
            await asyncio.sleep(interval)
            self.measure_cpu()
            for room in list(self.rooms.values()):
                for peer in list(room.peers.values()):
                    for publication in peer.publications:
                        publication.send_remb(self.config.max_video_bitrate)

    async def close(self):
        for room_id in list(self.rooms):
            await self.close_room(room_id)

    def status(self):
        return {
            "rooms": len(self.rooms),
            "max_rooms": self.config.max_rooms,
            "participants": sum(len(r.peers) for r in self.rooms.values()),
            "cpu": round(self.cpu, 3),
            "cores": os.cpu_count() or 1,
        }

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
