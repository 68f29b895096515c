"""Processes as /proc shows them: children, environment, CPU time (tests of ./run and
the benchmarks)."""
import os
import subprocess
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    # The command name may hold spaces; the fields follow its closing parenthesis.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid):
    """{child pid: command line} of a process."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int(_stat_fields(entry.name)[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


def environ_of(pid):
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


def cpu_seconds(pid="self"):
    """User + system CPU time a process has used so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop(process, timeout=10):
    """TERM, and KILL if it does not end in time; nothing if it has ended already."""
    stop_all([process], timeout)


def stop_all(running, timeout=10):
    """TERM to all at once (they shut down side by side), then KILL who outlasts `timeout`."""
    running = [p for p in running if p is not None and p.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        _wait_or_kill(process, timeout)


def _wait_or_kill(process, timeout):
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
