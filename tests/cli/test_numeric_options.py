"""Numeric options refuse NaN, the infinities and values out of range as usage errors (exit 1,
one line naming the option), before anything is read or written; NaN compares false with every
bound, so a plain FloatRange let it through to fail later as an "unexpected" error."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, drop_gone_plan, tables
from tests.conftest import Runner

BAD = [
    ("--lock-timeout", "nan", "'nan' is not a number"),
    ("--lock-timeout", "inf", "is not in the range 0<=x<=86400"),
    ("--lock-timeout", "-inf", "is not in the range 0<=x<=86400"),
    ("--lock-timeout", "1e9", "is not in the range 0<=x<=86400"),
    ("--lock-timeout", "-1", "is not in the range 0<=x<=86400"),
]


def _command(name: str, plan: Path, tmp_path: Path, operator: str, code: str) -> list[str]:
    if name == "apply":
        return ["apply", str(plan), "--operator", operator, "--otp-code", code, "--yes"]
    if name == "approve":
        return ["approve", "--yes", str(plan), "--operator", operator, "--otp-code", code]
    if name == "mfa enroll":
        return ["mfa", "enroll", "gone@acme.co", "--operator", operator, "--otp-code", code]
    csv = tmp_path / "accounts.csv"
    csv.write_text(
        "key,bank,account_type,masked_number,currency\nnew-1,Citi,savings,****0001,USD\n",
        encoding="utf-8",
    )
    return ["accounts", "import", str(csv)]


@pytest.mark.parametrize("command", ["apply", "approve", "mfa enroll", "accounts import"])
@pytest.mark.parametrize("option, value, message", BAD, ids=[f"{o}={v}" for o, v, _ in BAD])
def test_lock_timeout_refuses_non_finite_and_out_of_range_values(
    engine: Engine,
    org: Org,
    runner: Runner,
    tmp_path: Path,
    command: str,
    option: str,
    value: str,
    message: str,
) -> None:
    plan = drop_gone_plan(engine, tmp_path)
    before = tables(engine)

    result = runner(
        *_command(command, plan, tmp_path, org.root.email, org.root.code()), f"{option}={value}"
    )

    assert result.exit_code == 1, result.output
    assert f"Invalid value for '{option}'" in result.stderr and message in result.stderr
    assert "unexpected" not in result.output and "Traceback" not in result.output
    assert tables(engine) == before


@pytest.mark.parametrize(
    "value, message",
    [
        ("nan", "'nan' is not a number"),
        ("inf", "0.01<=x<=168"),
        ("1e9", "0.01<=x<=168"),
        ("169", "0.01<=x<=168"),
        ("0", "0.01<=x<=168"),
    ],
)
def test_valid_for_refuses_non_finite_and_out_of_range_hours(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, value: str, message: str
) -> None:
    plan = drop_gone_plan(engine, tmp_path)
    before = tables(engine)

    result = runner(
        *_command("approve", plan, tmp_path, org.root.email, org.root.code()), "--valid-for", value
    )

    assert result.exit_code == 1, result.output
    assert "Invalid value for '--valid-for'" in result.stderr and message in result.stderr
    assert tables(engine) == before


def test_the_longest_allowed_approval_is_accepted(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    plan = drop_gone_plan(engine, tmp_path)
    result = runner(
        *_command("approve", plan, tmp_path, org.root.email, org.root.code()), "--valid-for", "168"
    )
    assert result.exit_code == 0, result.output
