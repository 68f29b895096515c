"""How ./test runs the suite: most tests wait on sockets, databases and child processes,
not on the CPU, and run side by side on several pytest-xdist workers; the tests that
measure frame rates or time an outage get the machine to themselves afterwards (marker
``serial``). On CI's two cores a browser test that shares the CPU sees WebRTC lower its
frame rate, and a fault test mistakes a slow machine for a slow recovery.

Which tests are ``serial`` is decided here, by place, so that a new browser test cannot
forget the marker.
"""
# Modules (paths under tests/) whose tests are serial, besides everything under
# tests/e2e/ (Chromium) and tests/relay/ (the media relay's own tests).
SERIAL_DIRS = ("e2e", "relay")
SERIAL_MODULES = {
    "test_group_calls.py",      # synthetic browsers through the relay: media timing
    "test_relay_adapter.py",    # a relay process on the fixed UDP range 42000-42999
    "test_relay_placement.py",  # relay processes, the same range
    "test_ops_doctor.py",       # a relay process, the same range
    "test_outbox_crash.py",     # kill -9 of the sender and its timing
    "test_hub_faults.py",       # Redis stopped and started under the app
    "test_hub_redis.py",        # restarts its own redis-server, times the hub's recovery
    "test_deploy_turn.py",      # coturn and Caddy processes, TURN allocations timed
}


def pytest_configure(config):
    config.addinivalue_line("markers", "serial: runs alone after the parallel part (tests/support/runs.py)")


def is_serial(path):
    parts = path.parts
    tests_at = len(parts) - 1 - parts[::-1].index("tests")
    below = parts[tests_at + 1:]
    return (len(below) > 1 and below[0] in SERIAL_DIRS) or (len(below) == 1 and below[0] in SERIAL_MODULES)


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if is_serial(item.path):
            item.add_marker(pytest.mark.serial)

