"""The one table of actions (plan.ACTION_TABLE), the one precondition fingerprint
(state.fingerprint) and the one list of user fields (state.USER_FIELDS): every reader derives
from them, so a row, a hash or a field cannot be forgotten in one place."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, get_args

import pytest

from tests.core.planner_states import ACCOUNTS, OPS, ROOT, desired, live, user
from userctl import planner
from userctl.plan import (
    ACTION_TABLE,
    ACTIONS,
    PHASES,
    Change,
    Kind,
    Plan,
    bank_account_address,
    organization_address,
    parse_address,
    required_permissions,
    role_address,
    user_address,
)
from userctl.planner import PlanOptions, diff
from userctl.render.common import symbol
from userctl.simulate import apply_changes
from userctl.state import (
    DECLARED_USER_FIELDS,
    USER_FIELDS,
    User,
    bank_account_record,
    fingerprint,
    organization_settings,
    record_hash,
    role_record,
    user_from_record,
    user_record,
)

BOB = user("bob@acme.co", 1, bank_accounts=frozenset({"ops-main"}))


def test_every_kind_has_actions_and_every_row_a_phase() -> None:
    assert set(ACTIONS) == set(get_args(Kind))
    assert {(k, a) for k, actions in ACTIONS.items() for a in actions} == set(ACTION_TABLE)
    for rule in ACTION_TABLE.values():
        assert rule.phase in PHASES
        assert rule.destructive_phase is None or rule.destructive_phase in PHASES
        assert rule.needs, "every action needs some permission of the operator"


def _change(kind: str, action: str, diff: dict[str, Any] | None = None) -> Change:
    key = ("a@acme.co", "ops-main") if kind == "assignment" else ("x",)
    rule = ACTION_TABLE[(kind, action)]  # type: ignore[index]
    return Change(kind, key, action, PHASES.index(rule.phase), None, None, diff or {})  # type: ignore[arg-type]


@pytest.mark.parametrize("key", sorted(ACTION_TABLE), ids=lambda k: ".".join(k))
def test_renderers_and_apply_read_the_table(key: tuple[str, str]) -> None:
    kind, action = key
    rule = ACTION_TABLE[key]  # type: ignore[index]
    change = _change(kind, action)
    data = {**change.to_data(), "deferred": False}
    assert symbol(data) == rule.symbol
    assert required_permissions([change]) == set(rule.needs)
    counted = Plan("acme", "destructive", (change,), {}).summary()
    assert counted[rule.bucket] == 1 and counted["total"] == 1


def test_the_table_says_what_the_design_says() -> None:
    destructive = {k for k, r in ACTION_TABLE.items() if r.destructive}
    assert destructive == {
        ("user", "delete"),
        ("user", "deactivate"),
        ("user", "replace"),
        ("user", "change_role"),
        ("user", "disable_two_factor"),
        ("assignment", "unassign"),
        ("role", "delete"),
        ("user", "expire"),
    }
    assert {k for k, r in ACTION_TABLE.items() if r.destructive_if_removed} == {("role", "update")}
    # Loosening a policy is destructive (DESIGN §3); an expiry's deactivation needs no new code.
    assert {k for k, r in ACTION_TABLE.items() if r.destructive_if_weakened} == {
        ("policy", "create"),
        ("policy", "update"),
        ("policy", "delete"),
    }
    assert {k for k, r in ACTION_TABLE.items() if r.confirmed_earlier} == {("user", "expire")}
    assert {k for k, r in ACTION_TABLE.items() if r.self_harm} == {
        ("user", "delete"),
        ("user", "deactivate"),
        ("user", "replace"),
        ("user", "disable_two_factor"),
        ("user", "expire"),
    }
    assert required_permissions([_change("user", "replace")]) == {"users.add", "users.manage"}
    assert required_permissions([_change("role", "update"), _change("assignment", "assign")]) == {
        "roles.manage",
        "users.manage",
    }


def test_a_saved_plan_with_an_action_missing_from_the_table_is_malformed() -> None:
    data = _change("user", "delete").to_data()
    with pytest.raises(ValueError, match="unknown action user.explode"):
        Change.from_data({**data, "action": "explode"})


# --- the fingerprint ---------------------------------------------------------------------------


def test_fingerprint_hashes_each_kind_of_row_as_its_record() -> None:
    state = live([BOB])
    assert fingerprint(state, "user", "bob@acme.co") == record_hash(user_record(BOB))
    assert fingerprint(state, "role", "Ops") == record_hash(role_record(OPS))
    assert fingerprint(state, "bank_account", "ops-main") == record_hash(
        bank_account_record(ACCOUNTS["ops-main"])
    )
    assert fingerprint(state, "organization", "acme") == record_hash(
        organization_settings(state.organization)
    )
    for kind, key in (
        ("user", "nobody@acme.co"),
        ("role", "Nope"),
        ("bank_account", "nope"),
        ("organization", "other"),
    ):
        assert fingerprint(state, kind, key) == "absent"  # type: ignore[arg-type]


def test_fingerprint_changes_with_every_field_a_plan_depends_on() -> None:
    state = live([BOB])
    for name in USER_FIELDS:
        changed = replace(
            state,
            users={**state.users, BOB.email: replace(BOB, **{name: _other(getattr(BOB, name))})},
        )
        assert fingerprint(changed, "user", BOB.email) != fingerprint(state, "user", BOB.email), (
            name
        )
    stricter = replace(state, organization=replace(state.organization, four_eyes=True))
    assert fingerprint(stricter, "organization", "acme") != fingerprint(
        state, "organization", "acme"
    )
    busier = replace(state, organization=replace(state.organization, serial=99))
    assert fingerprint(busier, "organization", "acme") == fingerprint(state, "organization", "acme")


@pytest.mark.parametrize(
    "address, expected",
    [
        (user_address("bob@acme.co"), ("user", "bob@acme.co")),
        (role_address('Ops "EU" ] -> [x]'), ("role", 'Ops "EU" ] -> [x]')),
        (role_address("Pagos Señor"), ("role", "Pagos Señor")),
        (bank_account_address("ops-main"), ("bank_account", "ops-main")),
        (organization_address("acme"), ("organization", "acme")),
        ('assignment["a@acme.co" -> "ops-main"]', None),
        ('user["unterminated]', None),
        ("user[42]", None),
        ("nonsense", None),
    ],
)
def test_parse_address_inverts_the_address_functions(
    address: str, expected: tuple[str, str] | None
) -> None:
    assert parse_address(address) == expected


def test_every_precondition_the_planner_records_is_the_fingerprint_of_its_address() -> None:
    carol = user("carol@acme.co", 2)
    state = live([BOB, carol])
    want = desired(
        [
            replace(
                BOB,
                first_name="Robert",
                role="Admin",
                bank_accounts=frozenset({"ops-main", "payroll"}),
            )
        ]
    )
    p = diff(want, state, PlanOptions())
    assert p.preconditions, "the plan depends on rows"
    for address, expected in p.preconditions.items():
        parsed = parse_address(address)
        assert parsed is not None, address
        assert fingerprint(state, *parsed) == expected, address


# --- the user field list ------------------------------------------------------------------------


def _other(value: Any) -> Any:
    if value is None:  # an optional field: expires
        return "2030-01-01"
    if isinstance(value, bool):
        return not value
    if isinstance(value, frozenset):
        return value | {"payroll"}
    return value + "x"


@pytest.mark.parametrize("name", DECLARED_USER_FIELDS)
def test_the_planner_compares_every_declared_field(name: str) -> None:
    # The hot loop compares a hand-written tuple: it must cover every field the file declares.
    assert planner._comparable(BOB) != planner._comparable(
        replace(BOB, **{name: _other(getattr(BOB, name))})
    )


def test_the_planner_ignores_what_only_the_platform_sets() -> None:
    assert planner._comparable(BOB) == planner._comparable(replace(BOB, totp_enrolled=True))


def test_user_records_round_trip_through_the_field_list() -> None:
    enrolled = replace(ROOT, bank_accounts=frozenset({"ops-main", "payroll"}))
    assert list(user_record(enrolled)) == list(USER_FIELDS)
    assert user_from_record(user_record(enrolled)) == enrolled
    assert "totp_enrolled" not in user_record(enrolled, live=False)
    assert set(DECLARED_USER_FIELDS) == set(USER_FIELDS) - {"email", "totp_enrolled"}


def test_simulating_a_plan_reaches_the_desired_users() -> None:
    state = live([BOB])
    want = desired([replace(BOB, first_name="Robert", two_factor="required")])
    after = apply_changes(state, diff(want, state).changes)
    assert after.users[BOB.email] == replace(BOB, first_name="Robert", two_factor="required")
    assert isinstance(after.users[BOB.email], User)


def test_action_rules_are_written_by_name() -> None:
    # Six values by position made a reader count commas to tell `destructive` from `rank`.
    from userctl.plan import ActionRule

    with pytest.raises(TypeError):
        ActionRule("role.create", 0, "+", "create", False, ("roles.manage",))  # type: ignore[misc]
    rule = ACTION_TABLE[("user", "deactivate")]
    assert (rule.phase, rule.destructive, rule.removes_user) == ("user.deactivate", True, True)
