"""plan.parse_address reads what the address functions write, and reads any other text exactly as
json.loads reads its quoted part (apply parses every precondition's address with it, and a forged
plan may hold any text there)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from userctl.plan import (
    bank_account_address,
    organization_address,
    parse_address,
    role_address,
    user_address,
)

KINDS = {
    "user": user_address,
    "role": role_address,
    "bank_account": bank_account_address,
    "organization": organization_address,
}


@given(st.sampled_from(sorted(KINDS)), st.text())
def test_an_address_reads_back_as_its_kind_and_key(kind: str, key: str) -> None:
    assert parse_address(KINDS[kind](key)) == (kind, key)


def by_json(address: str) -> tuple[str, str] | None:
    """The reading by json.loads alone, as parse_address read every address before."""
    kind, bracket, rest = address.partition("[")
    if kind not in KINDS or not bracket or not rest.endswith('"]') or not rest.startswith('"'):
        return None
    try:
        key = json.loads(rest[:-1])
    except json.JSONDecodeError:
        return None
    return (kind, key) if isinstance(key, str) else None


@given(st.sampled_from(sorted(KINDS)), st.text(st.sampled_from('ab"\\\x00\x1f\u2028\ud800é ')))
def test_any_quoted_text_reads_as_json_reads_it(kind: str, inner: str) -> None:
    address = f'{kind}["{inner}"]'
    assert parse_address(address) == by_json(address)
