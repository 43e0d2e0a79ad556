"""The pure side of issue 12: what loosens a policy, what an expiry grants, the rules judged on a
state, and the planner's expiry and policy changes, re-derived by apply's replan (no database)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from tests.core.planner_states import ADMIN, OPS, desired_from, live, user
from userctl import policies
from userctl.errors import ForgedPlan
from userctl.plan import Plan, weakens
from userctl.planner import PlanOptions, diff
from userctl.replan import check_rederived
from userctl.risk import expiry_grants
from userctl.state import Role

TODAY = dt.date(2026, 12, 2)
APPROVER = Role("Approver", "", frozenset({"payouts.approve"}))
SOD = {("separation_of_duties", "maker_checker"): ["payouts.approve", "payouts.create"]}


@pytest.mark.parametrize(
    "before, after, loosens",
    [
        (None, ["a"], False),
        (["a"], ["a", "b"], False),
        (["a", "b"], ["a"], True),
        (["a"], None, True),
        (3, 2, False),
        (3, 4, True),
        (3, None, True),
        (False, True, False),
        (True, False, True),
        (False, None, False),
        ([], None, False),
    ],
)
def test_what_loosens_a_policy(before: object, after: object, loosens: bool) -> None:
    assert weakens(before, after) is loosens


@pytest.mark.parametrize(
    "before, after, grants",
    [
        (None, "2026-12-20", False),  # a first expiry, in the future: restricts
        (None, "2026-12-01", True),  # set in the past
        ("2026-12-20", "2026-12-10", False),  # brought forward
        ("2026-12-20", "2027-01-10", True),  # extended
        ("2026-12-20", None, True),  # removed
        ("2026-12-20", "2026-11-30", True),  # brought into the past
    ],
)
def test_what_an_expiry_change_grants(before: str | None, after: str | None, grants: bool) -> None:
    assert expiry_grants(before, after, TODAY) is grants


@pytest.mark.parametrize(
    "email, box",
    [
        ("ops@acme.co", "ops"),
        ("No-Reply@acme.co", "no-reply"),
        ("finance+eu@acme.co", "finance"),
        ("ana.ops@acme.co", None),
    ],
)
def test_role_mailboxes_are_one_list(email: str, box: str | None) -> None:
    assert policies.mailbox(email) == box


def test_each_rule_names_what_is_at_fault_and_where() -> None:
    merged = Role("Ops", "", OPS.permissions | {"payouts.approve"})
    state = replace(
        live(
            [
                user("ops1@acme.co", 1),
                user("info@acme.co", 2, role="Admin"),
                user("gone@acme.co", 3, role="Admin", status="inactive"),
            ],
            roles=[ADMIN, merged],
        ),
        policies={
            **SOD,
            ("require_two_factor", ""): ["payouts.create"],
            ("max_holders", "users.manage"): 1,
            ("forbid_shared_mailboxes", ""): True,
        },
    )
    found = {(v.rule, v.path) for v in policies.check(state)}
    assert found == {
        ("separation_of_duties", ("roles", "Ops", "permissions")),
        ("require_two_factor", ("users", "ops1@acme.co", "two_factor")),
        (
            "max_holders",
            ("policies", "max_holders", "users.manage"),
        ),  # root and info; the inactive one holds nothing
        ("forbid_shared_mailboxes", ("users", "info@acme.co")),
    }


def test_an_expired_user_is_planned_deactivated_and_replan_accepts_it_but_not_a_forged_one() -> (
    None
):
    state = live([user("temp@acme.co", 1, expires="2026-12-01")])
    wanted = desired_from(state)
    plan = diff(wanted, state, PlanOptions(), TODAY)
    (change,) = plan.changes
    assert (change.action, change.destructive, change.requires_2fa) == ("expire", True, False)
    check_rederived(plan, state, TODAY)
    # The day before, the same plan is a forgery: nothing has expired yet.
    with pytest.raises(ForgedPlan):
        check_rederived(plan, state, TODAY - dt.timedelta(days=1))
    # And a plain deactivation passed off as an expiry is refused.
    fresh = live([user("temp@acme.co", 1)])
    plain = replace(
        change,
        before={**(change.before or {}), "expires": None},
        after={**(change.after or {}), "expires": None},
    )
    forged = Plan(
        plan.organization,
        plan.two_factor_policy,
        (plain,),
        plan.preconditions,
        options=plan.options,
    )
    with pytest.raises(ForgedPlan):
        check_rederived(forged, fresh, TODAY)


def test_a_policy_the_file_drops_is_removed_and_that_loosens_it() -> None:
    state = replace(live([]), policies=SOD)
    plan = diff(desired_from(state), state, PlanOptions(), TODAY)  # the file declares none
    (change,) = plan.changes
    assert (change.kind, change.action, change.address) == (
        "policy",
        "delete",
        'policy["separation_of_duties.maker_checker"]',
    )
    assert change.destructive and change.requires_2fa
    kept = diff(desired_from(state), state, PlanOptions(prune=False), TODAY)
    assert kept.changes == ()


def test_a_plan_that_leaves_a_violation_is_blocked_and_a_reason_can_be_required() -> None:
    state = replace(
        live([], roles=[ADMIN, OPS, APPROVER]), policies={**SOD, ("require_reason", ""): True}
    )
    wanted = desired_from(state, policies=state.policies)
    merged = replace(
        wanted,
        roles={
            **wanted.roles,
            "Ops": Role("Ops", "Payouts", OPS.permissions | {"payouts.approve"}),
        },
    )
    plan = diff(merged, state, PlanOptions(reason="SEC-1"), TODAY)
    assert plan.blocked and [f.code for f in plan.findings if f.blocking] == [
        "policy.separation_of_duties"
    ]
    renamed = replace(
        wanted,
        users={
            **wanted.users,
            "root@acme.co": replace(wanted.users["root@acme.co"], first_name="R"),
        },
    )
    unreasoned = diff(renamed, state, PlanOptions(), TODAY)
    assert [f.code for f in unreasoned.findings] == ["policy.require_reason"]
    assert (
        diff(wanted, state, PlanOptions(), TODAY).findings == ()
    )  # a plan that writes nothing needs no reason
