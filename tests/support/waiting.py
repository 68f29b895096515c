"""Waiting for what the code under test must bring about. The timeouts are hang guards
on a busy 2-core machine, not speed checks: a test fails naming what never happened."""
import asyncio
import time

HANG_GUARD = 20


def wait_until(predicate, what, timeout=HANG_GUARD, interval=0.05, process=None, log=None):
    """The first true value of ``predicate()``. With ``process``, fails as soon as that
    process has ended; ``log`` (a path) goes into the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: process ended with {process.returncode}\n{_read(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}\n{_read(log)}".rstrip())
        time.sleep(interval)


async def until(predicate, what, timeout=10, interval=0.02):
    """``wait_until`` for a test running on an event loop: sleeps without blocking it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(interval)


def _read(log):
    return log.read_text(errors="replace") if log is not None and log.exists() else ""
