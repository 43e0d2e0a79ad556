"""render/streamed.py: a document written a batch at a time is the document written whole:
`json_array` against `json_text` of the list (orjson where the batch is plain, json otherwise),
`audit_log_text` against one `printable` line per event."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from userctl.canonical import orjson_exact as plain_data
from userctl.printable import json_text, printable
from userctl.render.streamed import LOG_HEADER, audit_log_text, json_array

# Controls, quotes, backslashes, DEL, what printable escapes (bidi, separators, NEXT LINE, a blank
# letter), the astral planes and the lone surrogates (json writes them, orjson refuses).
_chars = st.one_of(
    st.characters(),
    st.characters(min_codepoint=0, max_codepoint=0x9F),
    st.sampled_from(['"', "\\", "/", "\x7f", "\u2028", "\u202e", "\x85", "\u3164", "\ud800"]),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
)
texts = st.text(_chars, max_size=10)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    # 20 digits and beyond: json writes them, orjson refuses.
    st.integers(min_value=10**19, max_value=10**25),
    # Floats json and orjson write differently (1e-07 / 1e-7).
    st.sampled_from([1e-07, 1e16, 0.1, -0.0, 1.5]),
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=5)),
    max_leaves=25,
)
batches = st.lists(st.lists(values, max_size=4), max_size=4)


def whole(batches: list[list[Any]]) -> str:
    items = [item for batch in batches for item in batch]
    return json_text(items)


@settings(max_examples=400, deadline=None)
@given(batches)
@example([[{"a": {}, "b": [], "c": "esc\x1b \u202e \u2028"}], [], [[1, {"d": None}]]])
@example([[{"n": 99999999999999999999}], [{"f": 1e-07}], [{"s": "\ud800"}]])
@example([])
def test_json_array_is_json_text_of_the_whole_list(batches: list[list[Any]]) -> None:
    pieces = list(json_array((batch, plain_data(batch)) for batch in batches))
    assert "".join(pieces) == whole(batches)
    # One piece per non-empty batch, and the closing one.
    assert len(pieces) == sum(1 for b in batches if b) + 1


event = st.fixed_dictionaries(
    {
        "time": st.just("2026-03-01T12:00:00Z"),
        "operator": texts,
        "verified_by": texts,
        "action": texts,
        "address": texts,
        "refers_to": st.one_of(st.none(), st.integers(min_value=1, max_value=10**20)),
        "reason": st.one_of(st.none(), texts),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(event, max_size=3), max_size=3))
def test_audit_log_text_is_one_printable_line_per_event(batches: list[list[Any]]) -> None:
    lines = [LOG_HEADER]
    for e in (e for batch in batches for e in batch):
        extra = ([f"(follows #{e['refers_to']})"] if e["refers_to"] is not None else []) + (
            [f"reason: {e['reason']}"] if e["reason"] else []
        )
        fields = (e["time"], e["operator"], e["verified_by"], e["action"], e["address"])
        lines.append(printable("  ".join((*fields, *extra))))
    got = "".join(audit_log_text((batch, True) for batch in batches))
    assert got == "\n".join(lines) + "\n"


@settings(max_examples=500, deadline=None)
@given(st.text(st.one_of(_chars, st.sampled_from([" ", "\t", "\n", "\r", "\x0b", "\x0c"]))))
@example(" a")
@example("a  b")
@example("")
def test_a_table_cell_of_text_folds_its_layout_as_before(text: str) -> None:
    """render/tables._cell's shortcut for a printable text is the fold it skips."""
    import re

    from userctl.render.tables import _cell

    folded = " ".join(re.split(r"[ \t\n\r\x0b\x0c]+", text)).strip(" ") if text != "" else "-"
    assert _cell(text) == folded
