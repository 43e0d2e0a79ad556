"""One rule for who may act (DESIGN §8 invariant 1), on every backend: an operator past their
`expires` is no operator for any command that acts or records who acted — apply (even of the
plan that would keep them), approve (even the plan that deactivates them), review attest, the
confirmation of `mfa enroll` — and an approval they recorded before their expiry passed stops
counting once it has. The attacker is bob@acme.co, an admin whose access ended yesterday."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    apply_args,
    drop_gone,
    exported,
    live_state,
    make_plan,
    save_plan,
    tables,
    with_users,
)
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Operator, Runner
from userctl.apply import approve_plan, code_can_confirm
from userctl.apply.transaction import eligible_approvals
from userctl.clock import unix_seconds, utcnow
from userctl.db.engine import begin_read

TODAY = utcnow().date()


@pytest.fixture
def bob(factory: Factory, org: Org) -> Operator:
    """An enrolled admin whose last day of access was yesterday."""
    return factory.operator(
        org.id,
        "bob@acme.co",
        org.roles["Admin"],
        expires=(TODAY - dt.timedelta(days=1)).isoformat(),
    )


def _refused_as_expired(result_output: str, exit_code: int) -> None:
    assert exit_code == 4, result_output
    assert "bob@acme.co expired on" in result_output and "cannot act" in result_output
    assert "Traceback" not in result_output


def test_expired_operator_removing_their_expiry_and_applying_with_own_code_is_refused(
    engine: Engine, org: Org, bob: Operator, runner: Runner, tmp_path: Path
) -> None:
    desired = exported(live_state(engine))
    desired = with_users(desired, replace(desired.users["bob@acme.co"], expires=None))
    path = write_desired(tmp_path / "users.yaml", desired)
    before = tables(engine)

    result = runner(
        "apply", "-f", str(path), "--operator", bob.email, "--otp-code", bob.code(), "--yes"
    )

    _refused_as_expired(result.stderr, result.exit_code)
    assert tables(engine) == before


def test_expired_operator_cannot_apply_any_plan_with_their_own_code(
    engine: Engine, org: Org, bob: Operator, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    before = tables(engine)

    result = runner(*apply_args(path, bob.email, bob.code()))

    _refused_as_expired(result.stderr, result.exit_code)
    assert tables(engine) == before


def test_expired_operator_cannot_approve_not_even_the_plan_that_expires_them(
    engine: Engine, org: Org, bob: Operator, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, exported(live_state(engine)), tmp_path)
    assert '"bob@acme.co"' in path.read_text(encoding="utf-8")  # the plan deactivates bob
    before = tables(engine)

    result = runner(
        "approve", str(path), "--operator", bob.email, "--otp-code", bob.code(), "--yes"
    )

    _refused_as_expired(result.stderr, result.exit_code)
    assert tables(engine) == before


def test_expired_operator_cannot_attest_a_review(
    engine: Engine, org: Org, bob: Operator, runner: Runner, tmp_path: Path
) -> None:
    report = runner("review", "--format", "json")
    assert report.exit_code == 0, report.output
    path = tmp_path / "review.json"
    path.write_text(report.stdout, encoding="utf-8")
    before = tables(engine)

    result = runner(
        "review", "attest", str(path), "--reviewer", bob.email, "--otp-code", bob.code()
    )

    _refused_as_expired(result.stderr, result.exit_code)
    assert tables(engine) == before


def test_expired_operator_cannot_confirm_an_enrolment(
    engine: Engine, org: Org, bob: Operator, runner: Runner
) -> None:
    before = tables(engine)

    result = runner(
        "mfa", "enroll", "calm@acme.co", "--operator", bob.email, "--otp-code", bob.code()
    )

    _refused_as_expired(result.stderr, result.exit_code)
    assert tables(engine) == before


def test_an_approval_stops_counting_when_its_approver_expires(
    engine: Engine, factory: Factory, org: Org
) -> None:
    """Approved while bob's access lasted (his last day is today); a day later it no longer
    confirms the plan, though it has not expired as an approval. (Applying this plan tomorrow is
    refused earlier anyway: re-derived, it would deactivate bob.)"""
    bob = factory.operator(org.id, "bob@acme.co", org.roles["Admin"], expires=TODAY.isoformat())
    plan = make_plan(engine, drop_gone(engine))
    now = utcnow().replace(microsecond=0)
    approve_plan(
        engine,
        plan,
        bob.email,
        bob.code(unix_seconds(now)),
        now=now,
        valid_for=dt.timedelta(days=3),
    )
    tomorrow = dt.datetime.combine(TODAY + dt.timedelta(days=1), dt.time(9))
    with begin_read(engine) as conn:
        today_found, _ = eligible_approvals(conn, org.id, plan, None, now)
        later_found, void = eligible_approvals(conn, org.id, plan, None, tomorrow)
    assert [a.approver_email for a in today_found] == ["bob@acme.co"]
    assert later_found == [] and any("bob@acme.co expired on" in v for v in void)

    # The CLI's question "would a code help?" follows: tomorrow the approval confirms nothing.
    assert code_can_confirm(engine, plan, org.root.email, now) is False
    assert code_can_confirm(engine, plan, org.root.email, tomorrow) is True
