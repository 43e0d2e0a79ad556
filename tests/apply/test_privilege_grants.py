"""Privilege grants need 2FA under the default policy, through the real CLI on every backend: a
plan of plain creates of unprivileged users needs no code; each kind of grant does."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    apply_args,
    exported,
    live_state,
    new_user,
    rows_of,
    save_plan,
    tables,
    with_users,
)
from tests.cli.yaml_files import write_desired
from tests.conftest import Runner
from userctl.db import models as m
from userctl.state import DesiredState, Role

GRANTS: dict[str, Callable[[DesiredState], DesiredState]] = {
    "create an admin": lambda d: with_users(d, new_user("boss@acme.co", 1, role="Admin")),
    "create a payouts operator": lambda d: with_users(d, new_user("payer@acme.co", 2, role="Ops")),
    "promote to a role with users.manage": lambda d: with_users(
        d, replace(d.users["calm@acme.co"], role="Admin")
    ),
    "add users.manage to a role held by many": lambda d: replace(
        d,
        roles={
            **d.roles,
            "Ops": Role(
                "Ops", d.roles["Ops"].description, d.roles["Ops"].permissions | {"users.manage"}
            ),
        },
    ),
    "assign a payout bank account": lambda d: with_users(
        d, replace(d.users["calm@acme.co"], bank_accounts=frozenset({"payroll"}))
    ),
    "reactivate a payouts operator": lambda d: with_users(
        d, replace(d.users["back@acme.co"], status="active")
    ),
}


@pytest.mark.parametrize("grant", sorted(GRANTS))
def test_each_privilege_grant_needs_a_code(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, grant: str
) -> None:
    path = save_plan(engine, GRANTS[grant](exported(live_state(engine))), tmp_path)
    before = tables(engine)

    refused = runner(*apply_args(path, org.root.email))

    assert refused.exit_code == 4, refused.output
    assert "need 2FA" in refused.stderr
    assert tables(engine) == before
    applied = runner(*apply_args(path, org.root.email, org.root.code()))
    assert applied.exit_code == 0 and "verified by totp" in applied.stdout, applied.output


def test_plain_creates_of_unprivileged_users_need_no_code(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    desired = with_users(
        exported(live_state(engine)), new_user("helper@acme.co", 3), new_user("aide@acme.co", 4)
    )
    path = save_plan(engine, desired, tmp_path)

    applied = runner(*apply_args(path, org.root.email))

    assert applied.exit_code == 0, applied.output
    assert "verified by none" in applied.stdout
    assert rows_of(engine, m.User, m.User.email == "aide@acme.co")


def test_plan_exits_3_for_a_privilege_grant_and_2_for_plain_creates(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    live = exported(live_state(engine))
    plain = write_desired(tmp_path / "plain.yaml", with_users(live, new_user("aide@acme.co", 4)))
    granting = write_desired(
        tmp_path / "granting.yaml", with_users(live, new_user("boss@acme.co", 1, role="Admin"))
    )

    assert runner("plan", "-f", str(plain), "--detailed-exitcode").exit_code == 2
    result = runner("plan", "-f", str(granting), "--detailed-exitcode")
    assert result.exit_code == 3, result.output
    assert 'user["boss@acme.co"] create  [privilege, 2FA]' in result.stdout


def test_a_plan_made_in_a_git_work_tree_records_its_commit(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    write_desired(repo / "users.yaml", exported(live_state(engine)))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
    except FileNotFoundError:
        pytest.skip("git is not installed on this machine")
    subprocess.run([*git, "add", "users.yaml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "users"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()

    assert (
        runner(
            "plan", "-f", str(repo / "users.yaml"), "--out", str(tmp_path / "plan.json")
        ).exit_code
        == 0
    )

    provenance = json.loads((tmp_path / "plan.json").read_text())["provenance"]
    assert provenance["git_commit"] == head
    assert list(provenance["files"]) == [str(repo / "users.yaml")]
