import click
from flask.cli import AppGroup

from app.invitations import sender

outbox_cli = AppGroup("outbox", help="The outbox of e-mails and SMS.")


@outbox_cli.command("work")
def work():
    """Deliver e-mails and SMS as they are queued (runs beside the web app)."""
    sender.run_worker()


@outbox_cli.command("flush")
def flush():
    """Queue the reminders that are due and deliver what is due now, once."""
    sender.queue_scheduled()
    click.echo(f"{sender.deliver_due(limit=1000)} message(s) attempted")
