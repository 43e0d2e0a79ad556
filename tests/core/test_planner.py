"""The pure planner, without any database: every action, every domain rule, ordering, risk,
guards, preconditions, determinism and the digest."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

import pytest

from tests.core.planner_states import ADMIN, OPS, ROOT, desired, desired_from, live, user
from userctl import plan as planmod
from userctl.errors import InputError, Refused
from userctl.plan import PHASES, Change, Plan
from userctl.planner import PlanOptions, diff
from userctl.state import DesiredState, Role, record_hash, role_record, user_record


def actions(p: Plan) -> list[tuple[str, str]]:
    return [(c.address, c.action) for c in p.changes]


def only(p: Plan, address: str, action: str) -> Change:
    found = [c for c in p.changes if c.address == address and c.action == action]
    assert len(found) == 1, actions(p)
    return found[0]


def problems(exc: pytest.ExceptionInfo[InputError]) -> list[tuple[tuple[str | int, ...], str]]:
    return [(p.path, p.message) for p in exc.value.problems]


BOB = user("bob@acme.co", 1, bank_accounts=frozenset({"ops-main"}))
CAROL = user("carol@acme.co", 2)


def test_identical_states_plan_nothing() -> None:
    state = live([BOB, CAROL])
    p = diff(desired_from(state), state)
    assert p.changes == ()
    assert p.summary()["total"] == 0
    assert p.preconditions == {}
    assert p.findings == ()


def test_role_create_update_and_delete() -> None:
    auditor = Role("Auditor", "Read only", frozenset({"audit.view"}))
    ops_more = Role("Ops", "Payouts team", OPS.permissions | {"bank_accounts.view"})
    state = live([BOB], roles=[ADMIN, OPS, Role("Legacy")])
    p = diff(desired([BOB], roles=[ADMIN, ops_more, auditor]), state)
    create = only(p, 'role["Auditor"]', "create")
    assert create.after == {
        "name": "Auditor",
        "description": "Read only",
        "permissions": ["audit.view"],
    }
    assert not create.destructive and not create.requires_2fa
    update = only(p, 'role["Ops"]', "update")
    assert update.diff["permissions"]["added"] == ["bank_accounts.view"]
    assert update.diff["description"] == {"before": "Payouts", "after": "Payouts team"}
    assert not update.destructive
    delete = only(p, 'role["Legacy"]', "delete")
    assert delete.destructive and delete.requires_2fa and delete.after is None


def test_removing_permissions_is_destructive_and_runs_last() -> None:
    fewer = Role("Ops", "Payouts", frozenset({"payouts.view", "audit.view"}))
    p = diff(desired([BOB], roles=[ADMIN, fewer]), live([BOB]))
    add, remove = [c for c in p.changes if c.address == 'role["Ops"]']
    assert add.diff["permissions"]["added"] == ["audit.view"] and not add.destructive
    assert (
        remove.diff["permissions"]["removed"] == ["payouts.create"]
        and remove.destructive
        and remove.requires_2fa
    )
    assert PHASES[add.phase] == "role.create" and PHASES[remove.phase] == "role.delete"
    assert remove.before == add.after  # the second step starts where the first ended


def test_user_create_starts_invited_and_defers_bank_accounts() -> None:
    new = user("new@acme.co", 5, bank_accounts=frozenset({"payroll"}))
    p = diff(desired([new]), live())
    create = only(p, 'user["new@acme.co"]', "create")
    assert create.after is not None and create.after["status"] == "invited"
    # Ops holds payouts.create: creating one of its users grants privilege (tests/core/test_risk.py)
    assert not create.destructive and create.grants_privilege and create.requires_2fa
    assign = only(p, 'assignment["new@acme.co" -> "payroll"]', "assign")
    assert assign.deferred and not assign.requires_2fa
    assert p.summary()["create"] == 1 and p.summary()["deferred"] == 1 and p.summary()["total"] == 1
    assert p.preconditions['user["new@acme.co"]'] == "absent"
    assert p.preconditions['role["Ops"]'] == record_hash(role_record(OPS))  # a role it relies on


def test_new_user_declared_inactive_is_an_error() -> None:
    with pytest.raises(InputError) as exc:
        diff(desired([user("new@acme.co", 5, status="inactive")]), live())
    assert problems(exc)[0][0] == ("users", "new@acme.co", "status")


def test_profile_update_role_change_and_two_factor() -> None:
    state = live([BOB, CAROL])
    want = desired(
        [
            replace(
                BOB,
                first_name="Roberto",
                force_password_reset=True,
                role="Admin",
                two_factor="required",
            ),
            replace(CAROL, two_factor="disabled"),
        ]
    )
    p = diff(want, state)
    upd = only(p, 'user["bob@acme.co"]', "update")
    assert set(upd.diff) == {"first_name", "force_password_reset"} and not upd.destructive
    role = only(p, 'user["bob@acme.co"]', "change_role")
    assert (
        role.diff == {"role": {"before": "Ops", "after": "Admin"}}
        and role.destructive
        and role.requires_2fa
    )
    assert role.before == upd.after  # one user's steps chain
    tf = only(p, 'user["bob@acme.co"]', "set_two_factor")
    assert (
        tf.diff == {"two_factor": {"before": "optional", "after": "required"}}
        and not tf.destructive
    )
    dis = only(p, 'user["carol@acme.co"]', "disable_two_factor")
    assert dis.destructive and dis.requires_2fa
    assert [c.action for c in p.changes if c.key == ("bob@acme.co",)] == [
        "update",
        "change_role",
        "set_two_factor",
    ]


def test_disabling_two_factor_removes_the_enrolled_authenticator() -> None:
    enrolled = user("dan@acme.co", 3, totp_enrolled=True, two_factor="required")
    p = diff(
        desired([replace(enrolled, two_factor="disabled", totp_enrolled=False)]), live([enrolled])
    )
    assert only(p, 'user["dan@acme.co"]', "disable_two_factor").diff["totp_enrolled"] == {
        "before": True,
        "after": False,
    }


def test_deactivation_unassigns_first_and_is_destructive() -> None:
    p = diff(desired([replace(BOB, status="inactive", bank_accounts=frozenset())]), live([BOB]))
    assert actions(p) == [
        ('assignment["bob@acme.co" -> "ops-main"]', "unassign"),
        ('user["bob@acme.co"]', "deactivate"),
    ]
    assert all(c.destructive and c.requires_2fa for c in p.changes)


def test_reactivating_and_changing_in_one_plan_orders_activate_first() -> None:
    gone = user("eve@acme.co", 4, status="inactive")
    p = diff(
        desired(
            [replace(gone, status="active", last_name="New", bank_accounts=frozenset({"payroll"}))]
        ),
        live([gone]),
    )
    assert actions(p) == [
        ('user["eve@acme.co"]', "activate"),
        ('user["eve@acme.co"]', "update"),
        ('assignment["eve@acme.co" -> "payroll"]', "assign"),
    ]
    assert not any(c.deferred for c in p.changes)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"first_name": "X"}, "first_name"),
        ({"role": "Admin"}, "role"),
        ({"two_factor": "required"}, "two_factor"),
        ({"bank_accounts": frozenset({"payroll"})}, "bank_accounts"),
    ],
)
def test_changing_an_inactive_user_who_stays_inactive_is_an_error(
    change: dict[str, object], field: str
) -> None:
    gone = user("eve@acme.co", 4, status="inactive")
    with pytest.raises(InputError) as exc:
        diff(desired([replace(gone, **change)]), live([gone]))  # type: ignore[arg-type]
    [(path, message)] = problems(exc)
    assert path == ("users", "eve@acme.co", field)
    assert "inactive" in message and "only deleted or reactivated" in message


def test_invited_user_declared_active_is_pending_and_assignments_deferred() -> None:
    invited = user("ivy@acme.co", 6, status="invited")
    p = diff(
        desired([replace(invited, status="active", bank_accounts=frozenset({"ops-main"}))]),
        live([invited]),
    )
    assert [(c.action, c.deferred) for c in p.changes] == [("activate", True), ("assign", True)]
    assert "pending registration" in (p.changes[0].note or "")
    assert p.summary()["total"] == 0 and p.summary()["deferred"] == 2
    assert p.preconditions == {}


def test_invited_user_can_still_be_renamed() -> None:
    invited = user("ivy@acme.co", 6, status="invited")
    p = diff(desired([replace(invited, status="active", first_name="Ivonne")]), live([invited]))
    assert [(c.action, c.deferred) for c in p.changes] == [("activate", True), ("update", False)]


def test_bank_account_for_a_user_ending_inactive_is_an_error() -> None:
    bad = replace(BOB, status="inactive", bank_accounts=frozenset({"ops-main", "payroll"}))
    with pytest.raises(InputError) as exc:
        diff(desired([bad]), live([BOB]))
    assert problems(exc) == [
        (
            ("users", "bob@acme.co", "bank_accounts"),
            "bank account 'payroll': bank accounts can only be assigned to active users",
        )
    ]


def test_unknown_bank_account_and_unknown_role_are_errors() -> None:
    with pytest.raises(InputError) as exc:
        diff(
            desired(
                [replace(BOB, bank_accounts=frozenset({"nope"})), replace(CAROL, role="Ghost")]
            ),
            live([BOB, CAROL]),
        )
    found = dict(problems(exc))
    assert "unknown bank account 'nope'" in found[("users", "bob@acme.co", "bank_accounts")]
    assert "unknown role 'Ghost'" in found[("users", "carol@acme.co", "role")]


@pytest.mark.parametrize(
    "field, value", [("id_type", "PP"), ("id_number", "99999"), ("phone", "+5731199999")]
)
def test_immutable_field_change_is_an_error_naming_field_and_user(field: str, value: str) -> None:
    with pytest.raises(InputError) as exc:
        diff(desired([replace(BOB, **{field: value})]), live([BOB]))
    [(path, message)] = problems(exc)
    assert path == ("users", "bob@acme.co", field)
    assert field in message and "bob@acme.co" in message and "--replace bob@acme.co" in message


def test_replace_deletes_and_recreates() -> None:
    p = diff(
        desired([replace(BOB, id_number="99999")]),
        live([BOB]),
        PlanOptions(replace=frozenset({"bob@acme.co"})),
    )
    rep = only(p, 'user["bob@acme.co"]', "replace")
    assert rep.destructive and rep.requires_2fa
    assert (
        rep.after is not None
        and rep.after["status"] == "invited"
        and rep.after["id_number"] == "99999"
    )
    assert "ops-main" in (rep.note or "")
    assert only(p, 'assignment["bob@acme.co" -> "ops-main"]', "assign").deferred
    assert p.summary()["replace"] == 1


def test_replace_of_unknown_user_is_an_error() -> None:
    with pytest.raises(InputError) as exc:
        diff(desired([BOB]), live([BOB]), PlanOptions(replace=frozenset({"nobody@acme.co"})))
    assert problems(exc)[0][0] == ("users", "nobody@acme.co")


def test_deleting_a_role_still_held_after_the_plan_is_an_error() -> None:
    legacy = Role("Legacy")
    holder = user("old@acme.co", 7, role="Legacy")
    want = DesiredState(
        "acme", {"Admin": ADMIN, "Ops": OPS}, {ROOT.email: ROOT, holder.email: holder}
    )
    with pytest.raises(InputError) as exc:
        diff(want, live([holder], roles=[ADMIN, OPS, legacy]), PlanOptions())
    # the user's unknown role and the role's deletion are both reported
    assert ("roles", "Legacy") in [p for p, _ in problems(exc)]
    assert any("still held by old@acme.co" in m for _, m in problems(exc))


def test_absent_users_and_roles_are_deleted_unless_no_prune() -> None:
    state = live([BOB, CAROL], roles=[ADMIN, OPS, Role("Legacy")])
    p = diff(desired([CAROL]), state)
    assert actions(p) == [
        ('assignment["bob@acme.co" -> "ops-main"]', "unassign"),
        ('user["bob@acme.co"]', "delete"),
        ('role["Legacy"]', "delete"),
    ]
    kept = diff(desired([CAROL]), state, PlanOptions(prune=False))
    assert kept.changes == ()


def test_apply_order_follows_design() -> None:
    gone = user("eve@acme.co", 4, status="inactive")
    leaving = user("lea@acme.co", 8)
    state = live(
        [BOB, CAROL, gone, leaving, user("del@acme.co", 9)], roles=[ADMIN, OPS, Role("Legacy")]
    )
    want = desired(
        [
            replace(BOB, first_name="B", bank_accounts=frozenset({"payroll"})),
            replace(CAROL, role="Auditor"),
            replace(gone, status="active"),
            replace(leaving, status="inactive"),
            user("new@acme.co", 10),
        ],
        roles=[
            ADMIN,
            Role("Ops", "Payouts", frozenset({"payouts.view"})),
            Role("Auditor", "", frozenset({"audit.view"})),
        ],
    )
    p = diff(want, state)
    phases = [PHASES[c.phase] for c in p.changes]
    assert phases == sorted(phases, key=PHASES.index)
    assert actions(p) == [
        ('role["Auditor"]', "create"),
        ('user["eve@acme.co"]', "activate"),
        ('user["new@acme.co"]', "create"),
        ('user["bob@acme.co"]', "update"),
        ('user["carol@acme.co"]', "change_role"),
        ('assignment["bob@acme.co" -> "ops-main"]', "unassign"),
        ('assignment["bob@acme.co" -> "payroll"]', "assign"),
        ('user["lea@acme.co"]', "deactivate"),
        ('user["del@acme.co"]', "delete"),
        ('role["Legacy"]', "delete"),
        ('role["Ops"]', "update"),
    ]


def test_policy_all_requires_2fa_for_every_change_to_existing_rows() -> None:
    state = live([BOB], two_factor_policy="all")
    p = diff(
        desired(
            [replace(BOB, first_name="B"), user("new@acme.co", 5, role="New")],
            roles=[ADMIN, OPS, Role("New")],
        ),
        state,
    )
    assert only(p, 'user["bob@acme.co"]', "update").requires_2fa
    assert not only(p, 'user["bob@acme.co"]', "update").destructive
    assert not only(p, 'user["new@acme.co"]', "create").requires_2fa
    assert not only(p, 'role["New"]', "create").requires_2fa
    default = diff(desired([replace(BOB, first_name="B")]), live([BOB]))
    assert not default.changes[0].requires_2fa


@pytest.mark.parametrize(
    "case", ["activate", "assign", "unassign", "role update", "role delete", "change_role"]
)
def test_policy_all_requires_2fa_for_every_kind_of_change_to_existing_rows(case: str) -> None:
    eve = user("eve@acme.co", 4, status="inactive")
    roles = [ADMIN, OPS, Role("Legacy")]
    base = [BOB, CAROL, eve]
    wanted = {
        "activate": (
            desired([BOB, CAROL, replace(eve, status="active")], roles=roles),
            'user["eve@acme.co"]',
            "activate",
        ),
        "assign": (
            desired(
                [replace(BOB, bank_accounts=frozenset({"ops-main", "payroll"})), CAROL, eve],
                roles=roles,
            ),
            'assignment["bob@acme.co" -> "payroll"]',
            "assign",
        ),
        "unassign": (
            desired([replace(BOB, bank_accounts=frozenset()), CAROL, eve], roles=roles),
            'assignment["bob@acme.co" -> "ops-main"]',
            "unassign",
        ),
        "role update": (
            desired(
                base,
                roles=[
                    ADMIN,
                    Role("Ops", "Payouts", OPS.permissions | {"audit.view"}),
                    Role("Legacy"),
                ],
            ),
            'role["Ops"]',
            "update",
        ),
        "role delete": (desired(base), 'role["Legacy"]', "delete"),
        "change_role": (
            desired([BOB, replace(CAROL, role="Legacy"), eve], roles=roles),
            'user["carol@acme.co"]',
            "change_role",
        ),
    }
    want, address, action = wanted[case]
    strict = only(diff(want, live(base, roles=roles, two_factor_policy="all")), address, action)
    default = only(diff(want, live(base, roles=roles)), address, action)
    assert strict.requires_2fa
    # the default policy asks only for destructive and privilege-granting steps
    assert default.requires_2fa == (default.destructive or default.grants_privilege)


def test_preconditions_record_before_states() -> None:
    state = live([BOB, CAROL])
    p = diff(
        desired([replace(BOB, bank_accounts=frozenset({"ops-main", "payroll"})), CAROL]), state
    )
    assert p.preconditions['user["bob@acme.co"]'] == record_hash(user_record(BOB))
    assert p.preconditions['bank_account["payroll"]'].startswith("sha256:")
    assert 'organization["acme"]' in p.preconditions
    assert 'user["carol@acme.co"]' not in p.preconditions  # untouched rows never make a plan stale


def test_a_role_change_depends_on_the_target_role() -> None:
    auditor = Role("Auditor", "", frozenset({"audit.view"}))
    state = live([BOB], roles=[ADMIN, OPS, auditor])
    p = diff(desired([replace(BOB, role="Auditor")], roles=[ADMIN, OPS, auditor]), state)
    only(p, 'user["bob@acme.co"]', "change_role")
    assert p.preconditions['role["Auditor"]'] == record_hash(role_record(auditor))
    assert 'role["Ops"]' not in p.preconditions  # the role left behind is not written


def test_a_pending_users_deferred_work_does_not_depend_on_their_row() -> None:
    # When the platform activates Ivy (she registers), a plan that only defers her assignment
    # must stay appliable: it writes nothing of hers.
    ivy = user("ivy@acme.co", 7, status="invited")
    state = live([BOB, ivy])
    p = diff(
        desired(
            [
                replace(BOB, first_name="B"),
                replace(ivy, status="active", bank_accounts=frozenset({"payroll"})),
            ]
        ),
        state,
    )
    assert only(p, 'assignment["ivy@acme.co" -> "payroll"]', "assign").deferred
    assert 'user["ivy@acme.co"]' not in p.preconditions and 'user["bob@acme.co"]' in p.preconditions
    assert 'bank_account["payroll"]' not in p.preconditions


# --- guards -----------------------------------------------------------------------------------


def many(n: int) -> list:  # type: ignore[type-arg]
    return [user(f"u{i:02d}@acme.co", 100 + i) for i in range(n)]


def test_removal_guard_blocks_more_than_a_quarter() -> None:
    users = many(11)  # 12 users with root
    state = live(users)
    p = diff(desired(users[4:]), state)  # removes 4 of 12 = 33%
    [f] = p.findings
    assert f.code == "removal_guard" and f.blocking and "4 of 12" in f.message
    assert p.blocked and len(p.changes) == 4  # the plan is still shown in full
    allowed = diff(desired(users[4:]), state, PlanOptions(allow_mass_removal=True))
    assert [(f.code, f.blocking) for f in allowed.findings] == [("removal_guard", False)]
    assert not diff(desired(users[3:]), state).findings  # 3 of 12 = 25%: not more than a quarter


def test_removal_guard_needs_ten_users() -> None:
    users = many(8)  # 9 users
    assert not diff(desired(users[:1]), live(users)).findings


def test_admin_guard_blocks_locking_everyone_out() -> None:
    state = live([BOB])
    for want in (
        desired(
            [BOB], roles=[Role("Admin", "", frozenset({"users.view"})), OPS]
        ),  # permission removed
        DesiredState("acme", {"Admin": ADMIN, "Ops": OPS}, {BOB.email: BOB}),  # file truncated
        desired([BOB]).__class__(
            "acme",
            {"Admin": ADMIN, "Ops": OPS},
            {ROOT.email: replace(ROOT, two_factor="disabled"), BOB.email: BOB},
        ),
    ):
        p = diff(want, state)
        assert [f.code for f in p.findings if f.blocking] == ["admin_guard"], p.findings


def test_admin_guard_honours_min_admins() -> None:
    second = user("second@acme.co", 11, role="Admin", totp_enrolled=True)
    state = live([BOB, second], min_admins=2)
    p = diff(
        desired([BOB, replace(second, totp_enrolled=False, role="Ops")]), state
    )  # 2 admins -> 1
    assert [(f.code, f.blocking) for f in p.findings] == [("admin_guard", True)]
    assert "at least 2" in p.findings[0].message


def test_admin_guard_does_not_block_a_plan_that_removes_no_admin() -> None:
    # Already one short of min_admins: a plan that removes nobody is shown with a warning, not
    # blocked (blocking it would also block the plan that enrols the missing admin).
    state = live([BOB], min_admins=2)
    p = diff(desired([replace(BOB, first_name="Bobby")]), state)
    assert [(f.code, f.blocking) for f in p.findings] == [("admin_guard", False)]
    assert not p.blocked and "removes none" in p.findings[0].message
    assert not diff(desired_from(state), state).blocked  # nothing to do is never blocked


def test_removal_guard_counts_deactivations() -> None:
    users = many(11)  # 12 users with root
    want = desired([replace(u, status="inactive") if i < 4 else u for i, u in enumerate(users)])
    p = diff(want, live(users))
    [f] = p.findings
    assert f.code == "removal_guard" and f.blocking and "4 of 12" in f.message
    assert [c.action for c in p.changes] == ["deactivate"] * 4


def test_removal_guard_starts_at_exactly_ten_users() -> None:
    users = many(9)  # 10 users with root
    p = diff(desired(users[3:]), live(users))  # 3 of 10 = 30%
    assert [(f.code, f.blocking) for f in p.findings] == [("removal_guard", True)]
    assert "3 of 10" in p.findings[0].message
    fewer = many(8)  # 9 users: the guard does not apply
    assert not diff(desired(fewer[3:]), live(fewer)).findings


def test_self_guard_names_an_operator_who_is_not_a_user() -> None:
    p = diff(
        desired([replace(BOB, first_name="B")]), live([BOB]), PlanOptions(operator="ghost@acme.co")
    )
    [f] = p.findings
    assert (f.code, f.blocking) == (
        "self_guard",
        True,
    ) and "ghost@acme.co is not a user of organization acme" in f.message


def test_self_guard() -> None:
    second = user("second@acme.co", 11, role="Admin", totp_enrolled=True)
    state = live([second])
    base = [replace(second, totp_enrolled=False)]
    me = PlanOptions(operator="Root@Acme.co")
    cases = {
        "delete": DesiredState("acme", {"Admin": ADMIN, "Ops": OPS}, {second.email: base[0]}),
        "deactivate": desired([]).__class__(
            "acme",
            {"Admin": ADMIN, "Ops": OPS},
            {ROOT.email: replace(ROOT, status="inactive"), second.email: base[0]},
        ),
        "disable": desired([]).__class__(
            "acme",
            {"Admin": ADMIN, "Ops": OPS},
            {ROOT.email: replace(ROOT, two_factor="disabled"), second.email: base[0]},
        ),
        "demote": desired([]).__class__(
            "acme",
            {"Admin": ADMIN, "Ops": OPS},
            {ROOT.email: replace(ROOT, role="Ops"), second.email: base[0]},
        ),
    }
    for name, want in cases.items():
        p = diff(want, state, me)
        assert [f.code for f in p.findings if f.blocking] == ["self_guard"], (name, p.findings)
        assert "root@acme.co" in p.findings[0].message
    assert not diff(cases["delete"], state).findings  # without --operator there is no self to guard


# --- determinism, digest, saved plans --------------------------------------------------------


def big_plan(**opts: object) -> Plan:
    state = live(
        [BOB, CAROL, user("eve@acme.co", 4, status="inactive")], roles=[ADMIN, OPS, Role("Legacy")]
    )
    want = desired(
        [replace(BOB, first_name="B"), user("new@acme.co", 5, bank_accounts=frozenset({"payroll"}))]
    )
    return diff(want, state, PlanOptions(**opts))  # type: ignore[arg-type]


def test_same_input_gives_byte_identical_json() -> None:
    assert planmod.dumps(big_plan()) == planmod.dumps(big_plan())


def _reversed(mapping: dict) -> dict:  # type: ignore[type-arg]
    return dict(reversed(list(mapping.items())))


def test_plan_does_not_depend_on_the_order_of_its_inputs() -> None:
    state = live(
        [BOB, CAROL, user("eve@acme.co", 4, status="inactive")], roles=[ADMIN, OPS, Role("Legacy")]
    )
    want = desired(
        [
            replace(BOB, first_name="B", bank_accounts=frozenset({"payroll", "ops-backup"})),
            user("new@acme.co", 5, bank_accounts=frozenset({"payroll", "ops-main"})),
        ]
    )
    flipped_state = replace(
        state,
        roles=_reversed(dict(state.roles)),
        users=_reversed(dict(state.users)),
        bank_accounts=_reversed(dict(state.bank_accounts)),
    )
    flipped_want = replace(
        want, roles=_reversed(dict(want.roles)), users=_reversed(dict(want.users))
    )
    assert planmod.dumps(diff(want, state)) == planmod.dumps(diff(flipped_want, flipped_state))


def test_plan_bytes_do_not_depend_on_hash_randomisation() -> None:
    # Sets of permissions and bank accounts iterate in a per-process order: the JSON must not.
    import subprocess
    import sys

    script = (
        "from tests.core.test_planner import big_plan; from userctl import plan; import sys; "
        "sys.stdout.write(plan.dumps(big_plan()))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1 and planmod.dumps(big_plan()) in outputs


def test_digest_changes_when_anything_in_the_plan_changes() -> None:
    p = big_plan()
    seen = {p.digest}
    first = p.changes[0]
    variants = [
        replace(p, organization="other"),
        replace(p, two_factor_policy="all"),
        replace(p, changes=p.changes[1:]),
        replace(
            p,
            changes=(replace(first, after={**(first.after or {}), "first_name": "Z"}),)
            + p.changes[1:],
        ),
        replace(p, changes=(replace(first, requires_2fa=not first.requires_2fa),) + p.changes[1:]),
        replace(p, preconditions={**p.preconditions, 'user["bob@acme.co"]': "absent"}),
        replace(p, options={**p.options, "allow_mass_removal": True}),
    ]
    for v in variants:
        assert v.digest not in seen
        seen.add(v.digest)


def test_saved_plan_round_trips_and_tampering_is_refused() -> None:
    p = replace(
        big_plan(),
        provenance=planmod.provenance(
            dt.datetime(2026, 3, 1, 12, 0), {"users.yaml": "sha256:" + "0" * 64}, None
        ),
    )
    text = planmod.dumps(p)
    again = planmod.loads(text)
    assert (
        again.digest == p.digest
        and again.changes == p.changes
        and again.preconditions == p.preconditions
    )
    with pytest.raises(Refused, match="modified after it was written"):
        planmod.loads(text.replace('"first_name": "B"', '"first_name": "Mallory"', 1))
    with pytest.raises(InputError):
        planmod.loads("{not json")
    assert again.provenance == p.provenance


def _resigned(data: dict[str, Any]) -> str:
    signed = {k: v for k, v in data.items() if k not in ("digest", "findings", "summary")}
    return json.dumps({**data, "digest": planmod.compute_digest(signed)})


def test_a_saved_plan_the_schema_refuses_is_malformed_whatever_its_digest() -> None:
    p = replace(big_plan(), provenance=planmod.provenance(dt.datetime(2026, 3, 1, 12, 0), {}, None))
    data = json.loads(planmod.dumps(p))
    unknown = json.loads(json.dumps(data))
    unknown["changes"][0]["action"] = "explode"
    with pytest.raises(InputError, match=r"malformed at changes/0/action"):
        planmod.loads(_resigned(unknown))
    extra = json.loads(json.dumps(data))
    extra["changes"][0]["sneaky"] = True
    with pytest.raises(InputError, match="malformed at changes/0"):
        planmod.loads(_resigned(extra))
    bare = json.loads(json.dumps(data))
    bare["provenance"] = {}
    with pytest.raises(InputError, match="provenance lacks created_at"):
        planmod.loads(_resigned(bare))
    old = json.loads(json.dumps(data))
    old["format_version"] = 1
    with pytest.raises(InputError, match="format_version 3 expected"):
        planmod.loads(_resigned(old))
    with pytest.raises(InputError, match="nested too deeply"):
        planmod.loads("[" * 100_000 + "]" * 100_000)
