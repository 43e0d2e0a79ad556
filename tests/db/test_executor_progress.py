"""Progress of a big apply, on every backend: the executor reports after each batch it writes
(so a bar moves during one big group of changes, not once per group), the increments add up to
the number of changes, and without a terminal the CLI shows no bar at all."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    ORG,
    apply_args,
    build_org,
    bulk_org,
    code_at,
    every_change,
    exported,
    live_state,
    make_plan,
    new_user,
    rows_of,
    save_plan,
)
from tests.conftest import Factory, Runner
from userctl.apply import apply_plan
from userctl.clock import utcnow
from userctl.db import models as m
from userctl.db.engine import begin_write
from userctl.db.executor import CHUNK, Executor
from userctl.planner import PlanOptions
from userctl.state import DesiredState


def with_new_users(engine: Engine, count: int) -> DesiredState:
    live = exported(live_state(engine))
    users = dict(live.users)
    users.update((f"bulk{i}@acme.co", new_user(f"bulk{i}@acme.co", i)) for i in range(count))
    return DesiredState(ORG, live.roles, users)


def test_one_big_group_reports_progress_batch_by_batch(engine: Engine, factory: Factory) -> None:
    org_id, _ = bulk_org(factory)
    plan = make_plan(engine, with_new_users(engine, 1200))
    changes = plan.active_changes
    assert {(c.kind, c.action) for c in changes} == {("user", "create")}  # one group only
    increments: list[int] = []

    with begin_write(engine) as conn:
        created = Executor(conn, org_id, utcnow()).run(changes, increments.append)

    assert sum(increments) == len(changes) == 1200
    assert len(increments) >= 2 and max(increments) <= CHUNK
    assert len(created) == 1200 and len(rows_of(engine, m.User.id)) == 1201


def test_every_kind_of_change_is_reported_exactly_once(engine: Engine, factory: Factory) -> None:
    org = build_org(factory)
    desired, options = every_change(engine)
    plan = make_plan(engine, desired, PlanOptions(**options))
    increments: list[int] = []

    with begin_write(engine) as conn:
        Executor(conn, org.id, utcnow()).run(plan.active_changes, increments.append)

    # A replace deletes and re-creates its user, but counts once; every group reports something.
    assert sum(increments) == len(plan.active_changes)
    assert len(increments) >= len({(c.kind, c.action) for c in plan.active_changes})


def test_apply_passes_progress_through_to_the_executor(engine: Engine, factory: Factory) -> None:
    _, root = bulk_org(factory)
    plan = make_plan(engine, with_new_users(engine, 1500))
    increments: list[int] = []
    now = utcnow()
    code = code_at(root, now) if plan.requires_2fa else None

    result = apply_plan(
        engine, plan, root.email, otp_code=code, now=now, progress=increments.append
    )

    assert result.applied == 1500 and sum(increments) == 1500 and len(increments) >= 2


def test_no_progress_bar_without_a_terminal(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    bulk_org(factory)
    path = save_plan(engine, with_new_users(engine, 400), tmp_path)  # above the bar's threshold

    result = runner(*apply_args(path, "root@acme.co"))

    assert result.exit_code == 0, result.output
    assert "Applied 400 change(s)" in result.stdout
    assert "Applying" not in result.stderr and "%" not in result.stderr
