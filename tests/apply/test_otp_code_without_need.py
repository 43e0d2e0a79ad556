"""A --otp-code given for a plan that needs no 2FA (issue 20, part 5). Who could misuse it: someone
guessing codes where nothing would check them, and an audit trail that then says "operator gave
no code" although one was typed. A code given is checked like any other, never dropped."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    apply_args,
    exported,
    live_state,
    new_user,
    plan_of,
    rename,
    rows_of,
    save_plan,
    tables,
    with_users,
)
from tests.conftest import Runner
from userctl.db import models as m


def _plain_plan(engine: Engine, tmp_path: Path) -> Path:
    """A rename: a plain update, no 2FA."""
    return save_plan(engine, rename(exported(live_state(engine)), "upd@acme.co", "New"), tmp_path)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_a_wrong_code_is_refused_even_where_none_is_needed(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    plan = _plain_plan(engine, tmp_path)
    before = tables(engine)
    result = runner(*apply_args(plan, org.root.email, _wrong(org.root.code())))
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output
    after = tables(engine)
    assert after["users"] == before["users"]
    # The failed guess is counted like any other, toward the lockout.
    assert [e.action for e in rows_of(engine, m.AuditEvent)] == ["otp.failure"]


def test_a_right_code_records_the_operator_as_verified(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    plan = _plain_plan(engine, tmp_path)
    result = runner(*apply_args(plan, org.root.email, org.root.code()))
    assert result.exit_code == 0, result.output
    [event] = [e for e in rows_of(engine, m.AuditEvent) if e.action == "user.update"]
    assert event.operator_verified is True and event.verified_by == "totp"


def test_without_a_code_nothing_claims_the_operator_was_verified(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    plan = _plain_plan(engine, tmp_path)
    assert runner(*apply_args(plan, org.root.email)).exit_code == 0
    [event] = [e for e in rows_of(engine, m.AuditEvent) if e.action == "user.update"]
    assert event.operator_verified is False and event.verified_by == "none"


def test_the_review_page_never_says_no_code_was_given_when_one_was(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    # A new user with an unprivileged role: a grant the review shows, needing no 2FA.
    plan = save_plan(
        engine, with_users(exported(live_state(engine)), new_user("new@acme.co", 1)), tmp_path
    )
    assert not plan_of(plan).requires_2fa
    assert runner(*apply_args(plan, org.root.email, org.root.code())).exit_code == 0
    page = runner("review", "--format", "csv").stdout
    [row] = [line for line in page.splitlines() if line.startswith("new@acme.co")]
    assert "totp" in row and "operator gave no code" not in row
