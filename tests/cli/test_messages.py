"""Messages that send people the right way (issue 20, part 5): each names the true cause and the
next step. A wrong message is a trust problem too: advice to change what is already right makes
people stop reading the notes, and a refusal naming the wrong cause sends them to fix the wrong
thing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    ADMIN_PERMS,
    ORG,
    Org,
    apply_args,
    exported,
    live_state,
    rename,
    save_plan,
    tables,
)
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner

# --- a stale plan is "stale", with or without -f ----------------------------------------------


def test_an_already_applied_plan_with_the_file_is_refused_as_stale(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    desired = rename(exported(live_state(engine)), "upd@acme.co", "New")
    path = write_desired(tmp_path / "users.yaml", desired)
    plan = save_plan(engine, desired, tmp_path)
    assert runner(*apply_args(plan, org.root.email), "-f", str(path)).exit_code == 0

    before = tables(engine)
    again = runner(*apply_args(plan, org.root.email), "-f", str(path))
    assert again.exit_code == 4, again.output
    assert "stale" in again.stderr
    assert "does not match" not in again.stderr and "deferred" not in again.stderr
    assert tables(engine) == before
    # The same words as without -f.
    without = runner(*apply_args(plan, org.root.email))
    assert without.exit_code == 4 and "stale" in without.stderr


def test_a_plan_overtaken_by_another_change_with_the_file_is_stale(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    desired = rename(exported(live_state(engine)), "upd@acme.co", "New")
    path = write_desired(tmp_path / "users.yaml", desired)
    plan = save_plan(engine, desired, tmp_path)
    # Someone else renames the same user first.
    other = save_plan(
        engine, rename(exported(live_state(engine)), "upd@acme.co", "Other"), tmp_path, "other.json"
    )
    assert runner(*apply_args(other, org.root.email)).exit_code == 0
    refused = runner(*apply_args(plan, org.root.email), "-f", str(path))
    assert refused.exit_code == 4 and "stale" in refused.stderr
    assert 'user["upd@acme.co"]' in refused.stderr


def test_a_plan_the_file_does_not_give_is_still_told_so(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    # Not stale, but not what the merged file plans: the file is the cause, and is named.
    plan = save_plan(engine, rename(exported(live_state(engine)), "upd@acme.co", "New"), tmp_path)
    path = write_desired(
        tmp_path / "users.yaml", rename(exported(live_state(engine)), "upd@acme.co", "Else")
    )
    refused = runner(*apply_args(plan, org.root.email), "-f", str(path))
    assert refused.exit_code == 4 and "does not match" in refused.stderr


# --- hygiene advice follows what the file and the database say ------------------------------


def _unenrolled_admins(factory: Factory) -> None:
    org = factory.org(ORG)
    admin = factory.role(org, "Admin", ADMIN_PERMS)
    factory.operator(org, "root@acme.co", admin)
    factory.user(org, "declared@acme.co", admin, two_factor="required")
    factory.user(org, "lax@acme.co", admin, two_factor="optional")


def test_privileged_without_2fa_advice_depends_on_what_is_declared(
    runner: Runner, factory: Factory
) -> None:
    _unenrolled_admins(factory)
    report = json.loads(runner("hygiene", "--format", "json").stdout)
    messages = {f["message"].split(" ")[0]: f["message"] for f in report["findings"]}
    declared, lax = messages["declared@acme.co"], messages["lax@acme.co"]
    assert "has `two_factor: required` but has not enrolled an authenticator" in declared
    assert "must enrol at their next login" in declared
    assert "set `two_factor: required`" not in declared
    assert "set `two_factor: required` for them in the file" in lax


def test_a_plan_that_requires_2fa_is_not_told_to_require_it(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    _unenrolled_admins(factory)
    desired = exported(live_state(engine, ORG))
    users = dict(desired.users)
    users["lax@acme.co"] = replace(users["lax@acme.co"], two_factor="required")
    path = write_desired(tmp_path / "users.yaml", replace(desired, users=users))
    data = json.loads(runner("plan", "-f", str(path), "--format", "json").stdout)
    [note] = [f["message"] for f in data["findings"] if f["message"].startswith("lax@acme.co")]
    assert "set `two_factor: required`" not in note and "next login" in note
