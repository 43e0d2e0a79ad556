"""Four-eyes at apply time, on every backend: when the organization requires that the approver
and the applier differ, the applier's own TOTP code never confirms a plan that needs 2FA, and
the CLI's decision whether to ask for a code follows the very rule apply enforces."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    apply_args,
    build_org,
    drop_gone_plan,
    exported,
    live_state,
    make_plan,
    plan_of,
    rename,
    rows_of,
    save_plan,
    tables,
    with_users,
)
from tests.conftest import Factory, Operator, Runner
from userctl.apply import approve_plan, code_can_confirm
from userctl.clock import utcnow
from userctl.db import models as m


@pytest.fixture
def org(factory: Factory) -> Org:
    return build_org(factory, four_eyes=True)


@pytest.fixture
def lead(factory: Factory, org: Org) -> Operator:
    return factory.operator(org.id, "lead@acme.co", org.roles["Admin"])


def test_under_four_eyes_the_appliers_own_code_alone_is_refused(
    engine: Engine, org: Org, lead: Operator, runner: Runner, tmp_path: Path
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    assert plan_of(path).requires_2fa
    before = tables(engine)

    result = runner(*apply_args(path, "root@acme.co", org.root.code()))

    assert result.exit_code == 4, result.output
    assert "requires four eyes" in result.stderr and "there is your own code" in result.stderr
    assert "Someone else must approve it" in result.stderr and "userctl approve" in result.stderr
    assert "Traceback" not in result.output
    assert tables(engine) == before  # not even the code's time step was spent

    approved = runner(
        "approve", "--yes", str(path), "--operator", lead.email, "--otp-code", lead.code()
    )
    assert approved.exit_code == 0, approved.output
    applied = runner(*apply_args(path, "root@acme.co", org.root.code()))
    assert applied.exit_code == 0, applied.output
    assert "verified by totp+approval:lead@acme.co" in applied.stdout
    assert rows_of(engine, m.User, m.User.email == "gone@acme.co") == []
    events = [e for e in rows_of(engine, m.AuditEvent) if e.action != "plan.approve"]
    assert {(e.operator, e.verified_by, e.operator_verified) for e in events} == {
        ("root@acme.co", "totp+approval:lead@acme.co", True)
    }


def test_under_four_eyes_one_person_under_two_names_is_refused(
    engine: Engine, org: Org, lead: Operator, runner: Runner, tmp_path: Path
) -> None:
    """root approves, then applies naming lead without lead's code: one person proved it."""
    path = drop_gone_plan(engine, tmp_path)
    assert (
        runner(
            "approve",
            "--yes",
            str(path),
            "--operator",
            "root@acme.co",
            "--otp-code",
            org.root.code(),
        ).exit_code
        == 0
    )
    before = tables(engine)

    result = runner(*apply_args(path, lead.email))

    assert result.exit_code == 4, result.output
    assert (
        "two different people must confirm" in result.stderr
        and "an approval by root@acme.co" in result.stderr
    )
    assert tables(engine) == before
    assert rows_of(engine, m.User, m.User.email == "gone@acme.co")


def test_under_four_eyes_two_approvals_by_two_operators_apply_without_a_code(
    engine: Engine, factory: Factory, org: Org, lead: Operator, runner: Runner, tmp_path: Path
) -> None:
    third = factory.operator(org.id, "third@acme.co", org.roles["Admin"])
    path = drop_gone_plan(engine, tmp_path)
    assert (
        runner(
            "approve", "--yes", str(path), "--operator", lead.email, "--otp-code", lead.code()
        ).exit_code
        == 0
    )
    # The same approver twice is still one person.
    again = runner(
        "approve",
        "--yes",
        str(path),
        "--operator",
        lead.email,
        "--otp-code",
        lead.code(at=time.time() + 30),
    )
    assert again.exit_code == 0, again.output
    assert runner(*apply_args(path, "root@acme.co")).exit_code == 4
    assert (
        runner(
            "approve", "--yes", str(path), "--operator", third.email, "--otp-code", third.code()
        ).exit_code
        == 0
    )

    applied = runner(*apply_args(path, "root@acme.co"))

    assert applied.exit_code == 0, applied.output
    assert "verified by approval:lead@acme.co+approval:third@acme.co" in applied.stdout
    events = [e for e in rows_of(engine, m.AuditEvent) if e.action == "user.delete"]
    # root was only named: the log says so.
    assert [(e.operator, e.operator_verified) for e in events] == [("root@acme.co", False)]


def test_under_four_eyes_a_plan_needing_no_2fa_is_applied_by_one_person(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Quiet"), tmp_path
    )
    assert not plan_of(path).requires_2fa

    result = runner(*apply_args(path, "root@acme.co"))

    assert result.exit_code == 0, result.output
    assert rows_of(engine, m.User.first_name, m.User.email == "calm@acme.co") == [("Quiet",)]


def test_without_four_eyes_the_appliers_own_code_still_suffices(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    org = build_org(factory, four_eyes=False)
    path = drop_gone_plan(engine, tmp_path)
    result = runner(*apply_args(path, "root@acme.co", org.root.code()))
    assert result.exit_code == 0, result.output
    assert "verified by totp" in result.stdout


# --- when the CLI asks for a code -----------------------------------------------------------------


def test_under_four_eyes_a_code_is_asked_for_only_beside_someone_elses_approval(
    engine: Engine, factory: Factory, org: Org, lead: Operator
) -> None:
    """A code alone cannot confirm under four eyes; beside another operator's approval it can;
    with two operators' approvals none is needed."""
    plan = make_plan(engine, with_users(exported(live_state(engine)), drop=["gone@acme.co"]))
    now = utcnow()
    assert code_can_confirm(engine, plan, "root@acme.co", now) is False
    approve_plan(
        engine, plan, "root@acme.co", org.root.code(), now=now, valid_for=dt.timedelta(hours=1)
    )
    assert (
        code_can_confirm(engine, plan, "root@acme.co", now) is False
    )  # their own approval is no second person
    assert code_can_confirm(engine, plan, "lead@acme.co", now) is True
    third = factory.operator(org.id, "third@acme.co", org.roles["Admin"])
    approve_plan(engine, plan, third.email, third.code(), now=now, valid_for=dt.timedelta(hours=1))
    assert code_can_confirm(engine, plan, "lead@acme.co", now) is False


def test_an_approval_that_no_longer_counts_means_a_code_is_asked_for(
    engine: Engine, factory: Factory, runner: Runner
) -> None:
    """The old check found any approval of the digest and then skipped the prompt, even when
    apply would discard that approval (its approver since deactivated)."""
    org = build_org(factory, four_eyes=False)
    lead = factory.operator(org.id, "lead@acme.co", org.roles["Admin"])
    plan = make_plan(engine, with_users(exported(live_state(engine)), drop=["gone@acme.co"]))
    now = utcnow()
    assert code_can_confirm(engine, plan, "root@acme.co", now) is True
    approve_plan(engine, plan, lead.email, lead.code(), now=now, valid_for=dt.timedelta(hours=1))
    assert code_can_confirm(engine, plan, "root@acme.co", now) is False

    with engine.begin() as conn:
        conn.execute(sa.update(m.User).where(m.User.id == lead.user_id).values(status="inactive"))
    assert code_can_confirm(engine, plan, "root@acme.co", now) is True


def test_no_code_is_asked_of_an_operator_apply_will_refuse(
    engine: Engine, factory: Factory
) -> None:
    build_org(factory, four_eyes=False)
    plan = make_plan(engine, with_users(exported(live_state(engine)), drop=["gone@acme.co"]))
    assert code_can_confirm(engine, plan, "nobody@acme.co", utcnow()) is False
    assert code_can_confirm(engine, plan, "calm@acme.co", utcnow()) is False  # no authenticator
