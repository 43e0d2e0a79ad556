"""The canonical JSON (src/userctl/canonical.py) is json.dumps(sort_keys, compact separators,
ensure_ascii=False) in UTF-8, byte for byte, whichever encoder writes it: every stored audit
chain, saved plan digest and signed checkpoint was hashed over those bytes. orjson may write
them only where it provably writes the same; everything else goes to the json module."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import json
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from userctl import canonical
from userctl.canonical import canonical_bytes, canonical_json


def exact(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Every code point but the lone surrogates (which neither encoder can put in UTF-8), weighted
# towards the places where the two could part: controls, quotes and backslashes, DEL, the
# characters JavaScript treats as line ends, the top of the BMP (private use from U+E000, the
# specials up to U+FFFF, which UTF-16 would sort after the astral planes) and the astral planes,
# private-use planes 15 and 16 included.
_chars = st.one_of(
    st.characters(codec="utf-8"),
    st.characters(min_codepoint=0, max_codepoint=0x7F),
    st.sampled_from(['"', "\\", "/", "\x7f", "\u2028", "\u2029", "\ufeff", "\ufffd"]),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
    st.characters(min_codepoint=0xF0000, max_codepoint=0x10FFFF),
)
texts = st.text(_chars, max_size=12)
# orjson's range: a 64-bit int, signed or unsigned; beyond it orjson refuses, json writes.
int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = st.one_of(st.none(), st.booleans(), int64, texts)
plain = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(texts, inner, max_size=6),
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(plain)
@example({"\uffff": 1, "\U00010000": 2, "\ue000": 3, "a": 4, "": 5, "\U0010fffd": 6})
@example({"\ud7ff": 0, "\ue000": 0, "\U0001f600": 0, "é": 0, "e": 0, "E": 0})
@example([2**63 - 1, -(2**63), 2**64 - 1, 0, -1, True, False, None])
@example('\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f"\\/\u2028\u2029')
def test_orjson_writes_the_json_modules_bytes_for_plain_data(data: Any) -> None:
    """The ground orjson is trusted on, proved on orjson itself (not only through
    canonical_bytes, which would also pass by falling back to json)."""
    assert orjson.dumps(data, option=orjson.OPT_SORT_KEYS) == exact(data).encode("utf-8")
    assert canonical._fast(data) is not None  # and the fast path takes it
    assert canonical_bytes(data) == exact(data).encode("utf-8")
    assert canonical_json(data) == exact(data)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(texts, st.one_of(scalars, st.integers()), max_size=16))
def test_a_flat_record_of_scalars_encodes_canonically(record: dict[str, Any]) -> None:
    """A flat record like an audit event's: ints beyond 64 bits included (the json module writes
    them)."""
    assert canonical_bytes(record) == exact(record).encode("utf-8")


# Beside plain data: what orjson writes differently (floats), refuses (big ints, non-str keys,
# deep nesting) or writes where json refuses (below). Each must come out as json writes it.
floats = st.floats(allow_nan=True, allow_infinity=True)
anything = st.recursive(
    st.one_of(scalars, st.integers(), floats),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(texts, inner, max_size=5),
        st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none()), inner, max_size=3),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(anything)
@example([1e-07, 1e16, 1e22, 5e-324, -0.0, 0.1 + 0.2, 1.7976931348623157e308])
@example({"n": float("nan"), "i": float("inf"), "m": float("-inf")})
@example({"big": 2**64, "small": -(2**63) - 1, "huge": 10**40})
@example({1: "one", 2: "two"})
@example({True: 1, None: 2})
def test_everything_else_is_written_as_the_json_module_writes_it(data: Any) -> None:
    try:
        expected = exact(data)
    except TypeError:  # keys of several types json cannot sort: the same error as before
        with pytest.raises(TypeError):
            canonical_bytes(data)
        return
    assert canonical_bytes(data) == expected.encode("utf-8")
    assert canonical_json(data) == expected


def test_floats_never_take_orjsons_spelling() -> None:
    # orjson writes these differently from json, or (NaN, the infinities) as null.
    for spelt in (1e-07, float("nan"), float("inf")):
        assert orjson.dumps(spelt) != exact(spelt).encode()
    for value in (1e-07, float("nan"), float("inf"), 1.5, [1, {"a": 2.5e-10}]):
        assert canonical._fast(value) is None
        assert canonical_bytes(value) == exact(value).encode()
    assert canonical_bytes({"x": 1e-07}) == b'{"x":1e-07}'
    assert canonical_bytes([float("nan")]) == b"[NaN]"


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [dt.datetime(2026, 1, 1), dt.date(2026, 1, 1), uuid.UUID(int=1), Colour.RED, Point(1)],
    ids=["datetime", "date", "uuid", "enum", "dataclass"],
)
def test_what_json_refuses_is_refused_as_before(value: Any) -> None:
    """orjson would write these; the canonical encoding never did, and still refuses them."""
    for data in (value, {"k": value}, [1, value]):
        with pytest.raises(TypeError):
            canonical_bytes(data)
        with pytest.raises(TypeError):
            canonical_json(data)


def test_subclasses_circular_and_deep_data_behave_as_before() -> None:
    ordered = collections.OrderedDict([("b", 1), ("a", Level.HIGH)])
    assert canonical_bytes(ordered) == exact(ordered).encode() == b'{"a":3,"b":1}'
    deep: Any = 0
    for _ in range(300):  # deeper than orjson's limit of 255
        deep = [deep]
    assert canonical_bytes(deep) == exact(deep).encode()
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        canonical_bytes(loop)


def test_a_lone_surrogate_fails_where_it_failed() -> None:
    # json writes it into the text; only encoding that text as UTF-8 fails.
    assert canonical_json({"a": "\ud800"}) == exact({"a": "\ud800"})
    with pytest.raises(UnicodeEncodeError):
        canonical_bytes({"a": "\ud800"})
