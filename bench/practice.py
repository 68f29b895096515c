"""Benchmarks of issue 2: they print figures, they assert nothing.

    .venv/bin/python bench/practice.py create   # appointments per second (gunicorn + test client)
    .venv/bin/python bench/practice.py search   # contact search latency (SQLite, PostgreSQL)
    .venv/bin/python bench/practice.py memory   # idle RSS of web and outbox processes

Every run works on fresh databases (a temp dir for SQLite, database
sprechzimmer_bench on PostgreSQL) and starts its own servers on 127.0.0.1.
See bench/README.md for what each figure means.
"""
import argparse
import atexit
import http.client
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENV_BIN = ROOT / ".venv" / "bin"

from tests.support.forms import appointment_form, future_slot  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import children, cpu_seconds  # noqa: E402
from tests.support.stack import gunicorn_args  # noqa: E402
from tests.support.webapp import CSRF_RE, Auth  # noqa: E402

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "sprechzimmer_bench"
PASSWORD = "bench-passwort-1"
BENCH_SECRET = secrets.token_hex(32)


# ----------------------------------------------------------------- plumbing

def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def latency_line(latencies):
    s = sorted(latencies)
    return (f"p50 {percentile(s, 50) * 1000:6.2f} ms  p95 {percentile(s, 95) * 1000:6.2f} ms  "
            f"p99 {percentile(s, 99) * 1000:6.2f} ms")


def machine():
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, load average {load:.2f} at start"


def workdir(prefix):
    """A temp dir for databases and logs, removed when the benchmark ends."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, True)
    return path


def server_env(database_url, tmp, port=5000):
    # The development defaults ./run starts with, pointed at the bench database.
    env = dict(os.environ)
    env.update(
        FLASK_APP="wsgi.py",
        DATABASE_URL=database_url,
        SECRET_KEY=BENCH_SECRET,
        OUTBOX_DIR=str(Path(tmp) / "outbox"),
        PUBLIC_BASE_URL=f"http://localhost:{port}",
        PYTHONPATH=str(ROOT),
    )
    return env


def upgrade(database_url, tmp):
    """The schema the way production gets it: `flask db upgrade`."""
    subprocess.run([VENV_BIN / "flask", "db", "upgrade"], cwd=ROOT, env=server_env(database_url, tmp),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def postgres_url():
    """A fresh bench database, or None when no server answers."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable ({type(exc).__name__}); skipped")
        return None
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{PG_DB}"


def make_app(database_url, tmp):
    """The real app, production config class, only the database and key set for the bench."""
    from app import create_app
    from config import Config

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = database_url
        SECRET_KEY = BENCH_SECRET
        OUTBOX_DIR = str(Path(tmp) / "outbox")

    return create_app(BenchConfig)


def new_practice(app, n, tariff="premium"):
    from app.auth.services import create_practice

    with app.app_context():
        practice, staff = create_practice(f"Bench-Praxis {n}", tariff, f"staff{n}@bench.example",
                                          f"Dr. Bench {n}", PASSWORD)
        return practice.id, staff.email


@contextmanager
def gunicorn(database_url, tmp):
    """The web process exactly as ./run starts it (1 gthread worker), on a free port."""
    port = free_port()
    log = open(Path(tmp) / f"gunicorn-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", *gunicorn_args(port, threads=os.environ.get("WEB_THREADS", "64"))],
        cwd=ROOT, env=server_env(database_url, tmp, port), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = Http(port).request("GET", "/login")
                if status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise SystemExit("gunicorn did not start:\n" + Path(log.name).read_text()[-3000:])
            time.sleep(0.1)
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


class Http:
    """A keep-alive HTTP/1.1 client with a cookie jar; light enough not to starve the server."""

    def __init__(self, port, cookies=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies = dict(cookies or {})

    def request(self, method, path, form=None, headers=None):
        headers = dict(headers or {})
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, text


def login_http(port, email):
    """Log in like a browser; returns (cookies, CSRF token of the logged-in session)."""
    http_ = Http(port)
    _, page = http_.request("GET", "/login")
    token = CSRF_RE.search(page).group(1)
    status, _ = http_.request("POST", "/login", {"email": email, "password": PASSWORD, "csrf_token": token})
    assert status == 302, f"login failed: {status}"
    _, page = http_.request("GET", "/patienten")
    return http_.cookies, CSRF_RE.search(page).group(1)


def login_client(app, email):
    staff = Auth(app.test_client())
    response = staff.login(email, PASSWORD)
    assert response.status_code == 302, f"login failed: {response.status_code}"
    return staff.client, staff.token


# ------------------------------------------------------ realistic people

FIRST = ("Anna Emma Mia Sophie Marie Lena Hannah Lea Laura Julia Sarah Katharina Johanna Clara Paula "
         "Charlotte Ida Greta Frieda Ursula Monika Petra Sabine Birgit Renate Ingrid Helga Gisela Jürgen "
         "Thomas Michael Andreas Stefan Peter Klaus Wolfgang Frank Markus Uwe Lukas Leon Finn Jonas "
         "Paul Felix Maximilian Elias Noah Ben Tim Jan Niklas Tobias Sebastian Matthias Dieter Horst "
         "Özlem Ayşe Mehmet Ahmet Fatma Zoë José Renée Jörg Björn Sören").split()
LAST = ("Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer "
        "Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange "
        "Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter "
        "Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Schubert Vogel Friedrich "
        "Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann Franke Albrecht Schuster Simon "
        "Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt Stein Jäger Otto Sommer Groß Seidel "
        "Heinrich Brandt Haas Schreiber Graf Schulte Dietrich Ziegler Kuhn Kühn Pohl Engel Horn Busch "
        "Bergmann Thomas Voigt Sauer Arnold Wolff Pfeiffer Yılmaz Kaya Demir Nowak Kowalski Rossi "
        "van der Berg").split(" ")
DOMAINS = ("gmx.de web.de t-online.de gmail.com posteo.de mailbox.org outlook.de "
           "freenet.de yahoo.de icloud.com").split()


def ascii_fold(text):
    text = text.replace("ß", "ss").replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")
    text = text.replace("Ä", "Ae").replace("Ö", "Oe").replace("Ü", "Ue")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def person(rng, n):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = ascii_fold(f"{first}.{last}".replace(" ", "")).lower()
    style = rng.random()
    if style < 0.5:
        email = f"{local}{n}@{rng.choice(DOMAINS)}"
    elif style < 0.8:
        email = f"{ascii_fold(first[0] + last).replace(' ', '').lower()}.{n}@{rng.choice(DOMAINS)}"
    else:
        email = f"praxis-kontakt{n}@{rng.choice(DOMAINS)}"
    return first, last, email


def random_form(rng, tag, n):
    """Einladen for a random person at a random time in the next two months."""
    first, last, _ = person(rng, n)
    day, time_ = future_slot(rng.randint(1, 60), rng.randint(8, 17), rng.choice((0, 15, 30, 45)))
    return appointment_form(first_name=first, last_name=last, email=f"bench-{tag}-{n}@example.org", date=day,
                            time=time_, duration=str(rng.choice((10, 15, 20, 30))))


# ----------------------------------------------------------------- create

def bench_create(args):
    tmp = workdir("bench-create-")
    url = f"sqlite:///{tmp}/bench.db"
    upgrade(url, tmp)
    app = make_app(url, tmp)
    practice_id, email = new_practice(app, 1)
    expected = 0
    print(f"Appointments created per second: SQLite file DB (WAL), no outbox sender running; "
          f"{machine()}")
    print(f"gunicorn as ./run (1 gthread worker, {os.environ.get('WEB_THREADS', '64')} threads), "
          f"POST /patienten/termine with HX-Request, {args.count} requests per level")
    with gunicorn(url, tmp) as (proc, port):
        worker_pid, = children(proc.pid)
        cookies, csrf = login_http(port, email)
        headers = {"HX-Request": "true", "X-CSRFToken": csrf}
        for threads in args.threads:
            rng = random.Random(threads)
            # Warm-up: first template compilations and connections are not the steady state.
            warm = Http(port, cookies)
            for i in range(20):
                warm.request("POST", "/patienten/termine", random_form(rng, f"warm{threads}", i), headers)
            expected += 20
            latencies, statuses = [], []
            lock = threading.Lock()
            per_thread = [args.count // threads + (1 if t < args.count % threads else 0) for t in range(threads)]
            start_gate = threading.Barrier(threads + 1)

            def worker(t):
                client = Http(port, cookies)
                local_rng = random.Random(f"{threads}-{t}")
                forms = [random_form(local_rng, f"c{threads}t{t}", i) for i in range(per_thread[t])]
                mine, codes = [], []
                start_gate.wait()
                for form in forms:
                    t0 = time.perf_counter()
                    try:
                        status, _ = client.request("POST", "/patienten/termine", form, headers)
                    except (OSError, http.client.HTTPException):
                        status = "conn"
                        client = Http(port, cookies)
                    mine.append(time.perf_counter() - t0)
                    codes.append(status)
                with lock:
                    latencies.extend(mine)
                    statuses.extend(codes)

            pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
            for th in pool:
                th.start()
            start_gate.wait()
            t0, cpu0 = time.perf_counter(), cpu_seconds(worker_pid)
            for th in pool:
                th.join()
            elapsed = time.perf_counter() - t0
            server_cpu = cpu_seconds(worker_pid) - cpu0
            ok = statuses.count(201)
            expected += ok
            errors = len(statuses) - ok
            print(f"  gunicorn     {threads:2d} client thread(s): {ok / elapsed:7.1f} created/s  "
                  f"{latency_line(latencies)}  server CPU {server_cpu / len(statuses) * 1000:.2f} ms/req  "
                  f"errors {errors}"
                  + (f" {sorted(set(map(str, statuses)) - {'201'})}" if errors else ""))

    rng = random.Random(0)
    client, csrf = login_client(app, email)
    headers = {"HX-Request": "true", "X-CSRFToken": csrf}
    for i in range(20):
        client.post("/patienten/termine", data=random_form(rng, "tcwarm", i), headers=headers)
    expected += 20
    latencies, ok = [], 0
    forms = [random_form(rng, "tc", i) for i in range(args.count)]
    t0, cpu0 = time.perf_counter(), time.process_time()
    for form in forms:
        t1 = time.perf_counter()
        response = client.post("/patienten/termine", data=form, headers=headers)
        latencies.append(time.perf_counter() - t1)
        ok += response.status_code == 201
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    expected += ok
    print(f"  test client   1 thread, in-process : {ok / elapsed:7.1f} created/s  "
          f"{latency_line(latencies)}  CPU {cpu / args.count * 1000:.2f} ms/req  errors {args.count - ok}")

    from app.extensions import db
    from app.invitations.models import PENDING, OutboxMessage
    from app.patients.models import Appointment

    with app.app_context():
        rows = db.session.scalar(db.select(db.func.count()).select_from(Appointment).filter_by(practice_id=practice_id))
        queued = db.session.scalar(db.select(db.func.count()).select_from(OutboxMessage)
                                   .filter_by(practice_id=practice_id, status=PENDING, channel="email"))
    verdict = "OK" if rows == queued == expected else "MISMATCH"
    print(f"  rows: {rows} appointments, {queued} queued e-mail invitations, {expected} 201 responses: {verdict}")


# ----------------------------------------------------------------- search

def bulk_contacts(app, practice_id, count, rng, offset):
    """Inserted in one executemany, not through the route: only the search is measured."""
    from app.extensions import db
    from app.patients.models import Contact
    from app.timeutil import utcnow

    now = utcnow()
    rows = []
    for n in range(offset, offset + count):
        first, last, email = person(rng, n)
        rows.append(dict(practice_id=practice_id, first_name=first, last_name=last, email=email,
                         search_name=f"{first} {last}".lower(), created_at=now, updated_at=now))
    with app.app_context():
        db.session.execute(db.insert(Contact), rows)
        db.session.commit()
    return rows


def search_terms(rng, rows, count):
    """2-5 letter prefixes a receptionist types: of a first name, a last name or an e-mail."""
    terms = []
    for _ in range(count):
        row = rng.choice(rows)
        source = rng.choice((row["first_name"], row["last_name"], row["email"]))
        terms.append(source[:rng.randint(2, 5)])
    return terms


def bench_search(args):
    backends = [("SQLite", None)]
    if not args.sqlite_only:
        backends.append(("PostgreSQL", "pg"))
    print(f"Contact search: {args.contacts} contacts in the searched practice, "
          f"{args.others} in each of 2 other practices; {args.searches} searches of 2-5 letter "
          f"prefixes, GET /patienten/suche with HX-Request, one client, sequential; {machine()}")
    for label, kind in backends:
        tmp = workdir("bench-search-")
        url = f"sqlite:///{tmp}/bench.db" if kind is None else postgres_url()
        if url is None:
            continue
        upgrade(url, tmp)
        app = make_app(url, tmp)
        rng = random.Random(42)
        practice_id, email = new_practice(app, 1)
        rows = bulk_contacts(app, practice_id, args.contacts, rng, 0)
        for n in (2, 3):
            other_id, _ = new_practice(app, n)
            bulk_contacts(app, other_id, args.others, rng, n * 100_000)
        if kind == "pg":
            with app.app_context():
                from app.extensions import db

                db.session.execute(db.text("ANALYZE"))
                db.session.commit()
        terms = search_terms(random.Random(7), rows, args.searches)
        paths = [f"/patienten/suche?q={quote(t)}" for t in terms]

        client, _ = login_client(app, email)
        for path in paths[:50]:
            client.get(path, headers={"HX-Request": "true"})
        latencies, hits, errors = [], 0, 0
        for path in paths:
            t0 = time.perf_counter()
            response = client.get(path, headers={"HX-Request": "true"})
            latencies.append(time.perf_counter() - t0)
            errors += response.status_code != 200
            hits += b"search-hit" in response.data
        print(f"  {label:10s} test client: {latency_line(latencies)}  "
              f"({hits}/{len(paths)} with hits, errors {errors})")

        with gunicorn(url, tmp) as (_, port):
            cookies, _ = login_http(port, email)
            http_ = Http(port, cookies)
            for path in paths[:50]:
                http_.request("GET", path, headers={"HX-Request": "true"})
            latencies, errors = [], 0
            for path in paths:
                t0 = time.perf_counter()
                status, _ = http_.request("GET", path, headers={"HX-Request": "true"})
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        print(f"  {label:10s} gunicorn   : {latency_line(latencies)}  (errors {errors})")
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


# ----------------------------------------------------------------- memory

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_memory(args):
    tmp = workdir("bench-memory-")
    url = f"sqlite:///{tmp}/bench.db"
    upgrade(url, tmp)
    subprocess.run([VENV_BIN / "flask", "practice", "demo"], cwd=ROOT, env=server_env(url, tmp),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from app.auth.cli import DEMO_EMAIL, DEMO_PASSWORD

    sender_log = open(Path(tmp) / "sender.log", "w")
    sender = subprocess.Popen([VENV_BIN / "flask", "outbox", "work"], cwd=ROOT, env=server_env(url, tmp),
                              stdout=sender_log, stderr=subprocess.STDOUT)
    try:
        with gunicorn(url, tmp) as (proc, port):
            http_ = Http(port)
            _, page = http_.request("GET", "/login")
            token = CSRF_RE.search(page).group(1)
            status, _ = http_.request("POST", "/login", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD,
                                                         "csrf_token": token})
            assert status == 302, f"login failed: {status}"
            for path in ("/patienten", "/patienten/termin-erstellen", "/patienten/suche?q=mu", "/patienten"):
                status, _ = http_.request("GET", path)
                assert status == 200, f"{path}: {status}"
            http_.conn.close()
            time.sleep(args.idle)
            workers = children(proc.pid)
            master = rss_mib(proc.pid)
            worker = sum(rss_mib(w) for w in workers)
            sender_rss = rss_mib(sender.pid)
    finally:
        sender.send_signal(signal.SIGTERM)
        sender.wait(timeout=15)
        sender_log.close()
    print(machine())
    print(f"Idle RSS (VmRSS) after login + Patienten pages and {args.idle:g} s idle:")
    print(f"  gunicorn master        {master:6.1f} MiB")
    print(f"  gunicorn worker ({len(workers)})    {worker:6.1f} MiB")
    print(f"  web total              {master + worker:6.1f} MiB")
    print(f"  outbox sender          {sender_rss:6.1f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="appointments created per second")
    create.add_argument("--count", type=int, default=1000, help="requests per concurrency level")
    create.add_argument("--threads", type=int, nargs="+", default=[1, 4, 8])
    search = sub.add_parser("search", help="contact search latency")
    search.add_argument("--contacts", type=int, default=10_000)
    search.add_argument("--others", type=int, default=3_000, help="contacts in each of two other practices")
    search.add_argument("--searches", type=int, default=2_000)
    search.add_argument("--sqlite-only", action="store_true")
    memory = sub.add_parser("memory", help="idle RSS")
    memory.add_argument("--idle", type=float, default=5.0, help="seconds to sit idle before reading RSS")
    args = parser.parse_args()
    # The app logs every login at INFO; the figures should not drown in it.
    import logging

    logging.disable(logging.INFO)
    {"create": bench_create, "search": bench_search, "memory": bench_memory}[args.command](args)


if __name__ == "__main__":
    main()
