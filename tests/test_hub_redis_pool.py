"""The Redis hub under as many threads as a web process has sockets (README "Server
settings": one thread per websocket, 2,100 by default): redis-py's pool allows 100
connections unless told otherwise, and a publish beyond them failed with "Too many
connections" and took its socket down (found by bench/websockets.py --behind-caddy)."""
import threading

from app.hub.redis_hub import RedisHub
from tests.support.hubs import delete_keys, new_prefix
from tests.support.machine import REDIS_URL, need_redis

THREADS = 300


def test_hundreds_of_socket_threads_publish_at_once():
    need_redis()
    prefix = new_prefix()
    hub = RedisHub(REDIS_URL, prefix=prefix)
    failures, start = [], threading.Barrier(THREADS)

    def socket_thread(n):
        start.wait()
        for _ in range(20):
            try:
                hub.publish(f"appointment:{n}:staff", {"type": "presence", "peer_online": True})
                hub.subscribers(f"appointment:{n}:patient")
            except Exception as exc:  # noqa: BLE001 - every kind of failure counts
                failures.append(type(exc).__name__)
                return

    threads = [threading.Thread(target=socket_thread, args=(n,)) for n in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == [], f"{len(failures)} of {THREADS} threads failed: {sorted(set(failures))}"
    finally:
        hub.close()
        delete_keys(prefix + "*")
