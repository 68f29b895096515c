"""The one test-support layer (tests/support/) is registered here, as Indico's
pytest_plugin does: its fixtures are there for every test, and a test module imports
only helpers from tests.support, never another test module."""
pytest_plugins = [
    "tests.support.webapp",
    "tests.support.fakes",
    "tests.support.hubs",
    "tests.support.sockets",
    "tests.support.calls",
    "tests.support.relay",
    "tests.support.redis_stack",
    "tests.support.runs",
]
