"""Messages that send people the right way (issue 20, part 5): each names the true cause and the
next step. A wrong message is a trust problem too: advice to change what is already right makes
people stop reading the notes, and a refusal naming the wrong cause sends them to fix the wrong
thing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
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


# --- an enum field's hint lists its values ---------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "users.yaml"


def _example_with(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "users.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_ambiguous_boolean_in_an_enum_field_is_told_the_fields_values(
    runner: Runner, tmp_path: Path
) -> None:
    path = _example_with(tmp_path, "two_factor: disabled", "two_factor: off")
    result = runner("validate", "-f", str(path))
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if "two_factor" in line]
    assert line.startswith(f"{path}:")
    assert "takes one of: required, optional, disabled" in line
    assert "true or false" not in line and "quote it" not in line


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_ambiguous_boolean_elsewhere_keeps_the_boolean_hint(
    runner: Runner, tmp_path: Path
) -> None:
    path = _example_with(tmp_path, "force_password_reset: true", "force_password_reset: yes")
    result = runner("validate", "-f", str(path))
    assert result.exit_code == 1 and "use true or false" in result.stderr


# --- unknown references get a "did you mean" -------------------------------------------------


def test_an_unknown_bank_account_gets_a_did_you_mean(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    desired = exported(live_state(engine))
    users = dict(desired.users)
    users["calm@acme.co"] = replace(users["calm@acme.co"], bank_accounts=frozenset({"ops-mian"}))
    path = write_desired(tmp_path / "users.yaml", replace(desired, users=users))
    result = runner("plan", "-f", str(path))
    assert result.exit_code == 1
    assert "unknown bank account 'ops-mian' (did you mean 'ops-main'?)" in result.stderr
    assert f"{path}:" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_unknown_role_in_the_live_organization_gets_a_did_you_mean(
    runner: Runner, engine: Engine, org: Org
) -> None:
    result = runner("users", "list", "--role", "Suport")
    assert result.exit_code == 1 and "(did you mean 'Support'?)" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_unknown_user_gets_a_did_you_mean(runner: Runner, engine: Engine, org: Org) -> None:
    result = runner("users", "show", "leavr@acme.co")
    assert result.exit_code == 1
    assert "(did you mean 'leaver@acme.co'?)" in result.stderr
    assert "Traceback" not in result.output


# --- approve, like apply, refuses without a terminal and --yes ------------------------------


def test_approve_without_a_terminal_and_without_yes_is_refused(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    from tests.apply.apply_helpers import drop_gone_plan

    plan = drop_gone_plan(engine, tmp_path)
    before = tables(engine)
    refused = runner(
        "approve", str(plan), "--operator", org.root.email, "--otp-code", org.root.code()
    )
    assert refused.exit_code == 4, refused.output
    assert "no terminal" in refused.stderr and "--yes" in refused.stderr
    assert tables(engine) == before  # no approval, and the code was not spent
    assert runner(*apply_args(plan, org.root.email)).exit_code == 4  # nothing to apply it with


# --- a closed pipe is a quiet exit ----------------------------------------------------------

USERCTL = str(Path(sys.executable).with_name("userctl"))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "command", [["audit", "log"], ["audit", "log", "--format", "json"], ["users", "list"]]
)
def test_a_reader_that_stops_reading_is_a_quiet_exit_0(
    db_url: str, org: Org, command: list[str]
) -> None:
    # `userctl audit log | head -1`: the reader is gone before userctl writes (it is closed here
    # before the process has even started up), so every write meets a closed pipe.
    process = subprocess.Popen(
        [USERCTL, "--database-url", db_url, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "USERCTL_DEBUG": "0"},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert stderr == ""


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_text_audit_log_names_its_columns(runner: Runner, org: Org) -> None:
    out = runner("audit", "log").stdout.splitlines()
    assert out[0] == "TIME  OPERATOR  VERIFIED BY  ACTION  ADDRESS  [FOLLOWS #EVENT]  [REASON]"


# --- only a saved plan is offered for approval ----------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fmt", ["html", "markdown"])
def test_a_never_saved_plan_is_not_offered_for_approval(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path, fmt: str
) -> None:
    from tests.apply.apply_helpers import drop_gone

    path = write_desired(tmp_path / "users.yaml", drop_gone(engine))
    unsaved = runner("plan", "-f", str(path), "--format", fmt).stdout
    assert "userctl approve plan.json --operator" not in unsaved
    assert "save the plan with" in unsaved and "--out plan.json" in unsaved
    saved = runner("plan", "-f", str(path), "--format", fmt, "--out", str(tmp_path / "p.json"))
    assert f"userctl approve {tmp_path / 'p.json'} --operator" in saved.stdout
    shown = runner("show", str(tmp_path / "p.json"), "--format", fmt).stdout
    assert f"userctl approve {tmp_path / 'p.json'} --operator" in shown
