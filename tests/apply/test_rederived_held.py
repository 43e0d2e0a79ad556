"""Apply (and approve) never hold two full plans: the saved changes are let go of while the planner
re-derives them, each re-derived change is checked against the saved one's fingerprint, and a
refusal gets the saved change it names back from the file, worded as it always was
(replan.HeldPlan, apply/planning.held_saved)."""

from __future__ import annotations

import gc
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    apply_args,
    drop_gone,
    every_change,
    exported,
    live_state,
    make_plan,
    new_user,
    rows_of,
    save_plan,
    tables,
    with_users,
)
from tests.cli.yaml_files import write_desired
from tests.conftest import Runner
from userctl import replan
from userctl.apply import run
from userctl.clock import utcnow
from userctl.db import models as m
from userctl.errors import ForgedPlan, Refused, StalePlan
from userctl.plan import (
    Change,
    Plan,
    change_fingerprint,
    compute_digest,
    planned_fingerprint,
    user_address,
)
from userctl.planner import PlanOptions
from userctl.replan import check_rederived

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

Replanned = Callable[[Plan], Plan]


def rederiving_as(monkeypatch: pytest.MonkeyPatch, tamper: Replanned) -> list[tuple[int, int]]:
    """Have replan's planner hand back `tamper` of its plan; returns, filled in as it runs, how many
    Change objects are alive the moment each re-derived plan is there (before the comparison),
    and how many that plan holds."""
    real = replan.diff
    alive: list[tuple[int, int]] = []
    # Earlier tests' cyclic garbage may still hold Changes (waiting for a full collection): gone
    # now, so that only this command's are counted.
    gc.collect()

    def planned(*args: Any, **kwargs: Any) -> Plan:
        plan = tamper(real(*args, **kwargs))
        alive.append((sum(1 for o in gc.get_objects() if type(o) is Change), len(plan.changes)))
        return plan

    monkeypatch.setattr(replan, "diff", planned)
    return alive


def _unchanged(plan: Plan) -> Plan:
    return plan


def test_apply_of_a_saved_plan_never_holds_the_saved_and_the_rederived_changes_at_once(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = [new_user(f"held{i:03d}@acme.co", 500 + i) for i in range(200)]
    path = save_plan(engine, with_users(exported(live_state(engine)), *added), tmp_path)
    alive = rederiving_as(monkeypatch, _unchanged)

    result = runner(*apply_args(path, org.root.email))

    assert result.exit_code == 0, result.output
    assert len(rows_of(engine, m.User, m.User.email.like("held%"))) == 200
    # The re-derived plan's 200 creates, and not one saved change beside them.
    assert alive == [(200, 200)]


def test_approve_of_a_saved_plan_never_holds_the_saved_and_the_rederived_changes_at_once(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = [new_user(f"held{i:03d}@acme.co", 500 + i) for i in range(50)]
    desired = with_users(exported(live_state(engine)), *added, drop=["gone@acme.co"])
    path = save_plan(engine, desired, tmp_path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    alive = rederiving_as(monkeypatch, _unchanged)

    result = runner("approve", "--yes", str(path), "--operator", org.root.email, "--otp-code",
                    org.root.code())  # fmt: skip

    assert result.exit_code == 0, result.output
    assert saved["digest"] in result.stdout  # the digest approved is the saved plan's
    assert alive == [(len(saved["changes"]), len(saved["changes"]))]


def test_apply_of_a_saved_plan_with_its_file_never_holds_two_plans_at_once(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`apply PLAN -f FILE`: the saved changes are let go of before the file is planned, and the
    file's plan is let go of (its changes held in the saved ones' place) before re-deriving."""
    added = [new_user(f"held{i:03d}@acme.co", 500 + i) for i in range(100)]
    desired = with_users(exported(live_state(engine)), *added)
    yaml_file = write_desired(tmp_path / "users.yaml", desired)
    planned = runner("plan", "-f", str(yaml_file), "--out", str(tmp_path / "plan.json"))
    assert planned.exit_code == 0, planned.output
    saved = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    real = run.plan_from_file
    from_file: list[tuple[int, int]] = []

    def counting(*args: Any, **kwargs: Any) -> Plan:
        plan = real(*args, **kwargs)
        from_file.append((sum(1 for o in gc.get_objects() if type(o) is Change), len(plan.changes)))
        return plan

    monkeypatch.setattr(run, "plan_from_file", counting)
    alive = rederiving_as(monkeypatch, _unchanged)

    result = runner(*apply_args(tmp_path / "plan.json", org.root.email), "-f", str(yaml_file))

    assert result.exit_code == 0, result.output
    assert len(rows_of(engine, m.User, m.User.email.like("held%"))) == 100
    assert from_file == [(100, 100)] and alive == [(100, 100)]
    [event, *_] = [e for e in rows_of(engine, m.AuditEvent) if e.action == "user.create"]
    assert event.plan_digest == saved["digest"]  # the reviewed plan's digest


def test_apply_of_a_file_never_holds_its_plan_and_the_rederived_one_at_once(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`apply -f FILE`: the plan made from the file moments before lets go of its changes while
    the planner re-derives them under the lock (replan.HeldPlan.made)."""
    added = [new_user(f"held{i:03d}@acme.co", 500 + i) for i in range(100)]
    yaml_file = write_desired(
        tmp_path / "users.yaml", with_users(exported(live_state(engine)), *added)
    )
    alive = rederiving_as(monkeypatch, _unchanged)

    result = runner("apply", "-f", str(yaml_file), "--operator", org.root.email, "--yes")

    assert result.exit_code == 0, result.output
    assert len(rows_of(engine, m.User, m.User.email.like("held%"))) == 100
    assert alive == [(100, 100)]  # the re-derived plan's creates, and not the first plan's


def _without_last(plan: Plan) -> Plan:
    return replace(plan, changes=plan.changes[:-1])


def _with_one_more(plan: Plan) -> Plan:
    extra = replace(plan.changes[-1], key=("zz-extra@acme.co",))
    return replace(plan, changes=(*plan.changes, extra))


def _first_noted(plan: Plan) -> Plan:
    noted = replace(plan.changes[0], note="another note")
    return replace(plan, changes=(noted, *plan.changes[1:]))


def _impact_moved(plan: Plan) -> Plan:
    [i] = [i for i, c in enumerate(plan.changes) if c.impact is not None]
    changes = list(plan.changes)
    changes[i] = replace(changes[i], impact={"bank_accounts": {"shown": ["x"], "more": 0}})
    return replace(plan, changes=tuple(changes))


@pytest.mark.parametrize(
    ("tamper", "kind", "detail"),
    [
        (_without_last, ForgedPlan, "is a change the planner does not write"),
        (_with_one_more, ForgedPlan, 'it leaves out user["zz-extra@acme.co"]'),
        (_first_noted, ForgedPlan, "is not what the planner writes (it would write assignment["),
        (_impact_moved, StalePlan, "are not those of the live state"),
    ],
    ids=["planner-writes-fewer", "planner-writes-more", "a-field-differs", "impact-differs"],
)
def test_a_refusal_names_the_saved_change_re_read_from_the_file_as_the_kept_one(
    engine: Engine,
    org: Org,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Replanned,
    kind: type[Refused],
    detail: str,
) -> None:
    """The same refusal, word for word, whether the saved change it names was kept (a plan
    in memory) or let go of and read back from its file."""
    path = save_plan(engine, drop_gone(engine), tmp_path)
    now = utcnow()
    live = live_state(engine)
    rederiving_as(monkeypatch, tamper)

    kept = run.read_saved_plan(str(path), None, now, 1)
    with pytest.raises(kind) as in_memory:
        check_rederived(kept, live, now.date())
    held = run.held(run.read_saved_plan(str(path), None, now, 1), str(path))
    with pytest.raises(kind) as from_file:
        check_rederived(held, live, now.date())

    assert detail in str(in_memory.value)
    assert str(from_file.value) == str(in_memory.value)
    assert not held.plan.changes  # a refused plan holds nothing to apply


def test_a_saved_plan_file_changed_while_it_is_applied_is_refused(
    engine: Engine, org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved change a refusal names is read back only if it is the one read before."""
    path = save_plan(engine, drop_gone(engine), tmp_path)
    other = with_users(exported(live_state(engine)), drop=["leaver@acme.co"])
    now = utcnow()
    held = run.held(run.read_saved_plan(str(path), None, now, 1), str(path))

    def rewritten(plan: Plan) -> Plan:
        save_plan(engine, other, tmp_path)  # over the same plan.json
        return _first_noted(plan)

    rederiving_as(monkeypatch, rewritten)
    with pytest.raises(Refused, match="changed while it was being applied") as refused:
        check_rederived(held, live_state(engine), now.date())
    assert not isinstance(refused.value, ForgedPlan)


def test_a_saved_plan_file_swapped_for_json_nested_too_deep_is_refused_as_changed(
    engine: Engine, org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file read back to word a refusal may have become anything meanwhile, JSON nested
    deeper than Python's stack included: refused as a file that changed, not an error."""
    path = save_plan(engine, drop_gone(engine), tmp_path)
    now = utcnow()
    held = run.held(run.read_saved_plan(str(path), None, now, 1), str(path))

    def swapped(plan: Plan) -> Plan:
        path.write_text('{"changes": [' + "[" * 100_000 + "]" * 100_000 + "]}")
        return _first_noted(plan)

    rederiving_as(monkeypatch, swapped)
    with pytest.raises(Refused, match="changed while it was being applied"):
        check_rederived(held, live_state(engine), now.date())
    assert not held.plan.changes


def test_a_saved_change_equal_as_data_but_not_as_bytes_is_applied_as_before(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    """An impact count written 0.0 instead of 0 (with its digest recomputed) has another
    fingerprint than the planner's change, yet equals it as data: as before fingerprints, the
    plan is applied, not refused."""
    path = save_plan(engine, drop_gone(engine), tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    [delete] = [
        c
        for c in data["changes"]
        if c["address"] == user_address("gone@acme.co") and c["action"] == "delete"
    ]
    delete["impact"]["bank_accounts"]["more"] = 0.0
    signed = {k: v for k, v in data.items() if k not in ("digest", "findings", "summary")}
    data["digest"] = compute_digest(signed)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    before = tables(engine)

    result = runner(*apply_args(path, org.root.email, org.root.code()))

    assert result.exit_code == 0, result.output
    assert tables(engine) != before
    assert not rows_of(engine, m.User, m.User.email == "gone@acme.co")


def test_the_planners_changes_are_fingerprinted_as_the_digest_covers_them(
    engine: Engine, org: Org
) -> None:
    """A re-derived change's fingerprint is taken without the canonical encoder's type walk: for
    every kind of change the planner writes, it is the fingerprint of the canonical bytes."""
    desired, options = every_change(engine)
    plan = make_plan(engine, desired, PlanOptions(**options))
    assert {c.kind for c in plan.changes} == {"role", "user", "assignment", "policy"}
    assert [planned_fingerprint(c) for c in plan.changes] == [
        change_fingerprint(c) for c in plan.changes
    ]
    assert b"".join(change_fingerprint(c) for c in plan.changes) == plan.fingerprints


@pytest.mark.parametrize(
    ("tamper", "detail"),
    [
        (_without_last, 'the planner no longer writes user["gone@acme.co"] delete'),
        (_with_one_more, 'the planner now also writes user["zz-extra@acme.co"] delete'),
        (_first_noted, "the planner now writes another assignment["),
        (_impact_moved, 'the planner now writes another user["gone@acme.co"] delete'),
    ],
    ids=["planner-writes-fewer", "planner-writes-more", "a-field-differs", "impact-differs"],
)
def test_a_plan_made_in_this_process_that_the_planner_no_longer_writes_is_stale(
    engine: Engine,
    org: Org,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Replanned,
    detail: str,
) -> None:
    """`apply -f FILE` keeps of its plan only each change's name: a re-derived change that differs
    is refused as stale (the live state or the day moved), never as forged, naming the change."""
    now = utcnow()
    held = run.held(make_plan(engine, drop_gone(engine)), None)
    rederiving_as(monkeypatch, tamper)

    with pytest.raises(StalePlan) as refused:
        check_rederived(held, live_state(engine), now.date())

    assert not isinstance(refused.value, ForgedPlan)
    assert str(refused.value).startswith("the plan is stale: " + detail)
    assert str(refused.value).endswith("Nothing was written; plan again.")
    assert not held.plan.changes  # a refused plan holds nothing to apply


def test_apply_of_a_file_whose_impact_moved_under_the_lock_is_refused_as_stale(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the holders of what a delete takes away moved between planning the file and
    re-deriving under the lock (as the planner is made to see it here): exit 4, nothing written."""
    yaml_file = write_desired(tmp_path / "users.yaml", drop_gone(engine))
    before = tables(engine)
    rederiving_as(monkeypatch, _impact_moved)

    result = runner("apply", "-f", str(yaml_file), "--operator", org.root.email, "--yes",
                    "--otp-code", org.root.code())  # fmt: skip

    assert result.exit_code == 4, result.output
    assert 'the plan is stale: the planner now writes another user["gone@acme.co"] delete' in (
        result.output
    )
    assert "Traceback" not in result.output
    assert tables(engine) == before
