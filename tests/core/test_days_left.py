"""The days until a user's last day are counted by one function, `hygiene.days_left` (its horizon a
parameter), for the plan's note (planner.EXPIRY_NOTICE_DAYS, 14) and for the reports' findings
(hygiene.EXPIRY_HORIZON_DAYS, 30): the two used to count them each on their own. The boundary
days go through both paths, which must word a user they both name the same way."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.core.planner_states import desired_from, live, user
from userctl import hygiene
from userctl.planner import EXPIRY_NOTICE_DAYS, PlanOptions, diff

TODAY = dt.date(2026, 12, 2)


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


@pytest.mark.parametrize(
    "offset, horizon, left",
    [
        (-1, 14, None),  # past: expired, not expiring
        (0, 14, 0),  # their last day is today
        (1, 14, 1),
        (14, 14, 14),  # the horizon's own day counts
        (15, 14, None),  # the day after the horizon does not
        (30, 30, 30),
        (31, 30, None),
    ],
)
def test_days_left_within_a_horizon(offset: int, horizon: int, left: int | None) -> None:
    assert hygiene.days_left(day(offset), TODAY, horizon) == left


# Each offset: whether the plan notes it (14 days), whether the reports do (30 days), in what words.
BOUNDARIES = [
    (0, True, True, "expires today"),
    (1, True, True, "expires in 1 day"),
    (EXPIRY_NOTICE_DAYS, True, True, f"expires in {EXPIRY_NOTICE_DAYS} days"),
    (EXPIRY_NOTICE_DAYS + 1, False, True, f"expires in {EXPIRY_NOTICE_DAYS + 1} days"),
    (hygiene.EXPIRY_HORIZON_DAYS, False, True, f"expires in {hygiene.EXPIRY_HORIZON_DAYS} days"),
    (hygiene.EXPIRY_HORIZON_DAYS + 1, False, False, ""),
]


@pytest.mark.parametrize("offset, planned, reported, words", BOUNDARIES)
def test_the_plan_and_the_reports_count_the_same_days(
    offset: int, planned: bool, reported: bool, words: str
) -> None:
    state = live([user("soon@acme.co", 1, expires=day(offset))])
    note = [
        f.message
        for f in diff(desired_from(state), state, PlanOptions(), TODAY).findings
        if f.code == "expiry"
    ]
    found = [f.message for f in hygiene.expiry_findings(state.users, TODAY)]
    assert note == ([f"soon@acme.co {words} ({day(offset)}): deactivated by the first plan "
                     "after that day"] if planned else [])  # fmt: skip
    assert found == ([f"soon@acme.co {words} ({day(offset)}): deactivated by the first plan "
                      "after that day"] if reported else [])  # fmt: skip
