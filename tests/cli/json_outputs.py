"""What every JSON output test checks: the document validates against its published schema in
schemas/ (with the reference validator, `jsonschema`), and every instant in it is RFC 3339 UTC
in whole seconds, written the one way `clock.iso_z` writes it."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
# The one form of an instant in every JSON output.
RFC3339_UTC = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
# What an instant could look like in any form (a date, then T or a space and a time): each such
# value must be in the one form above, so a field written some other way is caught even when it
# is not named like a timestamp.
_LOOKS_LIKE_AN_INSTANT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:")
_TIMESTAMP_KEYS = re.compile(r"(_at|^time|_until)$")


@functools.cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return loaded


def timestamps(data: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every value that is, or looks like, an instant."""
    if isinstance(data, dict):
        for key, value in data.items():
            if _TIMESTAMP_KEYS.search(str(key)) and not isinstance(value, (dict, list)):
                yield f"{where}/{key}", value
            else:
                yield from timestamps(value, f"{where}/{key}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from timestamps(value, f"{where}/{i}")
    elif isinstance(data, str) and _LOOKS_LIKE_AN_INSTANT.match(data):
        yield where, data


def checked(name: str, text: str) -> Any:
    """The JSON document `text`, validated against schemas/`name`, its instants checked."""
    data = json.loads(text)
    jsonschema.Draft202012Validator(schema(name)).validate(data)
    for where, value in timestamps(data):
        assert value is None or (isinstance(value, str) and RFC3339_UTC.match(value)), (
            f"{name} {where}: {value!r}"
        )
    return data
