"""What a change takes away (Change.impact): the planner reads it from the live state, every
renderer shows it, the plan's JSON carries it under its schema, and apply re-derives it, refusing a
plan whose impact is not the live state's."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.core.planner_states import ADMIN, OPS, desired, live, user
from userctl.errors import StalePlan
from userctl.plan import Change, Plan, dumps, loads, provenance
from userctl.planner import IMPACT_SHOWN, diff
from userctl.render import render
from userctl.replan import check_rederived, same_plan
from userctl.state import DesiredState, LiveState, Role

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())
APPROVER = Role("Approver", "Approves payouts", frozenset({"payouts.view", "payouts.approve"}))


def only(plan: Plan, address: str, action: str) -> Change:
    [found] = [c for c in plan.changes if c.address == address and c.action == action]
    return found


def leavers_plan() -> Plan:
    """ana is deleted (two bank accounts), bob deactivated (none)."""
    ana = user(
        "ana@acme.co",
        1,
        first_name="Ana",
        last_name="Perez",
        role="Admin",
        bank_accounts=frozenset({"payroll", "ops-main"}),
    )
    bob = user("bob@acme.co", 2, first_name="Bob", last_name="Ray")
    state = live([ana, bob])
    return diff(desired([replace(bob, status="inactive")]), state)


def test_a_deleted_or_deactivated_user_shows_what_they_had() -> None:
    plan = leavers_plan()
    delete = only(plan, 'user["ana@acme.co"]', "delete")
    assert delete.impact == {"bank_accounts": {"shown": ["ops-main", "payroll"], "more": 0}}
    assert only(plan, 'user["bob@acme.co"]', "deactivate").impact == {
        "bank_accounts": {"shown": [], "more": 0}
    }
    # Nothing else carries one, and a change without one has no key at all in the JSON.
    assert [c.address for c in plan.changes if c.impact is not None] == [
        'user["bob@acme.co"]',
        'user["ana@acme.co"]',
    ]
    assert all("impact" not in c.to_data() for c in plan.changes if c.impact is None)

    data = plan.to_data()
    was_ana = "    was: Ana Perez, role Admin, active, bank accounts: ops-main, payroll"
    was_bob = "    was: Bob Ray, role Ops, active, bank accounts: none"
    text = render(data, "text").splitlines()
    assert text[text.index('- user["ana@acme.co"] delete  [destructive, 2FA]') + 1] == was_ana
    assert text[text.index('~ user["bob@acme.co"] deactivate  [destructive, 2FA]') + 2] == was_bob
    md = render(data, "markdown")
    assert was_ana in md and was_bob in md
    page = render(data, "html")
    assert (
        '<p class="impact">was: Ana Perez, role Admin, active, bank accounts: ops-main, payroll</p>'
        in page
    )


def role_losing_plan(holders: int) -> tuple[Plan, LiveState, DesiredState]:
    """Approver loses payouts.approve; it is held by `holders` users who keep it, one who moves to
    Ops and one who is deleted (neither is listed: they lose it by their own change)."""
    keep = [user(f"keep{i:02d}@acme.co", 10 + i, role="Approver") for i in range(holders)]
    mover = user("mover@acme.co", 3, role="Approver")
    leaver = user("leaver@acme.co", 4, role="Approver")
    roles = [ADMIN, OPS, APPROVER]
    state = live([*keep, mover, leaver], roles=roles)
    want = desired(
        [*keep, replace(mover, role="Ops")],
        roles=[ADMIN, OPS, replace(APPROVER, permissions=frozenset({"payouts.view"}))],
    )
    return diff(want, state), state, want


def test_a_role_losing_a_permission_lists_who_loses_it() -> None:
    plan, _, _ = role_losing_plan(3)
    update = only(plan, 'role["Approver"]', "update")
    assert update.impact == {
        "holders": {"shown": ["keep00@acme.co", "keep01@acme.co", "keep02@acme.co"], "more": 0}
    }
    line = "    users who lose payouts.approve: keep00@acme.co, keep01@acme.co, keep02@acme.co"
    text = render(plan.to_data(), "text").splitlines()
    assert text[text.index('~ role["Approver"] update  [destructive, 2FA]') + 2] == line
    assert line in render(plan.to_data(), "markdown")
    assert f'<p class="impact">{line.strip()}</p>' in render(plan.to_data(), "html")


def test_the_holder_list_is_capped_and_counts_the_rest() -> None:
    plan, _, _ = role_losing_plan(IMPACT_SHOWN + 5)
    holders = only(plan, 'role["Approver"]', "update").impact["holders"]  # type: ignore[index]
    assert (
        holders["shown"] == [f"keep{i:02d}@acme.co" for i in range(IMPACT_SHOWN)]
        and holders["more"] == 5
    )
    assert "keep09@acme.co and 5 more" in render(plan.to_data(), "text")


def test_a_role_gaining_permissions_or_losing_none_held_says_so() -> None:
    # Gaining a permission takes nothing away: no impact.
    state = live(roles=[ADMIN, OPS, APPROVER])
    gains = diff(
        desired(
            roles=[ADMIN, OPS, replace(APPROVER, permissions=APPROVER.permissions | {"audit.view"})]
        ),
        state,
    )
    assert [c.impact for c in gains.changes] == [None]
    loses = diff(desired(roles=[ADMIN, OPS, replace(APPROVER, permissions=frozenset())]), state)
    assert "users who lose payouts.approve, payouts.view: none" in render(loses.to_data(), "text")


def test_impact_is_in_the_schema_and_survives_a_saved_plan() -> None:
    plan, _, _ = role_losing_plan(2)
    plan = replace(
        plan,
        changes=plan.changes + leavers_plan().changes[-1:],
        provenance=provenance(dt.datetime(2026, 1, 1), {}, None, "sqlite: x.db"),
    )
    data = json.loads(dumps(plan))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert loads(dumps(plan)) == plan
    data["changes"][-1]["impact"] = {"holders": {"shown": ["x"] * (IMPACT_SHOWN + 1), "more": 0}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(data)


def test_apply_refuses_an_edited_holder_list() -> None:
    plan, state, _ = role_losing_plan(3)
    check_rederived(plan, state)  # the plan as written passes

    def edited(impact: dict[str, Any]) -> Plan:
        return replace(
            plan,
            changes=tuple(
                replace(c, impact=impact) if c.kind == "role" else c for c in plan.changes
            ),
        )

    for impact in (
        {"holders": {"shown": ["keep00@acme.co"], "more": 0}},  # two hidden
        {"holders": {"shown": [], "more": 0}},
    ):
        with pytest.raises(
            StalePlan,
            match=r'role\["Approver"\] update, the users it says lose the removed permissions',
        ):
            check_rederived(edited(impact), state)
    # Without the key, as a plan written before impact existed would be.
    with pytest.raises(StalePlan):
        check_rederived(edited(None), state)  # type: ignore[arg-type]


def test_a_new_holder_since_the_plan_makes_it_stale() -> None:
    """Who holds a role is no row the plan pins, so a holder added since is found by re-deriving
    the impact: the plan no longer tells the reviewer everyone who loses the permission."""
    plan, state, want = role_losing_plan(2)
    newcomer = user("newcomer@acme.co", 40, role="Approver")
    later = replace(state, users={**state.users, newcomer.email: newcomer})
    with pytest.raises(StalePlan, match="changed since the plan was made"):
        check_rederived(plan, later)
    # And `apply PLAN -f FILE` says why the file does not plan to the saved plan.
    why = same_plan(
        plan, diff(replace(want, users={**want.users, newcomer.email: newcomer}), later)
    )
    assert why is not None and why.startswith('the plan is stale: for role["Approver"] update')
