"""The chain's scan (userctl/chain.py) builds the usual event's payload in its own way
(`chain.Confirmer`: the fields a write shares encoded once and spliced, a dict in canonical key
order for the rest, no sort): it must accept exactly the events whose hash (and HMAC) is over the
canonical bytes of `hashed_fields`, the definition every stored chain was hashed with."""

from __future__ import annotations

import gc
import hashlib
from typing import Any, Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.test_canonical import int64, plain, texts
from tests.core.test_hexdigest import accelerated
from userctl import chain, hexdigest
from userctl.canonical import canonical_bytes, canonical_json

# As the drivers give them: text, or None where the column may be empty; 0/1 (or a bool, or any
# other small int a tinyint may hold) for operator_verified; ints at and beyond orjson's range,
# where it refuses and the json module writes. (No lone surrogate: no chain can hold one, its
# canonical bytes being UTF-8.)
wide_int = st.one_of(int64, st.integers(min_value=2**64, max_value=2**70), st.just(-(2**63) - 1))
maybe_text = st.one_of(st.none(), texts)
# The flags the drivers give for the ones userctl writes: bools, or 0/1 (SQLite, MariaDB).
flags = st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1]))


@pytest.fixture(scope="module", params=["C", "hashlib"], autouse=True)
def _hash_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here runs with the confirmer's hash test in C (userctl._sha256) and with
    hashlib's, as an install without the extension has it."""
    if request.param == "C":
        accelerated()
        yield
        return
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(hexdigest, "matches", hexdigest.matches_by_hashlib)
        yield


def stored(
    fields: dict[str, Any], key: bytes | None, seq: int = 1, prev: str = chain.GENESIS
) -> tuple[Any, ...]:
    """An event as the driver gives it (row id 6 + seq), hashed (and MACed) over the canonical
    bytes."""
    payload = canonical_bytes(
        chain.hashed_fields(
            fields["organization_id"],
            seq,
            chain.hashed_time(fields["time"]),
            fields["operator"],
            fields["verified_by"],
            fields["plan_digest"],
            fields["action"],
            fields["address"],
            fields["before"],
            fields["after"],
            prev,
            fields["operator_verified"],
            fields["reason"],
            fields["refers_to"],
        )
    )
    return (
        6 + seq,
        seq,
        fields["time"],
        fields["operator"],
        fields["verified_by"],
        fields["operator_verified"],
        fields["plan_digest"],
        fields["action"],
        fields["address"],
        fields["before"],
        fields["after"],
        prev,
        hashlib.sha256(payload).hexdigest(),
        None if key is None else chain.event_hmac(key, payload),
        fields["reason"],
        fields["refers_to"],
    )


events = st.fixed_dictionaries(
    {
        "organization_id": wide_int,
        "time": st.datetimes(),
        "operator": texts,
        "verified_by": texts,
        "plan_digest": maybe_text,
        "action": texts,
        "address": texts,
        "before": maybe_text,
        "after": st.one_of(st.none(), texts),
        "operator_verified": flags,
        "reason": st.one_of(st.none(), st.none(), texts),
        "refers_to": st.one_of(st.none(), st.none(), wide_int),
    }
)


@settings(max_examples=500, deadline=None)
@given(events, st.one_of(st.none(), st.just(b"k3y")))
@example(
    {
        "organization_id": 1,
        "time": __import__("datetime").datetime(2026, 1, 2, 3, 4, 5, 60),
        "operator": "ana@acme.co",
        "verified_by": "totp",
        "plan_digest": "sha256:" + "ab" * 32,
        "action": "user.update",
        "address": 'user["ñandú@acme.co"]',
        "before": '{"first_name":"Old"}',
        "after": '{"first_name":"New","note":"✓"}',
        "operator_verified": 0,
        "reason": None,
        "refers_to": None,
    },
    None,
)
def test_the_scan_accepts_an_event_hashed_over_the_canonical_bytes(
    fields: dict[str, Any], key: bytes | None
) -> None:
    row = stored(fields, key)
    scanned = chain.scan([[row]], fields["organization_id"], row[12], key, None)
    assert scanned == chain.Scanned(1, row[12], 1, None)


@settings(max_examples=200, deadline=None)
@given(events)
def test_and_refuses_one_whose_stored_field_differs_from_what_was_hashed(
    fields: dict[str, Any],
) -> None:
    row = list(stored(fields, None))
    row[8] = (row[8] or "") + "x"  # the address, after hashing
    assert chain.scan([[tuple(row)]], fields["organization_id"], None, None, None).bad == (
        7,
        None,
        chain.HASH,
    )


# A stored value that is not what userctl wrote, though int() or bool() would take it for it: the
# value shown is not the one hashed, so the event is altered (the definition and the confirmer).
@pytest.mark.parametrize(
    ("index", "value", "fault"),
    [
        (5, 2, chain.HASH),  # operator_verified
        (5, 1.0, chain.HASH),
        (5, "1", chain.HASH),
        (15, 1.0, chain.HASH),  # refers_to
        (15, 1.25, chain.HASH),
        (15, "1", chain.HASH),
        (15, True, chain.HASH),
        (1, 1.0, chain.SEQ),  # seq
        (1, True, chain.SEQ),
    ],
)
def test_a_value_equal_to_the_hashed_one_only_once_converted_is_altered(
    index: int, value: Any, fault: str
) -> None:
    fields = {
        "organization_id": 7,
        "time": __import__("datetime").datetime(2026, 1, 2, 3, 4, 5),
        "operator": "ana@acme.co",
        "verified_by": "totp",
        "plan_digest": None,
        "action": "user.delete",
        "address": 'user["bo@acme.co"]',
        "before": '{"first_name":"Bo"}',
        "after": None,
        "operator_verified": 1,
        "reason": None,
        "refers_to": 1,
    }
    row = stored(fields, None)
    assert chain.scan([[row]], 7, None, None, None).bad is None  # as written: intact
    # The same event twice over: the confirmer's run is encoded from the first one's values.
    second = stored({**fields, "action": "user.create"}, None, 2, row[12])
    assert chain.scan([[row, second]], 7, None, None, None).bad is None
    tampered = tuple(value if i == index else v for i, v in enumerate(row))
    assert chain.scan([[tampered]], 7, None, None, None).bad == (7, None, fault)
    if index != 1:  # a seq is the second event's own (2)
        second_tampered = tuple(value if i == index else v for i, v in enumerate(second))
        assert chain.scan([[row, second_tampered]], 7, None, None, None).bad == (8, 7, fault)


# --- The confirmer's bytes (chain.Confirmer): equal to the definition's for every event -------

# A chain's events share runs (one write: its operator, plan, time) and leave them; the values of
# one run may also come back in another type a driver gives (True, then 1).
_run_fields = st.fixed_dictionaries(
    {
        "time": st.one_of(
            st.datetimes(), st.just(__import__("datetime").datetime(2026, 1, 2, 3, 4, 5))
        ),
        "operator": texts,
        "verified_by": texts,
        "plan_digest": maybe_text,
        "operator_verified": flags,
    }
)
# Nested JSON as `before`/`after` hold it: the canonical text of a record, quotes and all.
_record_text = plain.map(canonical_json)


@st.composite
def chains(draw: st.DrawFn) -> tuple[int, list[dict[str, Any]]]:
    """An organization and a few events, each from one of two runs, with its own action,
    address, before/after (text or nested JSON), reason and earlier event."""
    runs = [draw(_run_fields), draw(_run_fields)]
    events = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        run = dict(runs[draw(st.integers(min_value=0, max_value=1))])
        if run["operator_verified"] in (True, 1) and draw(st.booleans()):
            run["operator_verified"] = 1 if run["operator_verified"] is True else True
        events.append(
            {
                **run,
                "action": draw(texts),
                "address": draw(texts),
                "before": draw(st.one_of(st.none(), texts, _record_text)),
                "after": draw(st.one_of(st.none(), texts, _record_text)),
                "reason": draw(st.one_of(st.none(), st.none(), texts)),
                "refers_to": draw(st.one_of(st.none(), st.none(), wide_int)),
            }
        )
    return draw(wide_int), events


def chained(org: int, events: list[dict[str, Any]], key: bytes | None) -> list[tuple[Any, ...]]:
    """The events as the driver gives them, each hashed (and MACed) over the definition's bytes
    (`chain.event_payload`) and chained onto the one before."""
    rows, prev = [], chain.GENESIS
    for seq, e in enumerate(events, start=1):
        payload = chain.event_payload(
            org,
            seq,
            chain.hashed_time(e["time"]),
            e["operator"],
            e["verified_by"],
            e["plan_digest"],
            e["action"],
            e["address"],
            e["before"],
            e["after"],
            prev,
            e["operator_verified"],
            e["reason"],
            e["refers_to"],
        )
        hash_ = hashlib.sha256(payload).hexdigest()
        rows.append(
            (
                10 * seq,
                seq,
                e["time"],
                e["operator"],
                e["verified_by"],
                e["operator_verified"],
                e["plan_digest"],
                e["action"],
                e["address"],
                e["before"],
                e["after"],
                prev,
                hash_,
                None if key is None else chain.event_hmac(key, payload),
                e["reason"],
                e["refers_to"],
            )
        )
        prev = hash_
    return rows


def _orjson_writes(value: Any) -> bool:
    return value is None or -(2**63) <= value < 2**64


@settings(max_examples=400, deadline=None)
@given(chains(), st.one_of(st.none(), st.just(b"k3y")))
def test_the_confirmers_bytes_are_the_definitions(
    chain_: tuple[int, list[dict[str, Any]]], key: bytes | None
) -> None:
    """Every event the confirmer builds bytes for, it builds the definition's: it confirms each
    one hashed over them, up to the first holding an earlier event's number beyond orjson's
    range, which it leaves to the definition. The whole scan finds the chain intact."""
    org, events = chain_
    rows = chained(org, events, key)
    confirmer = chain.Confirmer(org, key, None, None)
    expected = next(
        (i for i, e in enumerate(events) if not _orjson_writes(e["refers_to"])), len(events)
    )
    assert confirmer.confirm(rows, 0) == expected
    scanned = chain.scan([rows[:3], rows[3:]] if len(rows) > 3 else [rows], org, None, key, None)
    assert scanned == chain.Scanned(len(rows), rows[-1][12], None, None)


_RUN_COLUMNS = {
    "time": 2,
    "operator": 3,
    "verified_by": 4,
    "operator_verified": 5,
    "plan_digest": 6,
}


def _other(column: str, value: Any) -> Any:
    """A stored value of `column` whose hashed bytes differ from `value`'s."""
    if column == "time":
        return value + __import__("datetime").timedelta(microseconds=1)
    if column == "operator_verified":
        return True if value is None else not value
    return "x" if value is None else value + "x"


@settings(max_examples=300, deadline=None)
@given(chains(), st.sampled_from(sorted(_RUN_COLUMNS)), st.data())
def test_a_run_is_never_spliced_into_an_event_that_left_it(
    chain_: tuple[int, list[dict[str, Any]]], column: str, data: st.DataObject
) -> None:
    """An event whose operator, verification, plan or time was changed after hashing is found
    altered where it stands (HASH), whether or not the events before it shared the run it was
    hashed in: the confirmer never writes an event with the encoding of a run it left."""
    org, events = chain_
    rows = [list(r) for r in chained(org, events, None)]
    at = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
    changed = _other(column, rows[at][_RUN_COLUMNS[column]])
    if column == "time" and changed.year > 9999:  # pragma: no cover - the last datetime
        return
    rows[at][_RUN_COLUMNS[column]] = changed
    scanned = chain.scan([[tuple(r) for r in rows]], org, None, None, None)
    assert scanned.bad == (10 * (at + 1), None if at == 0 else 10 * at, chain.HASH)


def test_the_scan_pauses_the_collector_while_it_reads() -> None:
    """A million events' rows and payloads form no cycles: the collector is paused while the
    batches are read and judged (a fetch happens as the scan pulls the next batch), and enabled
    again after."""
    rows = chained(1, [_plain_event("a"), _plain_event("b")], None)
    seen: list[bool] = []

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        for row in rows:
            seen.append(gc.isenabled())
            yield [row]

    assert gc.isenabled()
    assert chain.scan(batches(), 1, None, None, None).bad is None
    assert seen == [False, False] and gc.isenabled()


def _plain_event(action: str) -> dict[str, Any]:
    return {
        "time": __import__("datetime").datetime(2026, 1, 2, 3, 4, 5),
        "operator": "ana@acme.co",
        "verified_by": "totp",
        "plan_digest": None,
        "operator_verified": True,
        "action": action,
        "address": 'user["b@acme.co"]',
        "before": None,
        "after": '{"first_name":"B"}',
        "reason": None,
        "refers_to": None,
    }
