"""Times are stored as naive UTC (SQLite has no time zones) and shown in the practice's zone."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_local(value: datetime, tz_name: str) -> datetime:
    return value.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz_name))


def local_to_utc(value: datetime, tz_name: str) -> datetime:
    return value.replace(tzinfo=ZoneInfo(tz_name)).astimezone(timezone.utc).replace(tzinfo=None)
