"""Login with argon2 and the server-side login sessions (issue 12): prints figures,
asserts nothing.

    .venv/bin/python bench/login.py                      # SQLite in a temp dir
    .venv/bin/python bench/login.py --postgres URL       # and PostgreSQL (a scratch database)
    .venv/bin/python bench/login.py --logins 200

Each login is the browser's POST /login (argon2 verify, the login session row, the
redirect), timed through Flask's test client in this process, one after another; then
an authenticated GET /patienten/liste (the user loader's one joined query for login
session, staff and practice), and the answer while an address is locked (no argon2).
Goal of issue 12: login p95 <= 250 ms on 2 cores.
"""
import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from config import Config  # noqa: E402
from app.auth.services import create_practice  # noqa: E402
from app.extensions import db  # noqa: E402
from tests.support.webapp import PASSWORD, Auth, make_config  # noqa: E402


def percentile(sorted_values, p):
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def line(name, seconds):
    s = sorted(seconds)
    return (f"{name:<32} n={len(s):4d}  p50 {percentile(s, 50) * 1000:7.2f} ms  "
            f"p95 {percentile(s, 95) * 1000:7.2f} ms  max {s[-1] * 1000:7.2f} ms")


def run(url, logins, label):
    tmp = Path(tempfile.mkdtemp())
    # The product's password hashing, not the tests' cheap one.
    app = create_app(make_config(tmp, url, LOGIN_RATE_LIMIT="100000 per minute",
                                 LOGIN_ACCOUNT_LIMIT="100000 per minute",
                                 PASSWORD_HASHING=Config.PASSWORD_HASHING))
    with app.app_context():
        db.drop_all()
        db.create_all()
        create_practice("Bench-Praxis", "premium", "bench@praxis.example", "Dr. Bench", PASSWORD)
    login_times, page_times = [], []
    for _ in range(logins):
        auth = Auth(app.test_client())
        token = auth.csrf("/login")
        start = time.perf_counter()
        response = auth.client.post("/login", data={"email": "bench@praxis.example",
                                                    "password": PASSWORD, "csrf_token": token})
        login_times.append(time.perf_counter() - start)
        assert response.status_code == 302, response.status_code
        start = time.perf_counter()
        assert auth.client.get("/patienten/liste", headers={"HX-Request": "true"}).status_code == 200
        page_times.append(time.perf_counter() - start)
    # A locked address answers without argon2.
    app.config["LOGIN_ACCOUNT_LIMIT"] = "1 per 15 minutes"
    locked_times = []
    auth = Auth(app.test_client())
    token = auth.csrf("/login")
    for n in range(max(20, logins // 5)):
        start = time.perf_counter()
        response = auth.client.post("/login", data={"email": "locked@praxis.example",
                                                    "password": "falsch", "csrf_token": token})
        if n:
            locked_times.append(time.perf_counter() - start)
    # For comparison: the password hash alone (PASSWORD_HASHING), the bulk of a login.
    from argon2 import PasswordHasher

    _hasher = PasswordHasher(**app.config["PASSWORD_HASHING"])
    stored = _hasher.hash(PASSWORD)
    hash_times = []
    for _ in range(max(20, logins // 5)):
        start = time.perf_counter()
        _hasher.verify(stored, PASSWORD)
        hash_times.append(time.perf_counter() - start)
    print(f"-- {label}")
    print(line("argon2 verify alone", hash_times))
    print(line("POST /login (argon2 + session)", login_times))
    print(line("GET /patienten/liste (logged in)", page_times))
    print(line("POST /login while locked", locked_times))
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--postgres", help="SQLAlchemy URL of a scratch PostgreSQL database")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with open("/proc/loadavg") as fh:
        print(f"load average: {fh.read().split()[0]}")
    run(f"sqlite:///{tempfile.mkdtemp()}/bench.db", args.logins, "SQLite")
    if args.postgres:
        run(args.postgres, args.logins, "PostgreSQL")


if __name__ == "__main__":
    main()
