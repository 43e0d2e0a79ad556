"""`--operator` on every backend: apply and approve refuse to run without one (every change is
attributed to someone), naming the option; USERCTL_OPERATOR stands in for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    drop_gone_plan,
    rows_of,
    tables,
)
from tests.conftest import Runner
from userctl.db import models as m


@pytest.mark.parametrize("command", ["apply", "approve"])
def test_operator_is_required(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, command: str
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    before = tables(engine)
    extra = ["--yes"] if command == "apply" else []

    result = runner(command, str(path), "--otp-code", org.root.code(), *extra)

    assert result.exit_code == 1, result.output
    assert "--operator" in result.stderr and "Missing option" in result.stderr
    assert "Traceback" not in result.output
    assert tables(engine) == before


def test_operator_from_the_environment(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = drop_gone_plan(engine, tmp_path)

    result = runner(
        "apply",
        str(path),
        "--otp-code",
        org.root.code(),
        "--yes",
        env={"USERCTL_OPERATOR": "Root@Acme.co"},
    )

    assert result.exit_code == 0, result.output
    assert rows_of(engine, m.User, m.User.email == "gone@acme.co") == []
    events = rows_of(engine, m.AuditEvent)
    assert events and {(e.operator, e.verified_by) for e in events} == {("root@acme.co", "totp")}


def test_approver_from_the_environment(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = drop_gone_plan(engine, tmp_path)

    result = runner(
        "approve",
        "--yes",
        str(path),
        "--otp-code",
        org.root.code(),
        env={"USERCTL_OPERATOR": "root@acme.co"},
    )

    assert result.exit_code == 0, result.output
    [approval] = rows_of(engine, m.Approval)
    assert approval.approver_email == "root@acme.co"
