"""Which plain (unquoted) YAML scalars are refused outright, and how values are named.

Plain scalars are read by yaml_rs with YAML 1.2's core schema: `0x1F`, `1_000`, `.inf` are
numbers, `null`/`~`/empty are null, `true`/`True`/`TRUE`/`false`/... are booleans. On top of
that, the words YAML 1.1 reads as booleans (`yes`, `no`, `on`, `off`, `y`, `n` in any case) and
every boolean spelling but `true`/`false` are refused when unquoted: they mean different things
to different YAML readers, and `NO` silently becoming false is the trap.
"""

from __future__ import annotations

from typing import Final

# Plain scalars that are errors: anything a YAML 1.1 or 1.2 reader may take for a boolean, except
# the two canonical spellings.
AMBIGUOUS_BOOLEANS: Final = frozenset(
    "y Y yes Yes YES n N no No NO on On ON off Off OFF True TRUE False FALSE".split()
)


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
