"""How a plain (unquoted) YAML scalar is read, and which plain scalars are refused outright.

Plain scalars follow YAML 1.2's core schema exactly as yaml_rs (the fast parser) reads them, so
that the two parsers always produce the same value: `0x1F`, `1_000`, `0b101`, `.inf` are numbers,
`null`/`~`/empty are null, `true`/`True`/`TRUE`/`false`/... are booleans, everything else is a
string. On top of that, the words YAML 1.1 reads as booleans (`yes`, `no`, `on`, `off`, `y`, `n`
in any case) and every boolean spelling but `true`/`false` are refused when unquoted: they mean
different things to different YAML readers, and `NO` silently becoming false is the trap.
"""

from __future__ import annotations

import re
from typing import Final

NULLS: Final = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLEANS: Final = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
NOT_STRINGS: Final = NULLS | frozenset(_BOOLEANS)

# Plain scalars that are errors: anything a YAML 1.1 or 1.2 reader may take for a boolean, except
# the two canonical spellings.
AMBIGUOUS_BOOLEANS: Final = frozenset(
    {
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
        "True",
        "TRUE",
        "False",
        "FALSE",
    }
)

# Underscores may stand between or around digits, but each part needs at least one digit.
_DECIMAL_INT: Final = re.compile(r"[0-9_]*[0-9][0-9_]*")
_DECIMAL_FLOAT: Final = re.compile(
    r"(?:[0-9_]*[0-9][0-9_]*(?:\.[0-9_]*)?|[0-9_]*\.[0-9_]*[0-9][0-9_]*)"
    r"(?:[eE][-+]?[0-9_]*[0-9][0-9_]*)?"
)
_INFINITY: Final = re.compile(r"[-+]?\.[iI][nN][fF]")
_NAN: Final = re.compile(r"\.[nN][aA][nN]")
_RADIX: Final = {
    "x": (16, re.compile(r"[0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*")),
    "o": (8, re.compile(r"[0-7_]*[0-7][0-7_]*")),
    "b": (2, re.compile(r"[01_]*[01][01_]*")),
}
# Only these can start a number: a plain scalar starting otherwise is a string unless it is one
# of NOT_STRINGS.
NUMBER_START: Final = frozenset("0123456789+-._")

Scalar = str | int | float | bool | None


def resolve_plain(text: str) -> Scalar:
    """The value of a plain scalar, as yaml_rs reads it (underscores allowed in numbers)."""
    if not text or text[0] not in NUMBER_START:
        if text in NULLS:
            return None
        boolean = _BOOLEANS.get(text)
        return text if boolean is None else boolean
    if _INFINITY.fullmatch(text):
        return float("-inf") if text[0] == "-" else float("inf")
    if _NAN.fullmatch(text):
        return float("nan")
    sign = -1 if text[0] == "-" else 1
    body = text[1:] if text[0] in "+-" else text
    if len(body) > 2 and body[0] == "0" and body[1] in "xXoObB":
        base, digits_re = _RADIX[body[1].lower()]
        if digits_re.fullmatch(body, 2):
            return sign * int(body[2:].replace("_", ""), base)
    if _DECIMAL_INT.fullmatch(body):
        return sign * int(body.replace("_", ""))
    if _DECIMAL_FLOAT.fullmatch(body):
        return sign * float(body.replace("_", ""))
    return text


def describe_kind(value: object) -> str:
    """What a non-string value was read as, for messages ("a number", "null"...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string"
