"""Privilege grants need 2FA (DESIGN §3): risk.assess judges each change on the live state and the
state the plan leads to, for the planner and again for apply."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.core.planner_states import ADMIN, OPS, desired, live, user
from userctl.plan import Change, Plan
from userctl.planner import diff
from userctl.risk import assess
from userctl.state import PRIVILEGED_PERMISSIONS, Role

VIEWER = Role("Viewer", "Read only", frozenset({"users.view", "payouts.view", "audit.view"}))
ROLES = [ADMIN, OPS, VIEWER]
BOB = user("bob@acme.co", 1, role="Viewer")


def only(p: Plan, address: str, action: str) -> Change:
    [found] = [c for c in p.changes if c.address == address and c.action == action]
    return found


def test_the_privileged_permissions_are_the_designs() -> None:
    assert PRIVILEGED_PERMISSIONS == {
        "users.add",
        "users.manage",
        "roles.manage",
        "payouts.create",
        "payouts.approve",
        "bank_accounts.manage",
        "company_settings.manage",
    }


def test_a_plan_of_plain_creates_of_unprivileged_users_needs_no_code() -> None:
    p = diff(desired([BOB, user("ann@acme.co", 2, role="Viewer")], roles=ROLES), live(roles=ROLES))
    assert {c.action for c in p.changes} == {"create"}
    assert not p.requires_2fa
    assert p.summary()["grants_privilege"] == 0


@pytest.mark.parametrize("role", ["Admin", "Ops"])
def test_creating_a_user_whose_role_holds_a_privileged_permission_needs_2fa(role: str) -> None:
    p = diff(desired([replace(BOB, role=role)], roles=ROLES), live(roles=ROLES))
    create = only(p, 'user["bob@acme.co"]', "create")
    assert create.grants_privilege and create.requires_2fa and not create.destructive
    assert p.summary()["grants_privilege"] == 1


def test_creating_a_user_with_a_role_that_gains_privilege_in_the_same_plan_needs_2fa() -> None:
    grown = replace(VIEWER, permissions=VIEWER.permissions | {"payouts.approve"})
    p = diff(desired([BOB], roles=[ADMIN, OPS, grown]), live(roles=ROLES))
    assert only(p, 'user["bob@acme.co"]', "create").grants_privilege
    assert only(p, 'role["Viewer"]', "update").grants_privilege


def test_re_creating_a_privileged_user_needs_2fa() -> None:
    from userctl.planner import PlanOptions

    admin = user("boss@acme.co", 7, role="Admin")
    p = diff(
        desired([replace(admin, phone="+573009999999")], roles=ROLES),
        live([admin], roles=ROLES),
        PlanOptions(replace=frozenset({"boss@acme.co"})),
    )
    assert only(p, 'user["boss@acme.co"]', "replace").grants_privilege


def test_a_role_change_that_adds_a_privileged_permission_grants_privilege() -> None:
    p = diff(desired([replace(BOB, role="Ops")], roles=ROLES), live([BOB], roles=ROLES))
    assert only(p, 'user["bob@acme.co"]', "change_role").grants_privilege
    # Admin holds no payouts.create, so a move from Admin to Ops gains it.
    admin = user("boss@acme.co", 7, role="Admin")
    p = diff(desired([replace(admin, role="Ops")], roles=ROLES), live([admin], roles=ROLES))
    assert only(p, 'user["boss@acme.co"]', "change_role").grants_privilege


def test_a_role_change_to_a_role_with_fewer_privileges_grants_none() -> None:
    admin = user("boss@acme.co", 7, role="Admin")
    p = diff(desired([replace(admin, role="Viewer")], roles=ROLES), live([admin], roles=ROLES))
    change = only(p, 'user["boss@acme.co"]', "change_role")
    assert not change.grants_privilege and change.destructive and change.requires_2fa


@pytest.mark.parametrize(
    "permission, grants",
    [("users.manage", True), ("roles.manage", True), ("customers.view", False)],
)
def test_adding_a_permission_to_a_role_grants_privilege_when_it_is_privileged(
    permission: str, grants: bool
) -> None:
    holders = [user(f"u{i}@acme.co", 10 + i, role="Viewer") for i in range(50)]
    grown = replace(VIEWER, permissions=VIEWER.permissions | {permission})
    p = diff(desired(holders, roles=[ADMIN, OPS, grown]), live(holders, roles=ROLES))
    update = only(p, 'role["Viewer"]', "update")
    assert (
        update.grants_privilege is grants
        and update.requires_2fa is grants
        and not update.destructive
    )


def test_assigning_a_payout_bank_account_needs_2fa() -> None:
    p = diff(
        desired([replace(BOB, bank_accounts=frozenset({"payroll"}))], roles=ROLES),
        live([BOB], roles=ROLES),
    )
    assign = only(p, 'assignment["bob@acme.co" -> "payroll"]', "assign")
    assert assign.grants_privilege and assign.requires_2fa


@pytest.mark.parametrize("role, grants", [("Admin", True), ("Viewer", False)])
def test_reactivating_a_user_gives_back_what_their_role_holds(role: str, grants: bool) -> None:
    gone = user("eve@acme.co", 4, role=role, status="inactive")
    p = diff(desired([replace(gone, status="active")], roles=ROLES), live([gone], roles=ROLES))
    assert only(p, 'user["eve@acme.co"]', "activate").grants_privilege is grants


def test_deferred_changes_carry_no_risk() -> None:
    pending = user("ivy@acme.co", 3, role="Admin", status="invited")
    p = diff(
        desired(
            [replace(pending, status="active", bank_accounts=frozenset({"payroll"}))], roles=ROLES
        ),
        live([pending], roles=ROLES),
    )
    assert p.changes and all(c.deferred for c in p.changes)
    assert not any(c.grants_privilege or c.requires_2fa for c in p.changes)


def test_assess_restores_flags_a_saved_plan_lies_about() -> None:
    state = live([BOB], roles=ROLES)
    p = diff(
        desired([replace(BOB, role="Admin", bank_accounts=frozenset({"payroll"}))], roles=ROLES),
        state,
    )
    lying = tuple(
        replace(c, destructive=False, grants_privilege=False, requires_2fa=False) for c in p.changes
    )
    assert assess(state, lying) == p.changes
