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


def parse_utc(text: str) -> dt.datetime:
    """An ISO 8601 date or date-time as naive UTC (a value without a zone is UTC already): the one
    reading of every instant a user or a file gives. Raises ValueError."""
    return naive_utc(dt.datetime.fromisoformat(text.strip()))


def unix_seconds(moment: dt.datetime) -> int:
    """Seconds since the epoch. Never `datetime.timestamp()` on a naive value: Python (and pyotp)
    would read it as local time."""
    return int(naive_utc(moment).replace(tzinfo=dt.UTC).timestamp())


# Whole seconds: MariaDB's DATETIME keeps no fraction, so a finer stamp could not be the same
# everywhere, and a pipeline comparing two outputs must not see 12:00:00Z beside 12:00:00.123Z.
RFC3339_UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_z(moment: dt.datetime) -> str:
    """How every instant is shown to people and written in JSON: RFC 3339 UTC in whole seconds
    with a trailing Z (2026-03-01T12:00:00Z), whatever the backend stored."""
    return naive_utc(moment).strftime(RFC3339_UTC_FORMAT)
