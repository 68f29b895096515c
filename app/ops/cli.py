"""The operations commands: flask doctor, flask backup, flask restore, flask retention purge."""

import os

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from app.extensions import db
from app.ops import backup as backups
from app.ops import retention
from app.ops.doctor import FAIL, render, run_checks
from config import RETENTION_MAX_DAYS


def _default_lang():
    lang = (
        os.environ.get("LC_ALL") or os.environ.get("LC_MESSAGES") or os.environ.get("LANG") or "de"
    )
    return "en" if lang.startswith("en") else "de"


@click.command("doctor")
@with_appcontext
@click.option(
    "--lang",
    type=click.Choice(["de", "en"]),
    default=None,
    help="Sprache der Ausgabe / language of the output (default: de, en when LANG=en*).",
)
def doctor(lang):
    """Prüft die laufende Installation / checks the running installation."""
    lang = lang or _default_lang()
    env_file = os.environ.get("SPRECHZIMMER_ENV_FILE", "/etc/sprechzimmer/env")
    lines = run_checks(current_app._get_current_object(), env_file)
    click.echo(render(lines, lang, current_app.config["PUBLIC_BASE_URL"]))
    if any(line.status == FAIL for line in lines):
        raise SystemExit(1)


@click.command("backup")
@with_appcontext
@click.option("--dir", "folder", default=None, help="Folder for the backups (default: BACKUP_DIR).")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    help="How many backups to keep (default: BACKUP_KEEP).",
)
def backup(folder, keep):
    """Back the database up into a folder (SQLite backup API or pg_dump), keeping the newest."""
    folder = folder or current_app.config["BACKUP_DIR"]
    keep = keep or current_app.config["BACKUP_KEEP"]
    try:
        path, removed = backups.backup(current_app.config["SQLALCHEMY_DATABASE_URI"], folder, keep)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup written: {path} ({path.stat().st_size} bytes)")
    for old in removed:
        click.echo(f"removed old backup: {old.name}")


@click.command("restore")
@with_appcontext
@click.argument("path", required=False)
@click.option("--latest", is_flag=True, help="Restore the newest backup in BACKUP_DIR.")
@click.option("--yes", is_flag=True, help="Do not ask before replacing the data.")
def restore(path, latest, yes):
    """Replace the database's content with a backup (stop sprechzimmer-web and
    sprechzimmer-outbox first)."""
    if latest == bool(path):
        raise click.UsageError("give either a backup file or --latest")
    if latest:
        found = backups.backups(current_app.config["BACKUP_DIR"])
        if not found:
            raise click.ClickException(f"no backups in {current_app.config['BACKUP_DIR']}")
        path = found[-1]
    url = db.engine.url.render_as_string(hide_password=True)
    if not yes:
        click.confirm(f"Replace all data in {url} with {path}?", abort=True)
    db.session.remove()
    db.engine.dispose()  # no pooled connection may hold the old tables
    try:
        backups.restore(current_app.config["SQLALCHEMY_DATABASE_URI"], path)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {path} into {url}")


retention_cli = AppGroup("retention", help="Deleting what is past its retention (RETENTION_DAYS).")


@retention_cli.command("purge")
@click.option("--days", type=click.IntRange(1, RETENTION_MAX_DAYS), default=None,
              help="Delete what is older than this many days (default: RETENTION_DAYS).")
def purge(days):
    """Delete appointments (with contacts, chat, delivery rows) past their retention now;
    the outbox sender does this once a day by itself."""
    counts = retention.purge(days=days)
    click.echo(" ".join(f"{kind}={n}" for kind, n in counts.items()))
