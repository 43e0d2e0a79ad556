"""The typed state the loader builds (its hot loop passes User's fields by position, not by
keyword): every field lands where it belongs, absent optional fields take User's defaults, emails
are lower-cased, and each user and role keeps the file that declares it."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml_rs

from userctl.desired import schema
from userctl.desired.loader import load_desired
from userctl.state import Role, User

HEAD = """version: 1
organization: speed-co
roles:
  Ops:
    description: Operates payouts
    permissions: [payouts.view, payouts.create]
  Viewer:
    permissions: [users.view]
"""
OPTIONAL = {
    "status": "inactive",
    "two_factor": "required",
    "force_password_reset": True,
    "bank_accounts": ["acct-b", "acct-a"],
}


def _user_yaml(i: int, optional: dict[str, Any]) -> str:
    # Every string field holds a distinct value, so a field passed in the wrong position shows.
    lines = [
        f"  Person.{i}@Speed.Example:",
        f"    first_name: First{i}",
        f"    last_name: Last{i}",
        "    id_type: CC",
        f'    id_number: "{1000 + i}"',
        f'    phone: "+5730000{i:05d}"',
        f"    role: {'Ops' if i % 2 else 'Viewer'}",
    ]
    for name, value in optional.items():
        if isinstance(value, bool):
            lines.append(f"    {name}: {'true' if value else 'false'}")
        elif isinstance(value, list):
            lines.append(f"    {name}: [{', '.join(value)}]")
        else:
            lines.append(f"    {name}: {value}")
    return "\n".join(lines) + "\n"


def _every_combination() -> list[dict[str, Any]]:
    """Each subset of the optional fields, present with a non-default value (an inactive user
    holds no bank accounts: that is a semantic error, so the two never come together)."""
    combos: list[dict[str, Any]] = []
    for n in range(len(OPTIONAL) + 1):
        for names in itertools.combinations(OPTIONAL, n):
            if "status" in names and "bank_accounts" in names:
                continue
            combos.append({name: OPTIONAL[name] for name in names})
    combos.append(
        {
            "status": "active",
            "two_factor": "optional",
            "force_password_reset": False,
            "bank_accounts": [],
        }
    )
    return combos


def _reference_user(email: str, fields: dict[str, Any]) -> User:
    """User built by keyword from the parsed mapping: the plain, slow way the
    fast loop must match."""
    if "bank_accounts" in fields:
        fields = {**fields, "bank_accounts": frozenset(fields["bank_accounts"])}
    return User(email=email.lower(), **fields)


@pytest.mark.parametrize("parser", ["auto", "precise"])
def test_every_field_lands_in_its_place_with_defaults_for_absent_ones(
    tmp_path: Path, parser: str
) -> None:
    combos = _every_combination()
    text = HEAD + "users:\n" + "".join(_user_yaml(i, optional) for i, optional in enumerate(combos))
    path = tmp_path / "users.yaml"
    path.write_text(text, encoding="utf-8")
    parsed = yaml_rs.loads(text, parse_datetime=False)
    assert schema.is_valid(parsed)

    desired = load_desired(path, parser=parser)  # type: ignore[arg-type]

    expected = {
        email.lower(): _reference_user(email, fields) for email, fields in parsed["users"].items()
    }
    assert desired.users == expected
    assert list(desired.users) == list(expected)  # file order kept
    assert len(expected) == len(combos)
    # Spot checks independent of the reference construction.
    first = desired.users["person.0@speed.example"]
    assert (first.first_name, first.last_name, first.id_number, first.phone, first.role) == (
        "First0",
        "Last0",
        "1000",
        "+573000000000",
        "Viewer",
    )
    defaults = {
        f.name: f.default for f in dataclasses.fields(User) if f.default is not dataclasses.MISSING
    }
    assert (
        first.status,
        first.two_factor,
        first.force_password_reset,
        first.bank_accounts,
        first.totp_enrolled,
    ) == (
        defaults["status"],
        defaults["two_factor"],
        defaults["force_password_reset"],
        frozenset(),
        False,
    )
    most = combos.index(
        {name: OPTIONAL[name] for name in ("two_factor", "force_password_reset", "bank_accounts")}
    )
    everything = desired.users[f"person.{most}@speed.example"]
    assert (
        everything.status,
        everything.two_factor,
        everything.force_password_reset,
        everything.bank_accounts,
    ) == (
        "active",
        "required",
        True,
        frozenset({"acct-a", "acct-b"}),
    )
    assert desired.roles == {
        "Ops": Role("Ops", "Operates payouts", frozenset({"payouts.view", "payouts.create"})),
        "Viewer": Role("Viewer", "", frozenset({"users.view"})),
    }


def test_a_directory_keeps_the_declaring_file_of_each_user_and_role(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + "users:\n" + _user_yaml(1, {}), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(
        "version: 1\norganization: speed-co\nusers:\n" + _user_yaml(2, {"two_factor": "disabled"}),
        encoding="utf-8",
    )
    desired = load_desired(tmp_path)
    a, b = str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")
    assert desired.origins == {
        ("roles", "Ops"): a,
        ("roles", "Viewer"): a,
        ("users", "person.1@speed.example"): a,
        ("users", "person.2@speed.example"): b,
    }
    assert desired.users["person.2@speed.example"].two_factor == "disabled"
    assert desired.users["person.1@speed.example"].two_factor == "optional"


@pytest.mark.parametrize("split", [False, True], ids=["one file", "directory"])
def test_the_origins_answer_every_way_a_mapping_is_read(tmp_path: Path, split: bool) -> None:
    """The users' origins are read off the check's own record (semantic.Origins), not one tuple
    per user: looked up, iterated, counted and their values taken, they are the plain mapping."""
    users = "users:\n" + "".join(_user_yaml(i, {}) for i in range(1, 5))
    if split:
        (tmp_path / "a.yaml").write_text(HEAD + "users:\n" + _user_yaml(1, {}), encoding="utf-8")
        (tmp_path / "b.yaml").write_text(
            "version: 1\norganization: speed-co\nusers:\n"
            + "".join(_user_yaml(i, {}) for i in range(2, 5)),
            encoding="utf-8",
        )
        path, a, b = tmp_path, str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")
    else:
        (tmp_path / "one.yaml").write_text(HEAD + users, encoding="utf-8")
        path = tmp_path / "one.yaml"
        a = b = str(path)
    desired = load_desired(path)
    plain = {("roles", "Ops"): a, ("roles", "Viewer"): a, ("users", "person.1@speed.example"): a}
    plain.update({("users", f"person.{i}@speed.example"): b for i in range(2, 5)})
    origins = desired.origins
    assert dict(origins) == plain and len(origins) == len(plain)
    assert sorted(origins) == sorted(plain)
    assert sorted(origins.values()) == sorted(plain.values())
    assert list(origins.values()) == [origins[k] for k in origins]
    assert origins.get(("users", "Person.1@Speed.Example")) is None  # keyed by lower case
    assert origins.get(("users", "nobody@speed.example")) is None
    assert origins.get(("roles", "Nobody")) is None
