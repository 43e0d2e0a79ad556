"""`userctl show PLAN`: a saved plan rendered as plan renders it, after its format and digest are
checked, with no database; and what `approve` prints before it asks for a code."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    bulk_org,
    drop_gone,
    drop_gone_plan,
    exported,
    live_state,
    new_user,
    rows_of,
    save_plan,
    tables,
)
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl.db import models as m


def test_show_renders_a_saved_plan_with_where_it_came_from(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    yaml_file = write_desired(tmp_path / "users.yaml", drop_gone(engine))
    assert runner("plan", "-f", str(yaml_file), "--out", str(tmp_path / "plan.json")).exit_code == 0
    saved = json.loads((tmp_path / "plan.json").read_text())

    text = runner("show", str(tmp_path / "plan.json"))

    assert text.exit_code == 0, text.output
    assert re.search(
        rf"^Made \S+Z by userctl \S+ from {re.escape(str(yaml_file))} \(sha256:", text.stdout, re.M
    )
    assert 'user["gone@acme.co"] delete  [destructive, 2FA]' in text.stdout
    assert saved["digest"][:19] in text.stdout
    as_json = runner("show", str(tmp_path / "plan.json"), "--format", "json")
    assert json.loads(as_json.stdout) == saved
    assert runner("show", str(tmp_path / "plan.json"), "--format", "markdown").stdout.startswith(
        "### userctl plan"
    )
    assert runner("show", str(tmp_path / "plan.json"), "--format", "html").stdout.startswith(
        "<!DOCTYPE html>"
    )


def test_show_needs_no_database(engine: Engine, org: Org, runner: Runner, tmp_path: Path) -> None:
    path = drop_gone_plan(engine, tmp_path)
    result = runner(
        "--database-url", f"sqlite:///{tmp_path / 'nowhere' / 'none.db'}", "show", str(path)
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("backend", ["sqlite"])
def test_show_refuses_an_edited_plan_and_a_file_that_is_no_plan(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    edited = path.with_name("edited.json")
    edited.write_text(path.read_text().replace("gone@acme.co", "gon3@acme.co"))
    result = runner("show", str(edited))
    assert result.exit_code == 4 and "modified after it was written" in result.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2")
    result = runner("show", str(junk))
    assert (
        result.exit_code == 1
        and "not a saved plan" in result.stderr
        and "Traceback" not in result.output
    )


def test_approve_prints_the_risky_steps_and_the_digest(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    digest = json.loads(path.read_text())["digest"]

    result = runner(
        "approve", "--yes", str(path), "--operator", org.root.email, "--otp-code", org.root.code()
    )

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Destructive or privilege-granting steps (2):" in out
    assert 'user["gone@acme.co"] delete  [destructive, 2FA]' in out
    assert f"Digest: {digest}" in out
    assert out.index(f"Digest: {digest}") < out.index("Approved plan")
    assert rows_of(engine, m.Approval)


def test_apply_of_something_endless_is_refused_at_the_size_cap(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    # /dev/zero is no plan: refused after reading at most the size cap, never read forever.
    before = tables(engine)
    result = runner("apply", "/dev/zero", "--operator", org.root.email, "--yes")
    assert result.exit_code == 1 and "saved plan is over the 512 MiB limit" in result.stderr
    assert tables(engine) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_show_writes_the_whole_plan_as_markdown_for_a_job_summary(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    """The pipeline's job summary holds what the pull-request comment cuts: with --max-bytes a
    plan too long for a comment is written whole."""
    bulk_org(factory)
    desired = exported(live_state(engine))
    desired = replace(
        desired,
        users={
            **desired.users,
            **{u.email: u for u in (new_user(f"n{i}@acme.co", i) for i in range(400))},
        },
    )
    path = save_plan(engine, desired, tmp_path)

    comment = runner("show", str(path), "--format", "markdown")
    summary = runner("show", str(path), "--format", "markdown", "--max-bytes", "1000000")

    assert comment.exit_code == 0 and summary.exit_code == 0, summary.output
    assert len(comment.stdout) <= 60_000 < len(summary.stdout) <= 1_000_000
    assert "more change(s) not shown" in comment.stdout and "not shown" not in summary.stdout
    assert all(f'user["n{i}@acme.co"]' in summary.stdout for i in range(400))
    too_small = runner("show", str(path), "--format", "markdown", "--max-bytes", "10")
    assert too_small.exit_code == 1 and "--max-bytes" in too_small.stderr
