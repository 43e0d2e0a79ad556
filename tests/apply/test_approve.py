"""`userctl approve PLAN` and applying an approved plan without a code, on every backend: the
approval is bound to one exact digest, expires, is used once, and under four-eyes must come from
someone other than the applier."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    apply_args,
    build_org,
    code_at,
    exported,
    live_state,
    make_plan,
    plan_of,
    rows_of,
    save_plan,
    tables,
    with_users,
)
from tests.conftest import Factory, Operator, Runner
from userctl.apply import apply_plan, approve_plan
from userctl.db import models as m
from userctl.errors import (
    GuardBlocked,
    NotAuthorized,
    StalePlan,
    TwoFactorFailed,
    TwoFactorRequired,
)
from userctl.state import DesiredState

T0 = dt.datetime(2026, 3, 1, 12, 0, 10)


@pytest.fixture
def lead(factory: Factory, org: Org) -> Operator:
    """A second admin: the pipeline's operator, or the other pair of eyes."""
    return factory.operator(org.id, "lead@acme.co", org.roles["Admin"])


def drop(engine: Engine, *emails: str) -> DesiredState:
    return with_users(exported(live_state(engine)), drop=emails)


def approve_args(plan: Path, operator: str, code: str | None, *extra: str) -> list[str]:
    args = ["approve", "--yes", str(plan), "--operator", operator, *extra]
    return args + (["--otp-code", code] if code is not None else [])


def test_approved_plan_is_applied_without_a_code(
    engine: Engine, org: Org, lead: Operator, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path)
    digest = plan_of(path).digest

    approved = runner(*approve_args(path, "Root@Acme.co", org.root.code()))

    assert approved.exit_code == 0, approved.output
    assert re.search(
        rf"Approved plan {re.escape(digest)} for acme-payments by root@acme.co, valid until \S+Z\.",
        approved.stdout,
    )
    [approval] = rows_of(engine, m.Approval)
    assert (approval.plan_digest, approval.approver_email, approval.used_at) == (
        digest,
        "root@acme.co",
        None,
    )
    assert approval.expires_at - approval.created_at == dt.timedelta(hours=24)
    [event] = rows_of(engine, m.AuditEvent)
    assert (event.action, event.operator, event.verified_by, event.plan_digest) == (
        "plan.approve",
        "root@acme.co",
        "totp",
        digest,
    )

    applied = runner(*apply_args(path, lead.email))

    assert applied.exit_code == 0, applied.output
    assert "verified by approval:root@acme.co" in applied.stdout
    assert not rows_of(engine, m.User, m.User.email == "gone@acme.co")
    changes = [e for e in rows_of(engine, m.AuditEvent) if e.action != "plan.approve"]
    assert {(e.operator, e.verified_by) for e in changes} == {
        ("lead@acme.co", "approval:root@acme.co")
    }
    assert len(changes) == 2
    [approval] = rows_of(engine, m.Approval)
    assert approval.used_at is not None


def test_edited_plan_is_refused_by_approve_and_apply(
    engine: Engine, org: Org, lead: Operator, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path)
    assert runner(*approve_args(path, "root@acme.co", org.root.code())).exit_code == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    # Swap the user to delete: a reviewed plan must not become another one.
    for change in data["changes"]:
        change["key"] = [k.replace("gone@", "calm@") for k in change["key"]]
        change["address"] = change["address"].replace("gone@", "calm@")
    path.write_text(json.dumps(data), encoding="utf-8")
    before = tables(engine)

    applied = runner(*apply_args(path, lead.email))
    approved = runner(*approve_args(path, lead.email, lead.code()))

    for result in (applied, approved):
        assert result.exit_code == 4, result.output
        assert "modified after it was written" in result.stderr and "digest" in result.stderr
    assert tables(engine) == before


def test_approval_covers_only_its_own_plan(
    engine: Engine, org: Org, lead: Operator, runner: Runner, tmp_path: Path
) -> None:
    approved_path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path, name="approved.json")
    other_path = save_plan(engine, drop(engine, "leaver@acme.co"), tmp_path, name="other.json")
    assert runner(*approve_args(approved_path, "root@acme.co", org.root.code())).exit_code == 0
    before = tables(engine)

    result = runner(*apply_args(other_path, lead.email))

    assert result.exit_code == 4, result.output
    assert "need 2FA" in result.stderr and "userctl approve" in result.stderr
    assert tables(engine) == before


def test_approval_expires(engine: Engine, org: Org, lead: Operator) -> None:
    plan = make_plan(engine, drop(engine, "gone@acme.co"))
    row = approve_plan(
        engine, plan, "root@acme.co", code_at(org.root, T0), now=T0, valid_for=dt.timedelta(hours=1)
    )
    assert row.expires_at == T0 + dt.timedelta(hours=1)
    before = tables(engine)

    with pytest.raises(TwoFactorRequired):
        apply_plan(engine, plan, lead.email, otp_code=None, now=T0 + dt.timedelta(hours=1))
    assert tables(engine) == before

    result = apply_plan(engine, plan, lead.email, otp_code=None, now=T0 + dt.timedelta(minutes=59))
    assert (result.applied, result.verified_by) == (2, "approval:root@acme.co")


def test_approval_validity_is_chosen_on_the_command_line(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path)
    result = runner(*approve_args(path, "root@acme.co", org.root.code(), "--valid-for", "0.5"))
    assert result.exit_code == 0, result.output
    [approval] = rows_of(engine, m.Approval)
    assert approval.expires_at - approval.created_at == dt.timedelta(minutes=30)


def test_approval_is_used_once(engine: Engine, org: Org, lead: Operator) -> None:
    """Applying consumes the approval: it is never found again."""
    plan = make_plan(engine, drop(engine, "gone@acme.co"))
    approve_plan(
        engine, plan, "root@acme.co", code_at(org.root, T0), now=T0, valid_for=dt.timedelta(hours=1)
    )
    apply_plan(engine, plan, lead.email, otp_code=None, now=T0 + dt.timedelta(minutes=1))
    [approval] = rows_of(engine, m.Approval)
    assert approval.used_at == T0 + dt.timedelta(minutes=1)
    from userctl.apply import approvals

    with engine.connect() as conn:
        assert approvals.candidates(conn, org.id, plan.digest, T0 + dt.timedelta(minutes=2)) == []


def test_four_eyes_the_approver_cannot_apply_their_own_approval(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    org = build_org(factory, four_eyes=True)
    lead = factory.operator(org.id, "lead@acme.co", org.roles["Admin"])
    path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path)
    assert runner(*approve_args(path, "root@acme.co", org.root.code())).exit_code == 0
    before = tables(engine)

    own = runner(*apply_args(path, "root@acme.co"))

    assert own.exit_code == 4, own.output
    assert "requires four eyes" in own.stderr and "two different people must confirm" in own.stderr
    assert tables(engine) == before  # the approval is still unused

    named = runner(*apply_args(path, lead.email))  # a second name without a code proves nothing
    assert named.exit_code == 4, named.output
    assert "there is an approval by root@acme.co" in named.stderr
    assert tables(engine) == before

    other = runner(*apply_args(path, lead.email, lead.code()))
    assert other.exit_code == 0, other.output
    assert "verified by totp+approval:root@acme.co" in other.stdout


@pytest.mark.parametrize("change", ["deactivated", "demoted"])
def test_approval_by_an_approver_no_longer_eligible_does_not_count(
    engine: Engine, org: Org, lead: Operator, runner: Runner, tmp_path: Path, change: str
) -> None:
    """Approving, then losing the right to approve, voids the approval."""
    path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path)
    assert runner(*approve_args(path, lead.email, lead.code())).exit_code == 0
    values = {"status": "inactive"} if change == "deactivated" else {"role_id": org.roles["Ops"]}
    with engine.begin() as conn:
        conn.execute(sa.update(m.User).where(m.User.id == lead.user_id).values(**values))
    before = tables(engine)

    result = runner(*apply_args(path, "root@acme.co"))

    assert result.exit_code == 4, result.output
    assert "approval of this plan no longer counts" in result.stderr
    assert ("is inactive" if change == "deactivated" else "lacks users.manage") in result.stderr
    assert tables(engine) == before


def test_approve_with_a_wrong_code_records_no_approval(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path)
    near = {org.root.code(at) for at in _around_now()}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in near)
    result = runner(*approve_args(path, "root@acme.co", wrong))
    assert result.exit_code == 4, result.output
    assert "wrong one-time code" in result.stderr
    assert rows_of(engine, m.Approval) == []
    assert [e.action for e in rows_of(engine, m.AuditEvent)] == ["otp.failure"]


def test_approve_without_a_code_and_without_a_terminal_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path)
    result = runner(*approve_args(path, "root@acme.co", None))
    assert result.exit_code == 1, result.output
    assert "--otp-code" in result.stderr
    assert rows_of(engine, m.Approval) == []


def test_stale_blocked_or_unauthorised_plans_cannot_be_approved(
    engine: Engine, factory: Factory, org: Org
) -> None:
    stale = make_plan(engine, drop(engine, "gone@acme.co"))
    blocked = make_plan(
        engine, drop(engine, "gone@acme.co", "calm@acme.co", "tf@acme.co", "upd@acme.co")
    )
    assert blocked.blocked
    with engine.begin() as conn:
        conn.execute(
            sa.update(m.User).where(m.User.email == "gone@acme.co").values(first_name="Changed")
        )
    opsy = factory.operator(org.id, "opsy@acme.co", org.roles["Ops"])
    before = tables(engine)
    valid = dt.timedelta(hours=1)

    with pytest.raises(StalePlan, match=re.escape('user["gone@acme.co"]')):
        approve_plan(engine, stale, "root@acme.co", code_at(org.root, T0), now=T0, valid_for=valid)
    with pytest.raises(GuardBlocked):
        approve_plan(
            engine, blocked, "root@acme.co", code_at(org.root, T0), now=T0, valid_for=valid
        )
    fresh = make_plan(engine, drop(engine, "gone@acme.co"))
    with pytest.raises(NotAuthorized, match="lacks users.manage"):
        approve_plan(engine, fresh, opsy.email, code_at(opsy, T0), now=T0, valid_for=valid)
    assert tables(engine) == before


def test_a_code_used_to_approve_cannot_be_used_again_to_apply(engine: Engine, org: Org) -> None:
    plan = make_plan(engine, drop(engine, "gone@acme.co"))
    code = code_at(org.root, T0)
    approve_plan(engine, plan, "root@acme.co", code, now=T0, valid_for=dt.timedelta(hours=1))
    other = make_plan(engine, drop(engine, "leaver@acme.co"))
    with pytest.raises(TwoFactorFailed, match="already used"):
        apply_plan(engine, other, "root@acme.co", otp_code=code, now=T0 + dt.timedelta(seconds=5))


def _around_now() -> list[float]:
    import time

    now = time.time()
    return [now + 30 * s for s in range(-3, 4)]


def test_an_approver_with_a_long_address_approves_and_the_pipeline_applies(
    engine: Engine, factory: Factory, org: Org, runner: Runner, tmp_path: Path
) -> None:
    # audit_events.verified_by holds "approval:<email>": PostgreSQL and MariaDB enforce its
    # width, so a realistic corporate address must fit (it did not at VARCHAR(32)).
    email = "maria.fernanda.rodriguez-castellanos@payments.acme-holdings.co"
    approver = factory.operator(org.id, email, org.roles["Admin"])
    path = save_plan(engine, drop(engine, "gone@acme.co"), tmp_path)

    approved = runner(*approve_args(path, email, approver.code()))
    assert approved.exit_code == 0, approved.output
    applied = runner(*apply_args(path, org.root.email))

    assert applied.exit_code == 0, applied.output
    assert f"verified by approval:{email}" in applied.stdout
    verified = {e.verified_by for e in rows_of(engine, m.AuditEvent) if e.action != "plan.approve"}
    assert verified == {f"approval:{email}"}
