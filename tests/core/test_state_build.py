"""state.build_user, the loops' way to build a User without a frozen dataclass's per-field
object.__setattr__: it must make exactly the User that User(...) makes, frozen, with the same
arguments in the same order."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from userctl import state
from userctl.state import User, build_user

VALUES: tuple[object, ...] = (
    "ana@example.com",
    "Ana",
    "Ruiz",
    "CC",
    "1020",
    "+573001234567",
    "Operator",
    "invited",
    "required",
    True,
    frozenset({"nequi-1"}),
    True,
    "2027-01-31",
)


def test_its_slots_and_arguments_are_users_fields_in_order() -> None:
    names = tuple(f.name for f in dataclasses.fields(User))
    built = state._UserBeingBuilt
    assert built.__slots__ == User.__slots__ == names
    assert tuple(inspect.signature(built.__init__).parameters)[1:] == names


def test_it_builds_the_user_user_builds() -> None:
    made = build_user(*VALUES)  # type: ignore[arg-type]
    expected = User(*VALUES)  # type: ignore[arg-type]
    assert type(made) is User
    assert made == expected and hash(made) == hash(expected)
    assert repr(made) == repr(expected)
    assert dataclasses.astuple(made) == VALUES
    assert pickle.loads(pickle.dumps(made)) == expected
    assert dataclasses.replace(made, role="Admin") == dataclasses.replace(expected, role="Admin")


def test_what_it_builds_is_frozen() -> None:
    made = build_user(*VALUES)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.role = "Admin"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del made.role  # type: ignore[misc]
    assert made.role == "Operator"
