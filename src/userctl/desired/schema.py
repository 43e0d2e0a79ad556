"""The JSON Schema of the desired-state format (schemas/userctl.schema.json), run by jsonschema-rs,
and its errors turned into sentences a PR author can act on.

The schema file is the single source of truth for the format: types, enums, patterns and
lengths are checked here and nowhere else, and the messages take their wording from the
schema's own `description`s where they explain a rule.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path as FilePath
from typing import Any, Final

from userctl.desired.strict_yaml import Marks, describe_kind
from userctl.errors import Path, Problem, did_you_mean

SCHEMA_FILE: Final = "userctl.schema.json"


# Next to the package's modules: importlib.resources would add imports to every
# `userctl validate`.
SCHEMA_PATH: Final = FilePath(__file__).resolve().parent.parent / "schemas" / SCHEMA_FILE


def schema_text() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


@functools.cache
def schema_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(schema_text())
    return document


@functools.cache
def _validator() -> Any:
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(schema_document())


# What jsonschema-rs raises for a value it cannot take at all (a key that is not a string).
UNCHECKABLE: Final = (ValueError, TypeError, OverflowError)


def is_valid(value: Any) -> bool:
    """The verdict alone."""
    try:
        return bool(_validator().is_valid(value))
    except UNCHECKABLE:
        return False


def check(value: Any, sourcemap: Marks) -> list[Problem]:
    """Every schema error in `value`, located with `sourcemap`, one problem per place.
    Raises one of UNCHECKABLE for a value jsonschema-rs cannot take."""
    validator = _validator()
    # The verdict alone is cheaper than collecting errors, and most files checked are valid.
    # It raises UNCHECKABLE as iter_errors does.
    if validator.is_valid(value):
        return []
    problems: list[Problem] = []
    seen: set[tuple[Path, str]] = set()
    for error in validator.iter_errors(value):
        for path, at_key, message in _explain(error, sourcemap):
            # A value breaking several rules (empty, so too short and not matching) gets one
            # message; distinct messages about one mapping (missing fields) are all kept.
            dedupe = (path, message if at_key else "")
            if dedupe in seen:
                continue
            seen.add(dedupe)
            line, col = sourcemap.position(path, key=at_key)
            problems.append(Problem(message, path, line=line, col=col))
    return problems


_Explained = list[tuple[Path, bool, str]]


def _explain(error: Any, sm: Marks) -> _Explained:
    path: Path = tuple(error.instance_path)
    kind = error.kind
    name = kind.name
    if name == "required":
        return [(path, True, f"missing required field '{kind.property}'")]
    if name == "additionalProperties":
        allowed = sorted(_schema_at(error.schema_path[:-1]).get("properties", {}))
        return [
            (
                path + (key,),
                True,
                f"unknown field '{key}'{_did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(allowed)}",
            )
            for key in kind.unexpected
        ]
    if name == "propertyNames":
        # Whatever rule the key breaks, say what a key must be: the propertyNames description.
        inner = kind.error
        key = inner.instance
        rule = _rule(_schema_at(inner.schema_path[:-1]))
        return [(path + (key,), True, f"{_shown(key, None)} is not valid; expected {rule}")]
    if name == "uniqueItems":
        return _duplicates(path, sm)
    node = _schema_at(error.schema_path[:-1])
    return [(path, False, _value_message(error, sm.value(path), sm.source_text(path), node))]


def _value_message(error: Any, value: Any, source: str | None, node: dict[str, Any]) -> str:
    """`value` is ours, not `error.instance`: jsonschema-rs reports NaN as null and big numbers
    as strings."""
    kind = error.kind
    name = kind.name
    shown = _shown(value, source)
    if name == "type":
        return _type_message(kind.types, value, source)
    if name == "enum":
        options = [str(o) for o in kind.options]
        return (
            f"{shown} is not allowed{_did_you_mean(value, options)}; "
            f"use one of: {', '.join(options)}"
        )
    if name == "const":
        return f"must be {json.dumps(kind.expected_value)}, found {shown}"
    if name == "pattern":
        return f"{shown} is not valid; expected {_rule(node)}"
    if name == "minLength":
        return (
            "must not be empty" if value == "" else f"too short: at least {kind.limit} characters"
        )
    if name == "maxLength":
        length = len(value) if isinstance(value, str) else "?"
        return f"too long: {length} characters, at most {kind.limit}"
    return str(error.message)


def _type_message(types: list[str], value: Any, source: str | None) -> str:
    written = source if source is not None else json.dumps(value)
    if types == ["string"]:
        if value is None:
            if not source:
                return "a value is required here"
            return (
                f"'{source}' means null in YAML; write a value (in "
                f'quotes if you meant "{source}")'
            )
        if isinstance(value, bool):
            return (
                f'booleans are not allowed here; write "{written}" in quotes if you meant a string'
            )
        if isinstance(value, (int, float)):
            return f'numbers are not allowed here; write "{written}" in quotes'
        return f"expected a string, found {describe_kind(value)}"
    if types == ["boolean"]:
        if isinstance(value, str) and value in ("true", "false"):
            return f'expected true or false, found the string "{value}"; remove the quotes'
        return f"expected true or false, found {_shown(value, source)}"
    wanted = {
        "object": "a mapping",
        "array": "a list",
        "integer": "a whole number",
        "number": "a number",
    }
    expected = " or ".join(wanted.get(t, t) for t in types)
    return f"expected {expected}, found {describe_kind(value)}"


def _duplicates(path: Path, sm: Marks) -> _Explained:
    items = sm.value(path)
    if not isinstance(items, list):
        return []
    first: dict[str, int] = {}
    found: _Explained = []
    for i, item in enumerate(items):
        token = json.dumps(item, sort_keys=True)
        if token in first:
            line, _ = sm.position(path + (first[token],))
            found.append(
                (path + (i,), False, f"{_shown(item, None)} is listed twice (first at line {line})")
            )
        else:
            first[token] = i
    return found


def _schema_at(schema_path: list[str | int] | tuple[str | int, ...]) -> dict[str, Any]:
    node: Any = schema_document()
    for step in schema_path:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return {}
    return node if isinstance(node, dict) else {}


def _rule(node: dict[str, Any]) -> str:
    """The first sentence of a schema description, as the rule a value breaks."""
    sentence = _first_line(str(node.get("description", "the documented format")))
    return sentence[:1].lower() + sentence[1:]


def _first_line(text: str) -> str:
    head, sep, _ = text.partition(". ")
    return head + ("." if sep or not head.endswith(".") else "")


def _shown(value: Any, source: str | None) -> str:
    if source is not None:
        return source
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return describe_kind(value) if isinstance(value, (dict, list)) else json.dumps(value)


def _did_you_mean(value: Any, options: list[str]) -> str:
    return did_you_mean(value, options) if isinstance(value, str) else ""


def enum_at(path: Path) -> list[str] | None:
    """The values the schema allows at a data path (`("users", EMAIL, "two_factor")`), when it is
    an enum field; None otherwise. For hints given before the schema runs (the YAML grammar's)."""
    node: Any = schema_document()
    for step in path:
        node = _resolved(node)
        if isinstance(step, int):
            node = node.get("items", {})
        elif step in node.get("properties", {}):
            node = node["properties"][step]
        else:
            node = node.get("additionalProperties", {})
        if not isinstance(node, dict):
            return None
    node = _resolved(node)
    values = node.get("enum")
    return [str(v) for v in values] if isinstance(values, list) else None


def _resolved(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        return _schema_at(tuple(ref[2:].split("/")))
    return node
