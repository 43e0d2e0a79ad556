"""`audit log` on the driver's tuples, written a batch at a time (apply/audit_log.py,
render/streamed.py), against the path it replaced: SQLAlchemy rows (`audit.iter_events`), one
`json_text` document of the list, one `printable` line per event. Awkward values on all three
backends, several batches, every filter: the same bytes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from userctl.apply import audit
from userctl.clock import naive_utc
from userctl.db.tables import audit_events
from userctl.printable import json_text, printable

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)

# Values each column cycles through: non-ASCII, what printable escapes (ESC, the bidi override,
# the line separator, NEXT LINE, a blank letter, DEL, an astral emoji), quotes and backslashes.
TEXTS = [
    "ana@acme.co",
    "ñandú ✓ Zoë",
    "esc\x1b[2Jclear",
    "bidi\u202eevil",
    "line\u2028sep\x85next",
    "blank\u3164letter",
    'quote" back\\slash /',
    "del\x7fand\ttab",
    "astral 😀 𝔘",
]
# Records as stored (canonical JSON, or not): nested, 20-digit and 64-bit-edge numbers (orjson
# reads beyond 64 bits as a float), floats json and orjson write differently, empty containers,
# hidden characters, escapes of astral characters.
RECORDS: list[str | None] = [
    None,
    '{"first_name":"Ana"}',
    '{"n":99999999999999999999}',
    '{"n":18446744073709551615,"m":-9223372036854775808}',
    '{"f":1e-07,"g":1.0,"h":1e+16}',
    '{"a":{},"b":[],"c":[1,{"d":null,"e":true,"f":false}]}',
    json.dumps({"name": "esc\x1b bidi\u202e sep\u2028 ñ 😀"}, ensure_ascii=False),
    '{"s":"\\ud83d\\ude00 \\u0000 \\"q\\""}',
    '"a bare string"',
    "[1,2,3]",
]


def _insert(engine: Engine, org_id: int, count: int) -> None:
    rows: list[dict[str, Any]] = []
    for seq in range(1, count + 1):
        text = TEXTS[seq % len(TEXTS)]
        rows.append(
            {
                "organization_id": org_id,
                "seq": seq,
                # Times a second apart in groups, with and without microseconds.
                "created_at": T0 + dt.timedelta(hours=seq // 4, microseconds=seq % 3 * 250_001),
                "operator": "ana@acme.co" if seq % 3 else f"Bob{seq % 2}@Acme.co",
                "verified_by": TEXTS[(seq + 1) % len(TEXTS)],
                "operator_verified": (None, True, False)[seq % 3],
                "plan_digest": None if seq % 4 == 0 else "sha256:" + "ab" * 32,
                "action": ("user.update", "assignment.assign", "role.update")[seq % 3],
                "address": (
                    'user["bob1@acme.co"]'
                    if seq % 5 == 0
                    else 'assignment["bob1@acme.co" -> "ops_%"]'
                    if seq % 7 == 0
                    else f'user["{text}"]'
                ),
                "before": RECORDS[seq % len(RECORDS)],
                "after": RECORDS[(seq * 3) % len(RECORDS)],
                "prev_hash": "0" * 64,
                "hash": f"{seq:064x}",
                "hmac": None if seq % 2 else "f" * 64,
                "reason": (None, "", "quarterly review", text)[seq % 4],
                "refers_to": seq - 1 if seq % 6 == 0 else None,
            }
        )
    with engine.begin() as conn:
        conn.execute(sa.insert(audit_events), rows)


def _old_json(engine: Engine, org_id: int, **filters: Any) -> str:
    with engine.connect() as conn:
        events = list(audit.iter_events(conn, org_id, **filters))
    return "[]\n" if not events else json_text(events)


def _old_text(engine: Engine, org_id: int, **filters: Any) -> str:
    lines = ["TIME  OPERATOR  VERIFIED BY  ACTION  ADDRESS  [FOLLOWS #EVENT]  [REASON]"]
    with engine.connect() as conn:
        for e in audit.iter_events(conn, org_id, **filters):
            extra = ([f"(follows #{e['refers_to']})"] if e["refers_to"] is not None else []) + (
                [f"reason: {e['reason']}"] if e["reason"] else []
            )
            fields = (e["time"], e["operator"], e["verified_by"], e["action"], e["address"])
            lines.append(printable("  ".join((*fields, *extra))))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "options, filters",
    [
        ((), {}),
        (("--user", "BOB1@acme.co"), {"user": "BOB1@acme.co"}),
        (("--since", "2026-03-01T14:00:00Z"), {"since": dt.datetime(2026, 3, 1, 14)}),
        (("--user", "nobody@acme.co"), {"user": "nobody@acme.co"}),
    ],
    ids=["all", "user", "since", "none"],
)
def test_audit_log_writes_the_old_paths_bytes(
    engine: Engine, factory, runner, monkeypatch, options, filters
) -> None:  # type: ignore[no-untyped-def]
    """Several batches (VERIFY_BATCH made small), awkward values in every column, each filter:
    the JSON and the text are, byte for byte, what the SQLAlchemy rows gave."""
    monkeypatch.setattr(audit, "VERIFY_BATCH", 7)
    org = factory.org()
    _insert(engine, org, 40)
    if "since" in filters:
        filters = {"since": naive_utc(filters["since"].replace(tzinfo=dt.timezone.utc))}
    want_json = _old_json(engine, org, **filters)
    want_text = _old_text(engine, org, **filters)
    if not filters:
        # The data reached every awkward case: the escapes, both JSON writers, no event twice.
        assert "\\u202e" in want_json and "\\x1b" in want_text and "1e-07" in want_json
        assert "99999999999999999999" in want_json and "(follows #5)" in want_text
    got_json = runner("audit", "log", "--format", "json", *options)
    assert got_json.exit_code == 0, got_json.output
    assert got_json.stdout_bytes == want_json.encode()
    got_text = runner("audit", "log", *options)
    assert got_text.exit_code == 0, got_text.output
    assert got_text.stdout_bytes == want_text.encode()


# JSON values as stored records may hold them: the ints and floats orjson reads otherwise than
# json (beyond 64 bits: a float), escaped lone surrogates, nesting, any character.
_record_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(st.characters(), max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(_record_values, st.booleans())
@example({"n": 99999999999999999999, "m": -(2**63) - 1}, False)
@example({"s": "\ud800"}, True)
@example(float("nan"), False)
def test_a_record_is_read_as_json_reads_it(value: Any, ascii_only: bool) -> None:
    """The record (orjson where sure, json otherwise) is json.loads's value, type for type, and
    the batch stays plain only when json.dumps and orjson would write it alike (plain_data)."""
    from userctl.apply.audit_log import _record
    from userctl.canonical import orjson_exact as plain_data

    text = json.dumps(value, ensure_ascii=ascii_only)
    plain = [True]
    got = _record(text, plain)
    want = json.loads(text)
    assert repr(got) == repr(want)
    assert plain[0] == plain_data(want)
