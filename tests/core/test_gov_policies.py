"""Issue 18, invariants 3, 4 and 7 on the pure side (no database): whatever schedules a loss of
access is confirmed when it is scheduled; a default is a value; the gate's own settings are
policies. Each test is written as the attack it stops: what a plan would let through if the
planner took the file's word, and what apply's re-derivation refuses when a saved plan says
otherwise."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from tests.core.planner_states import desired_from, live, user
from userctl import guards, hygiene
from userctl.errors import ForgedPlan
from userctl.plan import Change, Plan, policy_loosens
from userctl.planner import PlanOptions, diff
from userctl.render.common import field_lines, gate_line
from userctl.replan import check_rederived
from userctl.simulate import apply_changes
from userctl.state import DesiredState, LiveState, PolicyKey, PolicyValue

TODAY = dt.date(2026, 12, 2)


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def _only(plan: Plan) -> Change:
    (change,) = plan.changes
    return change


def _flags(change: Change) -> tuple[bool, bool, bool]:
    return (change.destructive, change.grants_privilege, change.requires_2fa)


# --- invariant 3: an expiry is confirmed when it is scheduled ---------------------------------


@pytest.mark.parametrize(
    "before, after, flags",
    [
        # Scheduling a loss of access: destructive, 2FA, and nothing granted.
        (None, 1, (True, False, True)),  # set where there was none, for tomorrow
        (None, 300, (True, False, True)),  # set far ahead: still a scheduled loss
        (10, 9, (True, False, True)),  # brought forward by one day
        # Back-dated (the date already past: a loss today, which the same plan carries out with no
        # code of its own): destructive, and flagged privilege as DESIGN §1 says; 2FA either way.
        (None, -1, (True, True, True)),
        (10, -3, (True, True, True)),
        # Giving access back for longer: privilege, 2FA.
        (10, 11, (False, True, True)),  # extended
        (10, None, (False, True, True)),  # removed
    ],
)
def test_an_expiry_set_or_brought_forward_is_destructive_and_needs_2fa(
    before: int | None, after: int | None, flags: tuple[bool, bool, bool]
) -> None:
    state = live([user("temp@acme.co", 1, expires=day(before) if before is not None else None)])
    wanted = desired_from(state)
    wanted = replace(
        wanted,
        users={
            **wanted.users,
            "temp@acme.co": replace(
                wanted.users["temp@acme.co"], expires=day(after) if after is not None else None
            ),
        },
    )
    plan = diff(wanted, state, PlanOptions(), TODAY)
    change = next(c for c in plan.changes if c.action == "set_expiry")
    assert _flags(change) == flags
    assert plan.requires_2fa
    check_rederived(plan, state, TODAY)  # apply re-derives the same flags

    # A saved plan that calls the scheduling a plain change is refused as forged.
    plain = replace(change, destructive=False, grants_privilege=False, requires_2fa=False)
    forged = replace(plan, changes=tuple(plain if c is change else c for c in plan.changes))
    with pytest.raises(ForgedPlan, match="set_expiry is marked without risk"):
        check_rederived(forged, state, TODAY)


def test_the_two_steps_need_one_proof_the_scheduling() -> None:
    """An admin's expiry set to tomorrow needs a code; after that day the plan deactivates them
    with none, because the scheduling was confirmed."""
    boss = user("boss@acme.co", 1, role="Admin", totp_enrolled=True)
    state = live([boss])
    wanted = desired_from(state)
    scheduled = replace(
        wanted,
        users={
            **wanted.users,
            "boss@acme.co": replace(wanted.users["boss@acme.co"], expires=day(1)),
        },
    )
    first = diff(scheduled, state, PlanOptions(), TODAY)
    assert _only(first).action == "set_expiry" and first.requires_2fa

    later = TODAY + dt.timedelta(days=2)
    after = apply_changes(state, first.changes)
    second = diff(scheduled, after, PlanOptions(), later)
    change = _only(second)
    assert (change.action, change.destructive, change.requires_2fa) == ("expire", True, False)


def test_the_self_guard_refuses_scheduling_ones_own_expiry_but_not_extending_it() -> None:
    state = live([user("temp@acme.co", 1)])
    state = replace(
        state,
        users={
            **state.users,
            "root@acme.co": replace(state.users["root@acme.co"], expires=day(20)),
        },
    )
    base = desired_from(state)

    def planned(expires: str | None) -> Plan:
        root = replace(base.users["root@acme.co"], expires=expires)
        return diff(
            replace(base, users={**base.users, "root@acme.co": root}),
            state,
            PlanOptions(operator="root@acme.co"),
            TODAY,
        )

    for sooner in (day(19), day(-1)):
        blocked = {f.message for f in planned(sooner).findings if f.code == "self_guard"}
        # (back-dated, the same plan would also deactivate them: refused twice over)
        assert "operator root@acme.co cannot set or bring forward their own expiry" in blocked
    for later in (day(40), None):
        assert not [f for f in planned(later).findings if f.code == "self_guard"], later
    # Apply runs the same guard on the live state.
    sooner_plan = planned(day(19))
    found = guards.check(state, sooner_plan.active_changes, PlanOptions(operator="root@acme.co"))
    assert any(f.code == "self_guard" and f.blocking for f in found)


def test_no_prune_still_deactivates_an_expired_user_the_file_does_not_name() -> None:
    state = live(
        [
            user("gone@acme.co", 1, expires=day(-1)),
            user("pending@acme.co", 2, expires=day(-5), status="invited"),
            user("later@acme.co", 3, expires=day(5)),
            user("old@acme.co", 4, expires=day(-9), status="inactive"),
        ]
    )
    wanted = desired_from(state)
    named = replace(
        wanted,
        users={e: u for e, u in wanted.users.items() if e == "root@acme.co"},
    )
    plan = diff(named, state, PlanOptions(prune=False), TODAY)
    assert [(c.key[0], c.action, c.requires_2fa) for c in plan.changes] == [
        ("gone@acme.co", "expire", False),
        ("pending@acme.co", "expire", False),
    ]
    assert all((c.after or {})["status"] == "inactive" for c in plan.changes)
    check_rederived(plan, state, TODAY)
    # Without a date nothing is judged expired (the pure planner is given the clock).
    assert diff(named, state, PlanOptions(prune=False)).changes == ()


def test_reports_name_who_expires_within_30_days_and_who_is_past_it_still_active() -> None:
    state = live(
        [
            user("past@acme.co", 1, expires=day(-2)),
            user("soon@acme.co", 2, expires=day(3)),
            user("edge@acme.co", 3, expires=day(30)),
            user("far@acme.co", 4, expires=day(31)),
            user("today@acme.co", 5, expires=day(0)),
            user("done@acme.co", 6, expires=day(-40), status="inactive"),
        ]
    )
    found = hygiene.expiry_findings(state.users, TODAY)
    assert [(f.code, f.blocking, f.message.split(" ")[0]) for f in found] == [
        ("expired_user", True, "past@acme.co"),
        ("expiring_user", False, "today@acme.co"),
        ("expiring_user", False, "soon@acme.co"),
        ("expiring_user", False, "edge@acme.co"),
    ]
    assert f"expired on {day(-2)} and is still active" in found[0].message
    assert f"expires in 3 days ({day(3)})" in found[2].message


# --- invariant 4: a default is a value --------------------------------------------------------


def _policies(
    state: LiveState, stored: dict[PolicyKey, PolicyValue], declared: dict[PolicyKey, PolicyValue]
) -> tuple[LiveState, DesiredState]:
    state = replace(state, policies=stored)
    return state, desired_from(state, policies=declared)


@pytest.mark.parametrize(
    "rule, stored, declared, destructive",
    [
        # Declaring a looser value than the default in force.
        ("review_every_days", None, 3650, True),
        ("max_inactive_days", None, 3650, True),
        ("review_every_days", None, 183, True),
        # Tighter than the default, or the default itself: plain.
        ("review_every_days", None, 30, False),
        ("review_every_days", None, 182, False),
        ("max_inactive_days", None, 30, False),
        # Removing a declared value stricter than the default: loosening.
        ("review_every_days", 30, None, True),
        ("max_inactive_days", 30, None, True),
        # Removing one looser than the default tightens the interval...
        ("review_every_days", 365, None, False),
        # ...but a declared dormancy limit is what makes a dormant user block a plan: removing it
        # stops enforcing the limit, whatever its number.
        ("max_inactive_days", 120, None, True),
        ("max_inactive_days", 90, None, True),
        # Between declared values, as before.
        ("review_every_days", 30, 60, True),
        ("review_every_days", 60, 30, False),
    ],
)
def test_loosening_is_judged_from_the_value_in_force(
    rule: str, stored: int | None, declared: int | None, destructive: bool
) -> None:
    key = (rule, "")
    state, wanted = _policies(
        live(),
        {key: stored} if stored is not None else {},
        {key: declared} if declared is not None else {},
    )
    change = _only(diff(wanted, state, PlanOptions(), TODAY))
    assert (change.destructive, change.requires_2fa) == (destructive, destructive)
    assert (
        change.diff["value"]["default"] == {"max_inactive_days": 90, "review_every_days": 182}[rule]
    )
    check_rederived(diff(wanted, state, PlanOptions(), TODAY), state, TODAY)


def test_the_plan_shows_the_value_in_force_on_each_side() -> None:
    state, wanted = _policies(live(), {}, {("review_every_days", ""): 3650})
    data = _only(diff(wanted, state, PlanOptions(), TODAY)).to_data()
    assert field_lines(data) == ["value: 182 (default) -> 3650"]
    state, wanted = _policies(live(), {("max_inactive_days", ""): 30}, {})
    data = _only(diff(wanted, state, PlanOptions(), TODAY)).to_data()
    assert field_lines(data) == ["value: 30 -> 90 (default)"]


def test_a_saved_plan_that_calls_a_loosening_declaration_plain_is_refused() -> None:
    state, wanted = _policies(live(), {}, {("review_every_days", ""): 3650})
    plan = diff(wanted, state, PlanOptions(), TODAY)
    change = _only(plan)
    assert change.destructive
    plain = replace(change, destructive=False, requires_2fa=False)
    with pytest.raises(ForgedPlan, match="is marked without risk"):
        check_rederived(replace(plan, changes=(plain,)), state, TODAY)
    # Nor can the diff hide the default: the planner writes it, so a plan without it is forged.
    hidden = replace(
        plain, diff={"value": {k: v for k, v in change.diff["value"].items() if k != "default"}}
    )
    with pytest.raises(ForgedPlan):
        check_rederived(replace(plan, changes=(hidden,)), state, TODAY)


# --- invariant 7: the gate's own settings are policies ----------------------------------------

GATE_CASES: list[tuple[str, Any, Any, bool]] = [
    ("four_eyes", False, True, False),  # tightening: plain
    ("four_eyes", True, False, True),  # loosening: destructive, 2FA
    ("two_factor_policy", "destructive", "all", False),
    ("two_factor_policy", "all", "destructive", True),
    ("min_admins", 1, 2, False),
    ("min_admins", 2, 1, True),
]


@pytest.mark.parametrize("rule, before, after, destructive", GATE_CASES)
def test_tightening_a_gate_setting_is_plain_and_loosening_it_is_destructive(
    rule: str, before: Any, after: Any, destructive: bool
) -> None:
    assert policy_loosens(rule, before, after) is destructive
    boss = user("boss@acme.co", 1, role="Admin", totp_enrolled=True)
    state = live([boss], **{rule: before})
    wanted = desired_from(state, policies={(rule, ""): after})
    plan = diff(wanted, state, PlanOptions(), TODAY)
    change = _only(plan)
    assert (change.kind, change.action, change.address) == ("policy", "update", f'policy["{rule}"]')
    assert change.destructive is destructive
    # Under the policy `all` in force, every change to an existing row needs 2FA, this one too.
    assert change.requires_2fa is (destructive or state.organization.two_factor_policy == "all")
    assert plan.gate == {
        "two_factor_policy": state.organization.two_factor_policy,
        "four_eyes": state.organization.four_eyes,
        "min_admins": state.organization.min_admins,
    }
    # The state the plan leads to carries the new setting; re-derivation accepts the plan.
    assert getattr(apply_changes(state, plan.changes).organization, rule) == after
    check_rederived(plan, state, TODAY)


def test_a_file_that_omits_a_gate_setting_keeps_the_value_in_force() -> None:
    state = live(four_eyes=True, two_factor_policy="all", min_admins=1)
    assert diff(desired_from(state), state, PlanOptions(), TODAY).changes == ()
    assert diff(desired_from(state), state, PlanOptions(prune=False), TODAY).changes == ()


def test_a_plan_is_judged_by_the_gate_in_force_and_carries_it() -> None:
    """A plan that lowers the 2FA policy from `all` is judged under `all`: its other changes
    need 2FA too. A saved plan stating another gate than the organization's is forged."""
    state = live([user("ops@acme.co", 1)], two_factor_policy="all", four_eyes=True)
    wanted = desired_from(state, policies={("two_factor_policy", ""): "destructive"})
    renamed = replace(wanted.users["ops@acme.co"], first_name="Renamed")
    wanted = replace(wanted, users={**wanted.users, "ops@acme.co": renamed})
    plan = diff(wanted, state, PlanOptions(), TODAY)
    assert {(c.kind, c.action): c.requires_2fa for c in plan.changes} == {
        ("user", "update"): True,
        ("policy", "update"): True,
    }
    assert plan.to_data()["gate"] == {
        "two_factor_policy": "all",
        "four_eyes": True,
        "min_admins": 1,
    }
    assert gate_line(plan.to_data()) == "Gate: 2FA for every change · four eyes on · min_admins 1"
    lied = replace(plan, gate={**plan.gate, "four_eyes": False})
    with pytest.raises(ForgedPlan, match="states the gate"):
        check_rederived(lied, state, TODAY)


def test_a_saved_plan_cannot_turn_a_gate_loosening_into_a_plain_change() -> None:
    state = live(four_eyes=True)
    plan = diff(
        desired_from(state, policies={("four_eyes", ""): False}), state, PlanOptions(), TODAY
    )
    change = _only(plan)
    assert change.destructive and change.requires_2fa
    plain = replace(change, destructive=False, requires_2fa=False)
    with pytest.raises(ForgedPlan, match="is marked without risk"):
        check_rederived(replace(plan, changes=(plain,)), state, TODAY)
    # Nor write a value the setting cannot hold.
    odd = replace(change, after={**(change.after or {}), "value": "sometimes"})
    with pytest.raises(ForgedPlan):
        check_rederived(replace(plan, changes=(odd,)), state, TODAY)


def test_lowering_min_admins_does_not_let_the_same_plan_remove_the_admin_it_required() -> None:
    boss = user("boss@acme.co", 1, role="Admin", totp_enrolled=True)
    state = live([boss], min_admins=2)
    wanted = desired_from(state, policies={("min_admins", ""): 1})
    wanted = replace(wanted, users={e: u for e, u in wanted.users.items() if e != "boss@acme.co"})
    plan = diff(wanted, state, PlanOptions(), TODAY)
    assert [f.code for f in plan.findings if f.blocking] == ["admin_guard"]
    # Raising it is judged on the new value too: a plan cannot raise it and remove an admin
    # below it at once.
    state = live([boss, user("third@acme.co", 2, role="Admin", totp_enrolled=True)])
    wanted = desired_from(state, policies={("min_admins", ""): 3})
    wanted = replace(wanted, users={e: u for e, u in wanted.users.items() if e != "boss@acme.co"})
    assert [f.code for f in diff(wanted, state, PlanOptions(), TODAY).findings if f.blocking] == [
        "admin_guard"
    ]


def test_a_policies_row_naming_a_gate_setting_is_not_the_gate() -> None:
    """The organization's columns are the gate; a row someone wrote into the policies table under
    a gate setting's name neither overrides it nor makes the planner remove the setting."""
    state = replace(live(four_eyes=True), policies={("four_eyes", ""): False})
    assert diff(desired_from(state), state, PlanOptions(), TODAY).changes == ()
