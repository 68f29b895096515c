import click
from flask import current_app
from flask.cli import AppGroup

from app.auth.models import DOCTOR, MFA, Practice, Staff
from app.auth.services import (
    AccountError,
    add_staff,
    change_password,
    create_practice,
    set_tariff,
)
from app.extensions import db
from app.tariffs import TARIFFS

practice_cli = AppGroup("practice", help="Create practices and change their tariff.")

DEMO_EMAIL = "demo@praxis.example"
DEMO_PASSWORD = "demo-passwort"
# One account of each role (the practice's first one, demo@, is its admin).
DEMO_TEAM = (("aerztin@praxis.example", "Dr. Ärztin Demo", DOCTOR),
             ("mfa@praxis.example", "Mia MFA", MFA))


@practice_cli.command("create")
@click.option("--name", required=True, help="Name of the practice.")
@click.option("--tariff", type=click.Choice(list(TARIFFS)), default="basis", show_default=True)
@click.option("--timezone", default="Europe/Berlin", show_default=True)
@click.option("--email", required=True, help="E-mail of the first staff member (login).")
@click.option("--staff-name", required=True)
@click.password_option(help="Password of the first staff member (at least 10 characters).")
def create(name, tariff, timezone, email, staff_name, password):
    """Create a practice with its first staff member."""
    try:
        practice, staff = create_practice(name, tariff, email, staff_name, password, timezone)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"practice {practice.id} created ({tariff}); staff {staff.id} can log in")


@practice_cli.command("set-tariff")
@click.argument("practice_id", type=int)
@click.argument("tariff", type=click.Choice(list(TARIFFS)))
def change_tariff(practice_id, tariff):
    """Change a practice's tariff."""
    try:
        practice = set_tariff(practice_id, tariff)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"practice {practice.id} now has tariff {practice.tariff}")


@practice_cli.command("set-password")
@click.argument("email")
@click.password_option(help="The new password (at least 10 characters).")
def set_password(email, password):
    """Set a staff member's password; every session of the account ends."""
    staff = db.session.execute(
        db.select(Staff).filter_by(email=email.strip().lower())).scalar_one_or_none()
    if staff is None:
        raise click.ClickException(f"no staff member with e-mail {email}")
    try:
        change_password(staff, password)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"staff {staff.id}: password changed, every session ended")


@practice_cli.command("demo")
def demo():
    """Create the demo practice (Premium) if it does not exist, and say how to log in."""
    admin = db.session.execute(db.select(Staff).filter_by(email=DEMO_EMAIL)).scalar_one_or_none()
    if admin is None:
        _, admin = create_practice("Praxis Dr. Demo", "premium", DEMO_EMAIL, "Dr. Demo",
                                   DEMO_PASSWORD)
    for email, name, role in DEMO_TEAM:
        if not db.session.execute(db.select(Staff.id).filter_by(email=email)).first():
            add_staff(admin.practice, email, name, DEMO_PASSWORD, role)
    base = current_app.config["PUBLIC_BASE_URL"]
    click.echo(f"Demo-Praxis: {base}/login  E-Mail: {DEMO_EMAIL}  Passwort: {DEMO_PASSWORD}")
    click.echo(f"  also: {DEMO_TEAM[0][0]} (Arzt/Ärztin), {DEMO_TEAM[1][0]} (MFA: no calls), "
               "same password")


@practice_cli.command("list")
def list_practices():
    for practice in db.session.execute(db.select(Practice).order_by(Practice.id)).scalars():
        click.echo(f"{practice.id}\t{practice.tariff}\t{practice.name}")
