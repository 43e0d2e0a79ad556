"""The one canonical JSON (DESIGN §7 "Canonical JSON"): the bytes the plan digest, the audit
chain's hashes and HMACs, a precondition's record hash and a signed checkpoint's message are
computed over. They are frozen as `json.dumps(data, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` encoded in UTF-8 writes them: every stored chain and saved plan was hashed
over exactly these bytes, so the json module stays their definition.

orjson (with sorted keys) writes the same bytes for data made only of dicts, lists, tuples, str,
int, bool and None, several times faster; tests/core/test_canonical.py holds the two to byte
equality on generated data (unicode keys, astral and private-use, ints at the 64-bit edges). Off
that ground they part: orjson writes some floats differently (`1e-7` for `1e-07`, `null` for NaN
and the infinities), serialises what json refuses (datetimes, UUIDs, dataclasses, enums) and
refuses what json writes (ints beyond 64 bits, keys that are not str, lone surrogates, nesting
deeper than 255). So a value orjson refuses, or data holding anything but those exact types,
goes to the json module: the same bytes (or the same error) as before, only slower.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# The definition, built once (constructing an encoder per call was a fifth of hashing an event).
_EXACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_SORTED = orjson.OPT_SORT_KEYS
# Exact types only: a subclass (an IntEnum, a str subclass with its own ordering, an OrderedDict)
# is the json module's to write.
_SCALARS = frozenset({str, int, bool, type(None)})
_CONTAINERS = frozenset({dict, list, tuple})
_ALLOWED = _SCALARS | _CONTAINERS


def canonical_json(data: Any) -> str:
    """The canonical encoding as text (what json.dumps returns: a lone surrogate stays in it)."""
    fast = _fast(data)
    return _EXACT.encode(data) if fast is None else fast.decode("utf-8")


def canonical_bytes(data: Any) -> bytes:
    """The canonical encoding as the UTF-8 bytes that are hashed."""
    fast = _fast(data)
    return _EXACT.encode(data).encode("utf-8") if fast is None else fast


def _fast(data: Any) -> bytes | None:
    """orjson's bytes when they are the canonical ones, else None. orjson first: it stops on a
    cycle (at its depth limit) where the walk below would not."""
    try:
        encoded = orjson.dumps(data, option=_SORTED)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return encoded if orjson_exact(data) else None


def orjson_exact(data: Any) -> bool:
    """Whether `data` holds only dicts, lists and tuples of str, int, bool and None (exact types;
    dict keys orjson has already required to be str): then orjson writes json's bytes for it."""
    if type(data) in _SCALARS:
        return True
    if type(data) not in _CONTAINERS:
        return False
    stack = [data]
    while stack:
        container = stack.pop()
        values = container.values() if type(container) is dict else container
        # The set of the values' types, gathered in C: most containers (a record's fields) hold
        # scalars only and are done in one test.
        kinds = set(map(type, values))
        if kinds <= _SCALARS:
            continue
        if not kinds <= _ALLOWED:
            return False
        stack.extend(value for value in values if type(value) in _CONTAINERS)
    return True
