"""The chain's scan (userctl/chain.py) builds the usual event's payload in its own way (a dict in
canonical key order, no sort): it must accept exactly the events whose hash (and HMAC) is over
the canonical bytes of `hashed_fields`, the definition every stored chain was hashed with."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.test_canonical import int64, texts
from userctl import chain
from userctl.canonical import canonical_bytes

# As the drivers give them: text, or None where the column may be empty; 0/1 (or a bool, or any
# other small int a tinyint may hold) for operator_verified; ints at and beyond orjson's range,
# where it refuses and the json module writes. (No lone surrogate: no chain can hold one, its
# canonical bytes being UTF-8.)
wide_int = st.one_of(int64, st.integers(min_value=2**64, max_value=2**70), st.just(-(2**63) - 1))
maybe_text = st.one_of(st.none(), texts)
flags = st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, 2]))


def stored(fields: dict[str, Any], key: bytes | None) -> tuple[Any, ...]:
    """An event as the driver gives it, hashed (and MACed) over the canonical bytes."""
    payload = canonical_bytes(
        chain.hashed_fields(
            fields["organization_id"],
            1,
            chain.hashed_time(fields["time"]),
            fields["operator"],
            fields["verified_by"],
            fields["plan_digest"],
            fields["action"],
            fields["address"],
            fields["before"],
            fields["after"],
            chain.GENESIS,
            fields["operator_verified"],
            fields["reason"],
            fields["refers_to"],
        )
    )
    return (
        7,
        1,
        fields["time"],
        fields["operator"],
        fields["verified_by"],
        fields["operator_verified"],
        fields["plan_digest"],
        fields["action"],
        fields["address"],
        fields["before"],
        fields["after"],
        chain.GENESIS,
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
