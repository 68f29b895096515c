"""Backups of the database into a folder, with rotation, and their restore.

SQLite: the online backup API (a consistent copy while the app writes). PostgreSQL:
pg_dump in its custom format, restored with pg_restore. The connection details go to
pg_dump/pg_restore through the PG* environment, so no password shows up in `ps`.
"""

import os
import re
import sqlite3
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

PREFIX = "sprechzimmer-"
SUFFIXES = {"sqlite": ".sqlite3", "postgresql": ".pgdump"}
NAME_RE = re.compile(r"^sprechzimmer-\d{8}-\d{6}-\d{6}\.(sqlite3|pgdump)$")


class BackupError(Exception):
    pass


def _kind(url):
    backend = url.get_backend_name()
    if backend not in SUFFIXES:
        raise BackupError(f"backups support SQLite and PostgreSQL, not {backend}")
    if backend == "sqlite" and not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return backend


def _pg_env(url):
    """libpq's environment for the SQLAlchemy URL (host may be a socket folder, given
    as ?host=/var/run/postgresql)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    host = url.query.get("host") or url.host
    for key, value in (
        ("PGHOST", host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value:
            env[key] = str(value)
    return env


def _run(args, env):
    try:
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError:
        raise BackupError(f"{args[0]} not found (apt-get install postgresql-client)") from None
    if result.returncode != 0:
        raise BackupError(
            f"{args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )


def backups(folder):
    """The backups in `folder`, oldest first (their names sort by time)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if NAME_RE.match(p.name))


def backup(database_url, folder, keep):
    """Write one backup into `folder` and keep the newest `keep`; returns (path, removed)."""
    url = make_url(database_url)
    kind = _kind(url)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A folder made by hand (or by an older version) must not show the backups to others.
    folder.chmod(0o700)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    target = folder / f"{PREFIX}{stamp}{SUFFIXES[kind]}"
    partial = target.with_name(target.name + ".partial")
    old_umask = os.umask(0o077)  # patient data: readable by the service user only
    try:
        if kind == "sqlite":
            source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)
            finally:
                copy.close()
                source.close()
        else:
            _run(
                [
                    "pg_dump",
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--file={partial}",
                ],
                _pg_env(url),
            )
        partial.rename(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.umask(old_umask)
    removed = []
    existing = backups(folder)
    for old in existing[: max(0, len(existing) - keep)]:
        old.unlink()
        removed.append(old)
    return target, removed


def restore(database_url, path):
    """Replace the database's content with the backup at `path`."""
    url = make_url(database_url)
    kind = _kind(url)
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"no such backup: {path}")
    if path.suffix != SUFFIXES[kind]:
        raise BackupError(f"{path.name} is not a {kind} backup ({SUFFIXES[kind]})")
    if kind == "sqlite":
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if source.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"{path.name} is damaged (PRAGMA quick_check)")
            target = sqlite3.connect(url.database, timeout=30)
            try:
                source.backup(target)
            finally:
                target.close()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path.name}: {exc}") from None
        finally:
            source.close()
    else:
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={_pg_env(url)['PGDATABASE']}",
                str(path),
            ],
            _pg_env(url),
        )
