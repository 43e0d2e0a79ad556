"""Change records are typed per kind (state.RoleFields, UserFields, AssignmentFields,
PolicyFields): each is written by one function and read back by its inverse, a change carrying
one survives the saved plan's JSON unchanged, and a change is read only as its own kind's record.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from userctl.plan import ACTION_TABLE, PHASES, Change, dumps_data
from userctl.state import (
    USER_FIELDS,
    AssignmentFields,
    BankAccount,
    BankAccountFields,
    ChangeRecord,
    PolicyFields,
    Role,
    RoleFields,
    User,
    UserFields,
    assignment_record,
    policy_record,
    role_from_record,
    role_record,
    user_fields,
    user_from_record,
)

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
roles = st.builds(Role, text, text, st.frozensets(text, max_size=4))
users = st.builds(
    User,
    email=text,
    first_name=text,
    last_name=text,
    id_type=text,
    id_number=text,
    phone=text,
    role=text,
    status=st.sampled_from(("invited", "active", "inactive")),
    two_factor=st.sampled_from(("required", "optional", "disabled")),
    force_password_reset=st.booleans(),
    totp_enrolled=st.booleans(),
    expires=st.none() | st.dates().map(lambda d: d.isoformat()),
)
policy_values = st.lists(text, max_size=3).map(sorted) | st.integers(0, 999) | st.booleans() | text


def test_each_record_type_holds_exactly_its_dataclass_fields() -> None:
    # The TypedDicts restate the dataclasses' fields for mypy: held to them here.
    assert list(get_type_hints(UserFields)) == [f for f in USER_FIELDS if f != "bank_accounts"]
    assert list(get_type_hints(RoleFields)) == [f.name for f in fields(Role)]
    assert list(get_type_hints(BankAccountFields)) == [f.name for f in fields(BankAccount)]


@given(roles)
def test_a_role_record_round_trips(role: Role) -> None:
    record = role_record(role)
    assert role_from_record(record) == role
    assert role_record(role_from_record(record)) == record
    assert record["permissions"] == sorted(role.permissions)


@given(users)
def test_a_user_record_round_trips_without_bank_accounts(user: User) -> None:
    record = user_fields(user)
    assert "bank_accounts" not in record
    assert user_from_record(record) == user
    assert user_fields(user_from_record(record)) == record


def _records(kind: str) -> st.SearchStrategy[Any]:
    if kind == "role":
        return roles.map(role_record)
    if kind == "user":
        return users.map(user_fields)
    if kind == "assignment":
        return st.builds(assignment_record, text, text)
    return st.builds(policy_record, st.tuples(text, text), policy_values)


READERS = {
    "role": Change.role_after,
    "user": Change.user_after,
    "assignment": Change.assignment_after,
    "policy": Change.policy_after,
}


@pytest.mark.parametrize("kind, action", sorted(ACTION_TABLE), ids="{0[0]}.{0[1]}".format)
@settings(max_examples=25)
@given(data=st.data())
def test_every_actions_change_round_trips_through_the_saved_plan(
    kind: str, action: str, data: st.DataObject
) -> None:
    before: ChangeRecord | None = None
    after: ChangeRecord | None = None
    if action not in ("create", "assign"):
        before = data.draw(_records(kind))
    if action not in ("delete", "unassign"):
        after = data.draw(_records(kind))
    key = ("k", "e") if kind in ("assignment", "policy") else ("k",)
    phase = PHASES.index(ACTION_TABLE[(kind, action)].phase)
    change = Change(kind, key, action, phase, before, after, {})  # type: ignore[arg-type]

    saved = json.loads(dumps_data(change.to_data()))
    again = Change.from_data(saved)

    assert again == change
    if after is None:
        with pytest.raises(ValueError, match="has no"):
            READERS[kind](again)
    else:
        assert READERS[kind](again) == after
    # Read as another kind's record, it is refused, not misread.
    for other, read in READERS.items():
        if other != kind:
            with pytest.raises(ValueError, match=f"has no {other} record"):
                read(again)


def test_a_policy_and_an_assignment_record_name_their_fields() -> None:
    policy: PolicyFields = policy_record(("max_holders", "users.manage"), 3)
    assert policy == {"rule": "max_holders", "name": "users.manage", "value": 3}
    assignment: AssignmentFields = assignment_record("a@acme.co", "payroll")
    assert assignment == {"user": "a@acme.co", "bank_account": "payroll"}
