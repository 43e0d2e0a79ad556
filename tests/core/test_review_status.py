"""When an access review is due: from the last attestation, by the interval in force."""

from __future__ import annotations

import datetime as dt

from userctl.hygiene import ReviewSettings
from userctl.review import ATTEST_ACTION, review_status

NOW = dt.datetime(2026, 12, 6, 12, 0)


def _attested(time: str) -> dict[str, object]:
    return {"action": ATTEST_ACTION, "time": time, "operator": "ana", "after": {}}


def test_never_attested_is_overdue() -> None:
    status = review_status([], ReviewSettings(), NOW)
    assert status.overdue and status.due_at is None


def test_due_the_interval_after_the_last_attestation() -> None:
    events = [_attested("2026-01-01T00:00:00Z"), _attested("2026-10-01T00:00:00Z")]
    status = review_status(events, ReviewSettings(review_every_days=90), NOW)
    assert status.due_at == dt.datetime(2026, 12, 30)
    assert not status.overdue
    assert review_status(events, ReviewSettings(review_every_days=30), NOW).overdue


def test_an_attestation_at_the_end_of_the_calendar_is_no_crash() -> None:
    """A row dated 9999 (a wrong clock, a hand-edited database) plus the interval would overflow
    datetime: the review is due at the last instant there is."""
    status = review_status([_attested("9999-12-30T00:00:00Z")], ReviewSettings(), NOW)
    assert status.due_at == dt.datetime.max
    assert not status.overdue
    assert status.to_data(ReviewSettings())["due_at"].startswith("9999-12-31T23:59:59")
