"""`flask retention purge` over many appointments (issue 12): prints figures, asserts
only that the purge left what it must.

    .venv/bin/python bench/retention.py                        # SQLite in a temp dir
    .venv/bin/python bench/retention.py --postgres URL         # and PostgreSQL (a scratch database)
    .venv/bin/python bench/retention.py --appointments 100000

One practice; every appointment has its own contact, an invitation row in the outbox and
two chat messages. Half of the appointments lie four months back (due), half two days
ahead (kept). Filled with bulk INSERTs, then timed: retention.purge() as the command and
the daily run call it, with the peak of Python's allocations during the purge
(tracemalloc) and the process's peak RSS.
"""
import argparse
import logging
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from app import create_app  # noqa: E402
from app.auth.services import create_practice  # noqa: E402
from app.chat.models import ChatMessage  # noqa: E402
from app.extensions import db  # noqa: E402
from app.invitations.models import OutboxMessage  # noqa: E402
from app.ops import retention  # noqa: E402
from app.patients.models import Appointment, Contact  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from tests.support.webapp import PASSWORD, make_config  # noqa: E402

CHUNK = 5000


def fill(practice_id, staff_id, n):
    now = utcnow()
    for start in range(0, n, CHUNK):
        numbers = range(start, min(n, start + CHUNK))
        db.session.execute(insert(Contact), [
            {"id": i + 1, "practice_id": practice_id, "first_name": "Erika", "last_name": f"Muster{i}",
             "email": f"p{i}@example.org", "search_name": f"erika muster{i}", "created_at": now - timedelta(days=130),
             "updated_at": now - timedelta(days=130)} for i in numbers])
        db.session.execute(insert(Appointment), [
            {"id": i + 1, "practice_id": practice_id, "contact_id": i + 1,
             "starts_at": now - timedelta(days=120) if i % 2 == 0 else now + timedelta(days=2),
             "duration_minutes": 20, "token_hash": f"{i:064x}", "sms_requested": False, "consent_at": now,
             "consent_by_id": staff_id, "consent_text": "Einwilligung", "created_by_id": staff_id,
             "created_at": now} for i in numbers])
        db.session.execute(insert(OutboxMessage), [
            {"practice_id": practice_id, "appointment_id": i + 1, "kind": "invitation", "channel": "email",
             "status": "sent", "attempts": 1, "next_attempt_at": now, "created_at": now} for i in numbers])
        db.session.execute(insert(ChatMessage), [
            {"appointment_id": i + 1, "sender": sender, "text": "Guten Tag", "created_at": now}
            for i in numbers for sender in ("staff", "patient")])
        db.session.commit()


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def run(url, n, label):
    tmp = Path(tempfile.mkdtemp())
    app = create_app(make_config(tmp, url))
    with app.app_context():
        db.drop_all()
        db.create_all()
        practice, staff = create_practice("Bench-Praxis", "premium", "bench@praxis.example", "Dr. Bench", PASSWORD)
        started = time.perf_counter()
        fill(practice.id, staff.id, n)
        filled = time.perf_counter() - started
        before = {m.__name__: count(m) for m in (Appointment, Contact, OutboxMessage, ChatMessage)}
        tracemalloc.start()
        started = time.perf_counter()
        done = retention.purge()
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        after = {m.__name__: count(m) for m in (Appointment, Contact, OutboxMessage, ChatMessage)}
        assert after["Appointment"] == n // 2 and done["appointments"] == n - n // 2, (done, after)
        db.session.remove()  # its open transaction would block the DROP on PostgreSQL
        db.drop_all()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label}: {n} appointments (filled in {filled:.1f} s)")
    print(f"  before: {before}")
    print(f"  purge:  {seconds:.2f} s for {done['appointments']} appointments "
          f"({done['appointments'] / seconds:,.0f}/s), {done['contacts']} contacts; "
          f"Python allocations peak {peak / 2**20:.1f} MiB, process peak RSS {rss:.0f} MiB")
    print(f"  after:  {after}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=100_000)
    parser.add_argument("--postgres", help="a scratch PostgreSQL database URL (its tables are dropped)")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    run(f"sqlite:///{tempfile.mkdtemp()}/bench.db", args.appointments, "SQLite")
    if args.postgres:
        run(args.postgres, args.appointments, "PostgreSQL")


if __name__ == "__main__":
    main()
