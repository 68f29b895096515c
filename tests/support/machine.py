"""What the tests need from the machine: PostgreSQL, Redis, Chromium, Caddy. Where one
is missing its tests skip and say why; CI sets REQUIRE_POSTGRES=1 (REQUIRE_REDIS,
REQUIRE_BROWSER, REQUIRE_CADDY) so that a missing one fails instead."""
import functools
import os
import shutil

import pytest


def worker_suffix():
    """``_gw0``, ``_gw1`` … on a pytest-xdist worker (./test, tests/support/runs.py), else
    ``""``: each worker has a PostgreSQL database of its own, since every test creates and
    drops the schema."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"_{worker}" if worker else ""


PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/sprechzimmer_test") + worker_suffix()
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = "/usr/bin/chromium"
CADDY = "/usr/bin/caddy"


def need(reason, flag):
    """Nothing when ``reason`` is None; else skip with it, or fail where ``flag``=1."""
    if reason is None:
        return
    if os.environ.get(flag) == "1":
        pytest.fail(f"{reason} ({flag}=1)")
    pytest.skip(reason)


@functools.cache
def postgres_missing():
    """Why PostgreSQL cannot be used here, or None (the test database is created if need be)."""
    import psycopg

    base = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    dbname = base.rsplit("/", 1)[1]
    admin = base.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no server here
        return f"PostgreSQL not reachable at {PG_URL.split('@')[-1]}: {type(exc).__name__}"


@functools.cache
def redis_missing():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return None
    except redis.RedisError as exc:
        return f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}"


def need_postgres():
    need(postgres_missing(), "REQUIRE_POSTGRES")


def need_redis():
    need(redis_missing(), "REQUIRE_REDIS")


def need_redis_server():
    """The redis-server program itself (a test that starts and restarts its own Redis)."""
    need(None if shutil.which("redis-server") else "redis-server not installed", "REQUIRE_REDIS")


def need_chromium():
    need(None if os.path.exists(CHROMIUM) else
         f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)", "REQUIRE_BROWSER")


def need_caddy():
    need(None if os.path.exists(CADDY) else
         f"the HTTPS proxy test needs Caddy at {CADDY} (apt-get install caddy)", "REQUIRE_CADDY")
