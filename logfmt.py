"""One log format for the web app, the outbox sender and the media relay.

A line reads ``<time> <level> <logger> <what happened> key=value ...``: a few words,
then the ids it concerns as ``key=value`` pairs, so ``grep appointment=17`` finds a
call's story across all three processes. Only ids, states and codes go in a log line:
never a name, an e-mail address, a phone number, a link token or an SDP (it holds
addresses). tests/test_logging.py walks a whole consultation and checks this.
"""
import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level=logging.INFO):
    """The root handler of this process (once, as logging.basicConfig does)."""
    logging.basicConfig(level=level, format=FORMAT)


def pairs(**ids):
    return " ".join(f"{key}={value}" for key, value in ids.items())


class IdLogger(logging.LoggerAdapter):
    """A logger that ends every line with the same ids (one socket, one relay peer)."""

    def __init__(self, logger, **ids):
        super().__init__(logger, ids)
        self.ids = pairs(**ids)

    def process(self, msg, kwargs):
        return f"{msg} {self.ids}", kwargs
