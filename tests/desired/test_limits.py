"""Lengths and characters are one contract (issue 10): every string column of the shared tables
is declared once, in state.LIMITS. The columns are sized from it; the desired-state schema is held
to it here (maxLength, pattern, enum), so the loader refuses one character more at FILE:LINE:COL
rather than the database at apply; and the audit address column is as wide as the widest
address the declared columns can make, however JSON quoting escapes them."""

from __future__ import annotations

import json
import json.encoder
import re._parser  # the standard library's own regex parser: the longest string a pattern matches
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import String

from userctl import state
from userctl.db import tables
from userctl.desired import schema
from userctl.desired.loader import load_desired
from userctl.errors import InputError
from userctl.plan import (
    assignment_address,
    bank_account_address,
    organization_address,
    role_address,
    user_address,
)

DOC: Final = schema.schema_document()
# The tables of the database contract (DESIGN §1b) whose string columns LIMITS declares.
CONTRACT_TABLES: Final = ("organizations", "roles", "role_permissions", "users", "bank_accounts")

# Where the desired-state schema describes what the file gives each declared column: a path of
# keys into the schema document. Columns the file never writes (the organization's name, a bank
# account's bank) are not here; a bank account's key is, as the file names keys to assign.
SCHEMA_PLACES: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "organizations.slug": (("properties", "organization"),),
    "organizations.two_factor_policy": (
        ("properties", "policies", "properties", "two_factor_policy"),
    ),
    "roles.name": (
        ("properties", "roles", "propertyNames"),
        ("$defs", "user", "properties", "role"),
    ),
    "roles.description": (("$defs", "role", "properties", "description"),),
    "role_permissions.permission": (("$defs", "permission"),),
    "users.email": (("$defs", "email"),),
    "users.first_name": (("$defs", "user", "properties", "first_name"),),
    "users.last_name": (("$defs", "user", "properties", "last_name"),),
    "users.id_type": (("$defs", "user", "properties", "id_type"),),
    "users.id_number": (("$defs", "user", "properties", "id_number"),),
    "users.phone": (("$defs", "user", "properties", "phone"),),
    "users.status": (("$defs", "user", "properties", "status"),),
    "users.two_factor": (("$defs", "user", "properties", "two_factor"),),
    "bank_accounts.key": (("$defs", "user", "properties", "bank_accounts", "items"),),
}
UNBOUNDED: Final = 2**63


def node_at(path: tuple[str, ...]) -> dict[str, Any]:
    """The schema node at `path`, with the definition it refers to ($ref) merged under it."""
    node: Any = DOC
    for step in path:
        node = node[step]
    if "$ref" in node:
        target = DOC["$defs"][node["$ref"].removeprefix("#/$defs/")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    assert isinstance(node, dict)
    return node


def pattern_bound(pattern: str) -> int:
    """The longest string `pattern` admits. A JSON Schema pattern searches, so only one anchored
    at both ends bounds the whole value."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return UNBOUNDED
    longest = re._parser.parse(pattern).getwidth()[1]
    return UNBOUNDED if longest >= re._parser.MAXREPEAT else int(longest)


def schema_bound(node: dict[str, Any]) -> int:
    """The longest value the schema node admits: its maxLength, pattern or enum,
    whichever is least."""
    bounds = [UNBOUNDED]
    if "maxLength" in node:
        bounds.append(node["maxLength"])
    if "pattern" in node:
        bounds.append(pattern_bound(node["pattern"]))
    if "enum" in node:
        bounds.append(max(len(v) for v in node["enum"]))
    return min(bounds)


def test_every_string_column_of_the_shared_tables_is_sized_by_its_declaration() -> None:
    columns = {
        f"{name}.{column.name}": column.type.length
        for name in CONTRACT_TABLES
        for column in tables.metadata.tables[name].columns
        # A column the database computes (users.email_key) is never written: it has no limit of
        # its own to declare, only the width of what it is computed from.
        if isinstance(column.type, String) and column.computed is None
    }
    assert columns == {column: limit.max_length for column, limit in state.LIMITS.items()}
    email_key = tables.users.c.email_key
    assert email_key.computed is not None and isinstance(email_key.type, String)
    assert email_key.type.length == state.LIMITS["users.email"].max_length


def test_bookkeeping_columns_holding_an_email_are_as_wide_as_a_users_email() -> None:
    email = state.LIMITS["users.email"].max_length
    for column in (
        tables.audit_events.c.operator,
        tables.approvals.c.approver_email,
        tables.notifications.c.recipient,
    ):
        assert isinstance(column.type, String) and column.type.length == email, column


@pytest.mark.parametrize("column", sorted(SCHEMA_PLACES))
def test_the_schema_bounds_each_value_by_its_declaration(column: str) -> None:
    limit = state.LIMITS[column]
    for place in SCHEMA_PLACES[column]:
        node = node_at(place)
        assert node.get("pattern") == limit.pattern, place
        if limit.values:
            # A file may declare fewer values than the platform writes (users.status), never others.
            assert set(node["enum"]) <= set(limit.values), place
        else:
            assert "enum" not in node, place
        if limit.pattern is None and not limit.values:
            # Free text: maxLength is its only bound, and it is the column's width.
            assert node["maxLength"] == limit.max_length, place
        elif "maxLength" in node:
            assert node["maxLength"] == limit.max_length, place
        # Whatever the schema admits fits the column.
        assert schema_bound(node) <= limit.max_length, place


def _string_nodes(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths to every node of the schema that takes a string: typed string, or a set of values."""
    found: list[tuple[str, ...]] = []
    if isinstance(node, dict):
        if node.get("type") == "string" or "enum" in node:
            found.append(path)
        for key, child in node.items():
            if key not in ("enum", "default", "const", "required", "properties"):
                found += _string_nodes(child, (*path, key))
        for key, child in node.get("properties", {}).items():
            found += _string_nodes(child, (*path, "properties", key))
    return found


def test_every_string_a_file_can_hold_is_bounded_by_a_declaration() -> None:
    declared = {place for places in SCHEMA_PLACES.values() for place in places}
    # A property defined by reference ({"$ref": "#/$defs/name"}) is checked where it refers.
    referenced = {("$defs", "name")}
    # An expiry is a date (a DATE column, its pattern bounds it to 10 characters), and a
    # separation-of-duties name fills policies.name, VARCHAR(100), outside the shared tables.
    referenced |= {
        ("$defs", "user", "properties", "expires"),
        ("properties", "policies", "properties", "separation_of_duties", "propertyNames"),
    }
    assert set(_string_nodes(DOC)) <= declared | referenced


# --- the loader enforces them, at FILE:LINE:COL -------------------------------------------------

DEFAULTS: Final = {
    "organizations.slug": "x-org",
    "roles.name": "Admin",
    "roles.description": "Full access",
    "users.email": "ana@x.co",
    "users.first_name": "Ana",
    "users.last_name": "Ruiz",
    "users.id_number": "12345678",
    "users.phone": "+573001112233",
    "bank_accounts.key": "ops-main",
}
# Where document() writes each value: line, column (a role name: its key, the first place).
PLACES: Final = {
    "organizations.slug": (2, 15),
    "roles.name": (4, 3),
    "roles.description": (5, 18),
    "users.email": (8, 3),
    "users.first_name": (9, 17),
    "users.last_name": (10, 16),
    "users.id_number": (12, 16),
    "users.phone": (13, 12),
    "bank_accounts.key": (15, 21),
}


def document(values: dict[str, str]) -> str:
    """A valid file but for the `values` given ("table.column" -> value), each quoted as JSON."""
    v = {**DEFAULTS, **values}

    def q(column: str) -> str:
        return json.dumps(v[column], ensure_ascii=False)

    return (
        "\n".join(
            [
                "version: 1",
                f"organization: {q('organizations.slug')}",
                "roles:",
                f"  {q('roles.name')}:",
                f"    description: {q('roles.description')}",
                "    permissions: [users.view]",
                "users:",
                f"  {q('users.email')}:",
                f"    first_name: {q('users.first_name')}",
                f"    last_name: {q('users.last_name')}",
                "    id_type: CC",
                f"    id_number: {q('users.id_number')}",
                f"    phone: {q('users.phone')}",
                f"    role: {q('roles.name')}",
                f"    bank_accounts: [{q('bank_accounts.key')}]",
            ]
        )
        + "\n"
    )


def write(tmp_path: Path, column: str, value: str) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(document({column: value}), encoding="utf-8")
    return path


def longest_email(length: int) -> str:
    """A valid-looking address of `length` characters (254 is the longest the format admits)."""
    local = "a" * 64
    labels = ["x" * 63] * 2
    room = length - len(local) - 1 - 2 * 64 - len(".co")
    return f"{local}@{'.'.join(labels)}.{'y' * room}.co"


# Free text: bounded by its width alone, so filled to it with a character of each kind.
FREE_TEXT: Final = (
    "roles.name",
    "roles.description",
    "users.first_name",
    "users.last_name",
    "bank_accounts.key",
)
# A character of each kind: JSON-quoted wider (quote, backslash), Latin, Greek, Cyrillic, CJK,
# beyond the BMP (an emoji is one code point: one character for maxLength and for VARCHAR(n)).
FILLERS: Final = ('"', "\\", "é", "Ω", "Ж", "漢", "\U0001f600")
# Formatted values: the longest one the pattern admits (a slug a DNS label, narrower than its
# column), and one a character longer.
FORMATTED: Final[dict[str, tuple[str, str]]] = {
    "organizations.slug": ("a" * 63, "a" * 64),
    "users.email": (longest_email(254), longest_email(255)),
    "users.id_number": ("A" * 20, "A" * 21),
    "users.phone": ("+" + "9" * 15, "+" + "9" * 16),
}
PARSERS: Final = ("auto", "precise")


def refused(path: Path, parser: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        load_desired(path, parser=parser)  # type: ignore[arg-type]
    return [str(p) for p in exc.value.problems]


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("filler", FILLERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("column", FREE_TEXT)
def test_free_text_takes_its_declared_length_of_any_script_and_not_one_more(
    tmp_path: Path, column: str, filler: str, parser: str
) -> None:
    limit = state.LIMITS[column].max_length
    longest = load_desired(write(tmp_path, column, filler * limit), parser=parser)  # type: ignore[arg-type]
    assert longest.organization == DEFAULTS["organizations.slug"]

    line, col = PLACES[column]
    problems = refused(write(tmp_path, column, filler * (limit + 1)), parser)

    # A value says how long it is; a key (a role name) what a key must be, in the schema's words.
    said = (f"too long: {limit + 1} characters, at most {limit}", f"of 1 to {limit} characters.")
    assert any(
        p.startswith(f"{tmp_path / 'users.yaml'}:{line}:{col}: ") and p.endswith(said)
        for p in problems
    ), problems


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("column", sorted(FORMATTED))
def test_formatted_values_take_their_longest_form_and_not_one_more(
    tmp_path: Path, column: str, parser: str
) -> None:
    longest, too_long = FORMATTED[column]
    assert (
        len(longest)
        == schema_bound(node_at(SCHEMA_PLACES[column][0]))
        <= state.LIMITS[column].max_length
    )
    load_desired(write(tmp_path, column, longest), parser=parser)  # type: ignore[arg-type]

    line, col = PLACES[column]
    problems = refused(write(tmp_path, column, too_long), parser)

    assert any(p.startswith(f"{tmp_path / 'users.yaml'}:{line}:{col}: ") for p in problems), (
        problems
    )


LOOKALIKES: Final = {"a": "\u0430", "A": "\u0410", "9": "\u096f"}


@pytest.mark.parametrize("column", sorted(c for c in PLACES if state.LIMITS[c].charset == "ascii"))
def test_ascii_columns_refuse_any_other_character_at_its_place(tmp_path: Path, column: str) -> None:
    value = FORMATTED[column][0]
    # Its first letter or digit replaced by a look-alike: Cyrillic a or A, or a Devanagari nine.
    first = next(c for c in value if c in LOOKALIKES)
    lookalike = value.replace(first, LOOKALIKES[first], 1)

    line, col = PLACES[column]
    problems = refused(write(tmp_path, column, lookalike), "auto")

    assert any(p.startswith(f"{tmp_path / 'users.yaml'}:{line}:{col}: ") for p in problems), (
        problems
    )


# --- the audit address ----------------------------------------------------------------------------


def test_no_character_is_quoted_wider_than_the_one_the_address_width_assumes() -> None:
    # What json.dumps(..., ensure_ascii=False) writes a string's characters as, one by one.
    encode = json.encoder.encode_basestring
    widest = len(encode(tables._WIDEST_CHARACTER))
    assert max(len(encode(chr(code))) for code in range(0x110000)) == widest == len('"\\u0000"')


def test_the_audit_address_column_is_as_wide_as_the_widest_address() -> None:
    width = tables.audit_events.c.address.type.length
    assert width == tables.widest_address() == tables.ADDRESS_WIDTH
    # Migration 0003 sized the column: a wider declaration needs a migration of its own.
    assert width == 2144
    # What a valid file alone can make: quotes and backslashes double (400 was the column).
    email = "a" * state.LIMITS["users.email"].max_length
    assert (
        len(assignment_address(email, '"' * state.LIMITS["bank_accounts.key"].max_length))
        == 474
        <= width
    )


EMAIL_WIDTH: Final = state.LIMITS["users.email"].max_length
KEY_WIDTH: Final = state.LIMITS["bank_accounts.key"].max_length


@given(
    email=st.text(max_size=EMAIL_WIDTH),
    key=st.text(max_size=KEY_WIDTH),
    name=st.text(max_size=state.LIMITS["roles.name"].max_length),
    slug=st.text(max_size=state.LIMITS["organizations.slug"].max_length),
)
def test_any_address_of_values_the_columns_hold_fits_the_audit_column(
    email: str, key: str, name: str, slug: str
) -> None:
    width = tables.ADDRESS_WIDTH
    addresses = (
        organization_address(slug),
        role_address(name),
        user_address(email),
        assignment_address(email, key),
        bank_account_address(key),
    )
    assert all(len(a) <= width for a in addresses)
