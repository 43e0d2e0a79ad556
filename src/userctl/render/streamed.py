"""Documents too long to hold, written a batch at a time: `audit log` of a million events as
JSON or text. Each batch is one piece of text (one write, not one per event), and the pieces
together are, byte for byte, what the whole document would be: `json_text(list(events))`, or the
header and one `printable` line per event.

orjson writes json.dumps(indent=2, ensure_ascii=False)'s bytes, several times faster, for data made
only of dicts, lists, str, int, bool and None (the ground userctl.canonical proves it on; its
indentation and empty containers are json's too, tests/core/test_streamed_json.py holds them to it).
A batch off that ground (a float), or one orjson refuses (an int beyond 64 bits, a lone
surrogate), is written by the json module, as before."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

import orjson

from userctl.printable import printable, visible_json

# What each column of the text log is (the JSON names every field itself).
LOG_HEADER = "TIME  OPERATOR  VERIFIED BY  ACTION  ADDRESS  [FOLLOWS #EVENT]  [REASON]"


def json_array(batches: Iterable[tuple[list[Any], bool]]) -> Iterator[str]:
    """`json_text(items)` of every item of `batches`, in order, as one piece per batch. Each
    batch is (items, plain): plain when the caller knows every value to be a dict or list of str,
    int, bool and None (its reader's types: a walk over them would cost as much as writing them)."""
    first = True
    for batch, plain in batches:
        if not batch:
            continue
        yield ("[\n" if first else ",\n") + _items(batch, plain)
        first = False
    yield "[]\n" if first else "\n]\n"


def _items(batch: list[Any], plain: bool) -> str:
    """The items of `json_text(batch)`, without its brackets: each indented as an array's item,
    separated by ",\\n", hidden characters escaped (visible_json works character by character,
    so a batch comes out as its items would one by one)."""
    text: str | None = None
    if plain:
        try:
            text = orjson.dumps(batch, option=orjson.OPT_INDENT_2).decode("utf-8")
        except (TypeError, orjson.JSONEncodeError):
            text = None
    if text is None:
        text = json.dumps(batch, indent=2, ensure_ascii=False)
    if not text.isascii():
        # Line by line: a text holding one hidden character is searched match by match, and
        # every line feed of the layout is one (visible_json leaves them as they are).
        text = "\n".join(map(visible_json, text.split("\n")))
    else:
        text = visible_json(text)
    # "[\n" ... "\n]": the batch is not empty, so both are there.
    return text[2:-2]


def audit_log_text(batches: Iterable[tuple[list[dict[str, Any]], bool]]) -> Iterator[str]:
    """`audit log`'s text: the header, then per event its time, operator, how it was verified,
    action, address, the event it follows from and the reason (when there are), hidden characters
    escaped; one piece per batch."""
    yield LOG_HEADER + "\n"
    for batch, _plain in batches:
        lines = []
        for e in batch:
            line = "  ".join(
                (e["time"], e["operator"], e["verified_by"], e["action"], e["address"])
            )
            if e["refers_to"] is not None:
                line += f"  (follows #{e['refers_to']})"
            if e["reason"]:
                line += f"  reason: {e['reason']}"
            # Line by line: printable would write the line feed between them as an escape.
            lines.append(printable(line) + "\n")
        yield "".join(lines)
