"""A TOTP code is judged at the moment the command read it (issue 19, part 7), on every backend:
`apply` plans a large file before it checks the code, and a code valid when it was given must not
have expired by then, nor count towards the lockout. The window is still one step either side of
that moment, and a moment after the check is no reading of a code."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    code_at,
    drop_gone,
    make_plan,
    rows_of,
    stamped,
)
from userctl.apply import apply_plan
from userctl.apply.enrolment import enroll_user
from userctl.apply.transaction import approve_plan
from userctl.db import models as m
from userctl.errors import CodeRejected

T = dt.datetime(2026, 3, 1, 12, 0, 10)  # 10 s into a 30 s step
PLANNING = dt.timedelta(seconds=90)  # three steps: outside the window around T


def test_apply_accepts_a_code_valid_when_it_was_read_after_a_long_planning(
    engine: Engine, org: Org
) -> None:
    plan = make_plan(engine, drop_gone(engine))
    result = apply_plan(
        engine,
        plan,
        "root@acme.co",
        otp_code=code_at(org.root, T),
        now=T + PLANNING,
        code_read_at=T,
    )
    assert (result.applied, result.verified_by) == (2, "totp")
    assert not rows_of(engine, m.User, m.User.email == "gone@acme.co")
    # Nothing was counted as a wrong guess.
    assert [e.action for e in rows_of(engine, m.AuditEvent) if e.action.startswith("otp.")] == []


def test_apply_refuses_a_code_valid_only_when_the_planning_ended(engine: Engine, org: Org) -> None:
    plan = make_plan(engine, drop_gone(engine))
    before = rows_of(engine, m.User)
    with pytest.raises(CodeRejected, match="4 attempt"):
        apply_plan(
            engine,
            plan,
            "root@acme.co",
            otp_code=code_at(org.root, T + PLANNING),
            now=T + PLANNING,
            code_read_at=T,
        )
    assert rows_of(engine, m.User) == before


def test_a_read_moment_after_the_check_is_judged_at_the_check(engine: Engine, org: Org) -> None:
    """A caller cannot move the window into the future: a code of ten minutes from now is refused
    however late it says the code was read, and the current code is accepted."""
    plan = make_plan(engine, drop_gone(engine))
    later = T + dt.timedelta(minutes=10)
    with pytest.raises(CodeRejected):
        apply_plan(
            engine,
            plan,
            "root@acme.co",
            otp_code=code_at(org.root, later),
            now=T,
            code_read_at=later,
        )
    result = apply_plan(
        engine, plan, "root@acme.co", otp_code=code_at(org.root, T), now=T, code_read_at=later
    )
    assert result.verified_by == "totp"


def test_approve_judges_the_code_when_it_was_read(engine: Engine, org: Org) -> None:
    plan = stamped(make_plan(engine, drop_gone(engine)), T)
    done = approve_plan(
        engine,
        plan,
        "root@acme.co",
        code_at(org.root, T),
        now=T + PLANNING,
        valid_for=dt.timedelta(hours=1),
        code_read_at=T,
    )
    assert done.approver == "root@acme.co"
    with pytest.raises(CodeRejected):
        approve_plan(
            engine,
            plan,
            "root@acme.co",
            code_at(org.root, T + 2 * PLANNING),
            now=T + 2 * PLANNING,
            valid_for=dt.timedelta(hours=1),
            code_read_at=T + PLANNING,
        )
    assert len(rows_of(engine, m.Approval)) == 1


def test_enrolment_judges_the_code_when_it_was_read(engine: Engine, org: Org) -> None:
    done = enroll_user(
        engine,
        "acme-payments",
        "calm@acme.co",
        "root@acme.co",
        code_at(org.root, T),
        now=T + PLANNING,
        code_read_at=T,
    )
    assert done.email == "calm@acme.co"
    with pytest.raises(CodeRejected):
        enroll_user(
            engine,
            "acme-payments",
            "calm@acme.co",
            "root@acme.co",
            code_at(org.root, T + 2 * PLANNING),
            now=T + 2 * PLANNING,
            code_read_at=T + PLANNING,
        )
