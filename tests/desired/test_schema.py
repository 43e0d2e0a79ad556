"""The JSON Schema: it matches the shared constants and types, it is a well-formed 2020-12 schema
that editors can use, any validator reads it the same way, and its errors read as sentences."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from userctl import state
from userctl.desired import schema
from userctl.desired.loader import load_desired
from userctl.desired.strict_yaml import parse_marked
from userctl.errors import InputError

ROOT = Path(__file__).parents[2]
FIXTURES = Path(__file__).parents[1] / "fixtures" / "loader"
DOC = schema.schema_document()
USER = DOC["$defs"]["user"]
ROLE = DOC["$defs"]["role"]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert DOC["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(DOC)
    assert DOC["$id"] and DOC["title"] and DOC["description"]


def test_the_repository_schemas_folder_is_the_packaged_schema() -> None:
    assert (ROOT / "schemas" / "userctl.schema.json").read_text(
        encoding="utf-8"
    ) == schema.schema_text()


def test_enums_are_the_shared_constants() -> None:
    assert tuple(DOC["$defs"]["permission"]["enum"]) == state.PERMISSIONS
    assert tuple(USER["properties"]["id_type"]["enum"]) == state.ID_TYPES
    assert tuple(USER["properties"]["status"]["enum"]) == state.DESIRED_STATUSES
    assert tuple(USER["properties"]["two_factor"]["enum"]) == state.TWO_FACTOR


def test_user_properties_are_the_user_fields_the_file_declares() -> None:
    # The loader fills each User field from the property of the same name: the names must match one
    # for one.
    fields = {f.name for f in dataclasses.fields(state.User)} - {"email", "totp_enrolled"}
    assert set(USER["properties"]) == fields
    assert set(ROLE["properties"]) == {f.name for f in dataclasses.fields(state.Role)} - {"name"}


def test_schema_defaults_are_the_dataclass_defaults() -> None:
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(state.User)
        if f.default is not dataclasses.MISSING
    }
    for name, prop in USER["properties"].items():
        if "default" in prop:
            expected = defaults[name]
            assert (
                frozenset(prop["default"]) if isinstance(prop["default"], list) else prop["default"]
            ) == expected
    # Optional: the fields with a default, and expires, whose absence is no expiry (a `null`
    # default would be a value the schema itself refuses).
    assert "default" not in USER["properties"]["expires"] and defaults["expires"] is None
    assert set(USER["required"]) == set(USER["properties"]) - {
        n for n, p in USER["properties"].items() if "default" in p
    } - {"expires"}
    role_defaults = {f.name: f.default for f in dataclasses.fields(state.Role)}
    assert ROLE["properties"]["description"]["default"] == role_defaults["description"]


def _subschemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key not in ("enum", "default", "const", "required"):
                yield from _subschemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _subschemas(value, f"{where}/{i}")


def test_every_property_has_a_description_for_editors() -> None:
    for where, node in _subschemas(DOC):
        for name, prop in node.get("properties", {}).items():
            assert prop.get("description"), f"{where}/properties/{name}"
        if "propertyNames" in node:
            names = node["propertyNames"]
            target = DOC["$defs"][names["$ref"].rsplit("/", 1)[1]] if "$ref" in names else names
            assert target.get("description"), f"{where}/propertyNames"


def test_no_object_accepts_unknown_keys() -> None:
    objects = [(w, n) for w, n in _subschemas(DOC) if n.get("type") == "object"]
    assert len(objects) >= 5
    for where, node in objects:
        extra = node.get("additionalProperties")
        # Either a closed record, or a map whose every value has a schema (roles, users).
        assert extra is False or (
            isinstance(extra, dict) and "$ref" in extra and "propertyNames" in node
        ), where


def _fixture_values() -> Iterator[tuple[str, Any]]:
    for path in sorted(FIXTURES.rglob("*.yaml")):
        marked = parse_marked(path.read_text(encoding="utf-8-sig", errors="replace"))
        if marked.value is not None:
            yield path.name, marked.value


@pytest.mark.parametrize("name,value", list(_fixture_values()))
def test_python_jsonschema_agrees_with_jsonschema_rs(name: str, value: Any) -> None:
    """Editors and other tools run other validators: the schema must mean the same to them."""
    python = jsonschema.Draft202012Validator(DOC)
    assert python.is_valid(value) == schema.is_valid(value), name
    # Not only the verdict: both find their errors at the same places of the document.
    python_paths = {tuple(e.absolute_path) for e in python.iter_errors(value)}
    rust_paths = {tuple(e.instance_path) for e in schema._validator().iter_errors(value)}
    assert python_paths == rust_paths, name


# --- messages ------------------------------------------------------------------------------------

BASE = "version: 1\norganization: msg-org\nroles:\n  Admin:\n    permissions: [users.view]\n"
USER_OK = (
    "    first_name: Ana\n    last_name: Ruiz\n    id_type: CC\n    id_number: '12345678'\n"
    "    phone: '+573001112233'\n    role: Admin\n"
)


def messages(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "m.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_desired(f)
    return [f"{p.line}:{p.col}: {p.dotted_path()}: {p.message}" for p in exc.value.problems]


@pytest.mark.parametrize(
    "text,expected",
    [
        (BASE.replace("version: 1", 'version: "1"'), '1:10: version: must be 1, found "1"'),
        (BASE.replace("version: 1", "version: 1.5"), "1:10: version: must be 1, found 1.5"),
        (
            BASE.replace("organization: msg-org", "organization: Msg"),
            '2:15: organization: "Msg" is not valid; expected slug of the organization: 2 to 63 '
            "lower-case letters, digits or hyphens, starting with a letter or digit.",
        ),
        (
            "version: 1\norganization: msg-org\nroles: [Admin]\n",
            "3:8: roles: expected a mapping, found a list",
        ),
        (
            "version: 1\norganization: msg-org\nusers:\n  a@b.co: Ana\n",
            "4:11: users.a@b.co: expected a mapping, found a string",
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK.replace("Ana", "A" * 101),
            "8:17: users.a@b.co.first_name: too long: 101 characters, at most 100",
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK.replace("Ana", "''"),
            "8:17: users.a@b.co.first_name: must not be empty",
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK + "    two_factor: requird\n",
            '14:17: users.a@b.co.two_factor: "requird" is not allowed (did you mean '
            "'required'?); use one of: required, optional, disabled",
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK + "    status: 1\n",
            "14:13: users.a@b.co.status: 1 is not allowed; use one of: active, inactive",
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK + "    rol: Admin\n",
            "14:5: users.a@b.co.rol: unknown field 'rol' (did you mean 'role'?); allowed: "
            "bank_accounts, expires, first_name, force_password_reset, id_number, id_type, "
            "last_name, phone, role, status, two_factor",
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK.replace("'+573001112233'", "'+57 300 111 2233'"),
            '12:12: users.a@b.co.phone: "+57 300 111 2233" is not valid; expected phone number '
            "in E.164 format: + then 8 to 15 digits, quoted.",
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK.replace("'12345678'", "12345678"),
            "11:16: users.a@b.co.id_number: numbers are not allowed "
            'here; write "12345678" in quotes',
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK.replace("Ruiz", "false"),
            '9:16: users.a@b.co.last_name: booleans are not allowed here; write "false" '
            "in quotes if you meant a string",
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK + "    force_password_reset: 'false'\n",
            "14:27: users.a@b.co.force_password_reset: expected true or false, found the "
            'string "false"; remove the quotes',
        ),
        (
            BASE + "users:\n  a@b.co:\n" + USER_OK + "    force_password_reset: maybe\n",
            '14:27: users.a@b.co.force_password_reset: expected true or false, found "maybe"',
        ),
        (
            BASE + "users:\n  ana@localhost:\n" + USER_OK,
            '7:3: users.ana@localhost: "ana@localhost" is not valid; expected an email '
            "address such as ana.perez@acme.co.",
        ),
        (
            BASE.replace("[users.view]", "[users.view, audit.view, users.view]"),
            '5:43: roles.Admin.permissions[2]: "users.view" is listed twice (first at line 5)',
        ),
        (
            BASE.replace("[users.view]", "users.view"),
            "5:18: roles.Admin.permissions: expected a list, found a string",
        ),
        (
            BASE.replace("  Admin:\n", "  " + "R" * 101 + ":\n").replace("role: Admin", "role: x"),
            "4:3: roles."
            + "R" * 101
            + ': "'
            + "R" * 101
            + '" is not valid; expected a role name of 1 to 100 characters.',
        ),
    ],
)
def test_schema_errors_read_as_sentences(tmp_path: Path, text: str, expected: str) -> None:
    assert messages(tmp_path, text) == [expected]


def test_missing_fields_are_each_named_at_the_entry(tmp_path: Path) -> None:
    assert messages(
        tmp_path, BASE + "users:\n  a@b.co:\n    first_name: Ana\n    role: Admin\n"
    ) == [
        f"7:3: users.a@b.co: missing required field '{name}'"
        for name in ("id_number", "id_type", "last_name", "phone")
    ]
    assert messages(tmp_path, "organization: msg-org\n") == [
        "1:1: (document): missing required field 'version'"
    ]


def test_is_valid_survives_values_jsonschema_rs_cannot_take() -> None:
    assert schema.is_valid({1: "x"}) is False
    assert schema.is_valid({"version": 1, "organization": "ab", "roles": {None: {}}}) is False
