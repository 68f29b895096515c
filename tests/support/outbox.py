"""The outbox as the tests drive it: one round of the real sender, its rows, and the
links the messages carry."""
import os
import re
import subprocess
import sys
from types import SimpleNamespace
from urllib.parse import urlsplit

from app.extensions import db
from app.invitations import crypto, sender
from app.invitations.models import PENDING, OutboxMessage
from app.timeutil import utcnow
from config import BASE_DIR
from tests.support.webapp import give_consent

TOKEN = r"/j/[A-Za-z0-9_-]{43}"
ANY_BASE = r"https?://[^\s\"'<>]+"


def deliver(app):
    """One round of the real sender, as `flask outbox flush` runs it."""
    with app.app_context():
        return sender.deliver_due()


def make_due(app):
    """Let waiting retries run now instead of after their backoff."""
    with app.app_context():
        db.session.execute(db.update(OutboxMessage).where(OutboxMessage.status == PENDING)
                           .values(next_attempt_at=utcnow()))
        db.session.commit()


def outbox(app, **filters):
    """Outbox rows (oldest first) as plain snapshots, readable after the session is gone."""
    with app.app_context():
        rows = db.session.execute(
            db.select(OutboxMessage).filter_by(**filters).order_by(OutboxMessage.id)
        ).scalars().all()
        return [SimpleNamespace(**{c.name: getattr(r, c.name) for c in OutboxMessage.__table__.columns})
                for r in rows]


def outbox_token(message):
    """The link token an outbox row carries (sealed at rest)."""
    return crypto.unseal(message.payload)["token"]


def invitation_token(app, appointment_id=None, participant_id=None):
    """The token of the latest invitation of an appointment (or of one participant), as
    the e-mail carries it."""
    filters = {"appointment_id": appointment_id} if participant_id is None else {"participant_id": participant_id}
    with app.app_context():
        message = db.session.execute(
            db.select(OutboxMessage).filter_by(kind="invitation", **filters).order_by(OutboxMessage.id.desc())
        ).scalars().first()
        return outbox_token(message)


def opened_link(app, token, consent=True):
    """A browser that opened a link: holds the session bound to its appointment, and
    (unless ``consent=False``) has given the person's consent on the device check."""
    client = app.test_client()
    response = client.get(f"/j/{token}")
    assert response.status_code == 302, response.status_code
    if consent:
        give_consent(client)
    return client


def links_in(text, base=ANY_BASE):
    return set(re.findall(base + TOKEN, text))


def link_in(text, base="http://localhost"):
    """The one patient link in a message text (on the test config's host), and its path
    for the test client."""
    links = links_in(text, re.escape(base))
    assert len(links) == 1, links
    link = links.pop()
    return link, urlsplit(link).path


def text_of(message, subtype="plain"):
    return message.get_body(preferencelist=(subtype,)).get_content()


def start_sender(app, smtp_port, log_path, lease, poll, **env_overrides):
    """`flask outbox work` as a real process (as ./run starts it) on the app's database,
    sending to the SMTP server on `smtp_port`; killed by the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "MAIL_", "OUTBOX_"))}
    env.update(FLASK_APP="wsgi.py", PYTHONPATH=str(BASE_DIR), SECRET_KEY=app.config["SECRET_KEY"],
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], MAIL_SERVER="127.0.0.1",
               MAIL_PORT=str(smtp_port), OUTBOX_LEASE_SECONDS=str(lease), OUTBOX_POLL_SECONDS=str(poll),
               PUBLIC_BASE_URL=app.config["PUBLIC_BASE_URL"], **env_overrides)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "flask", "outbox", "work"], cwd=BASE_DIR, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
