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


def parse_utc(text: str, *, day_end: bool = False) -> dt.datetime:
    """An ISO 8601 date or date-time as naive UTC (a value without a zone is UTC already): the one
    reading of every instant a user or a file gives. With `day_end`, a date alone is the end of
    that day, as the exclusive bound of a period: the start of the next one. Raises ValueError
    with a sentence saying why, also for an instant the calendar cannot hold once in UTC (before
    0001-01-01T00:00Z, or a day after 9999-12-31): every caller shows that sentence as the
    problem of its option or its FILE:LINE:COL."""
    stripped = text.strip()
    try:
        moment = dt.datetime.fromisoformat(stripped)
    except ValueError as exc:
        # Python's own words only where they add something ("month must be in 1..12").
        why = "" if str(exc).startswith("Invalid isoformat") else f" ({exc})"
        raise ValueError(f"{stripped!r} is not an ISO 8601 date or date-time{why}") from None
    try:
        if day_end and _is_date(stripped):
            return moment + dt.timedelta(days=1)
        return naive_utc(moment)
    except OverflowError:
        raise ValueError(
            f"{stripped!r} lies outside the calendar once in UTC: give an instant from "
            "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
        ) from None


def _is_date(text: str) -> bool:
    """A date alone, in any form fromisoformat reads (2026-03-01, 20260301, 2026-W09-7)."""
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


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
