"""The one convention for instants: naive UTC, as the database stores them (SQLite and MariaDB
keep no zone). Functions that decide by time (TOTP steps, lockouts, approval expiry, the audit
log) take `now` as an argument so tests control it; the real clock is read only at the edges: the
CLI, and the created_at/updated_at stamps of rows written outside a plan (db/rows.py, init, TOTP
enrolment)."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """`moment` as naive UTC: an aware value is converted, a naive one is taken as UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def unix_seconds(moment: dt.datetime) -> int:
    """Seconds since the epoch. Never `datetime.timestamp()` on a naive value: Python (and pyotp)
    would read it as local time."""
    return int(naive_utc(moment).replace(tzinfo=dt.UTC).timestamp())


def iso_z(moment: dt.datetime) -> str:
    """How instants are shown to people and pipelines: ISO 8601 with an explicit Z."""
    return naive_utc(moment).isoformat() + "Z"
