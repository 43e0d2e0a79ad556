"""Each way a chain can be tampered with is reported with the same words by every path
`audit verify` has: the scan's fast bytes (`chain.Confirmer`: a write's shared fields encoded
once, orjson on a dict in key order for the rest) and the definition's (`chain.event_payload`,
forced here for every event), on the raw driver (db/thin.py, which only says where; in one batch
and in batches of two) and through SQLAlchemy (apply/audit.py, which words it), and by the CLI.
The scan (`chain.scan`) is the one statement of the conditions; it names the one that failed
(`Fault`), which the words follow."""

from __future__ import annotations

import datetime as dt
import hashlib
import types
from typing import Any, Callable

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.test_audit import T0, records
from userctl import chain
from userctl.apply import audit
from userctl.apply.audit import append_events, verify_chain
from userctl.db import thin
from userctl.db.tables import audit_events as events_t
from userctl.state import canonical_json

KEY = "k3y-for-the-faults"


def _row(conn: sa.Connection, seq: int) -> Any:
    return conn.execute(sa.select(events_t).where(events_t.c.seq == seq)).one()


def altered(conn: sa.Connection) -> None:
    conn.execute(
        events_t.update()
        .where(events_t.c.seq == 3)
        .values(after=canonical_json({"first_name": "Eve"}))
    )


def first_altered(conn: sa.Connection) -> None:
    conn.execute(events_t.update().where(events_t.c.seq == 1).values(address='user["x@a.co"]'))


def deleted(conn: sa.Connection) -> None:
    conn.execute(events_t.delete().where(events_t.c.seq == 2))


def first_deleted(conn: sa.Connection) -> None:
    conn.execute(events_t.delete().where(events_t.c.seq == 1))


def reordered(conn: sa.Connection) -> None:
    # Through a free seq: the unique key forbids a direct swap.
    conn.execute(events_t.update().where(events_t.c.seq == 2).values(seq=-2))
    conn.execute(events_t.update().where(events_t.c.seq == 3).values(seq=2))
    conn.execute(events_t.update().where(events_t.c.seq == -2).values(seq=3))


def inserted(conn: sa.Connection) -> None:
    """A forged event after #3, hashed over its own contents as an attacker without the key
    can; the later events move up one seq."""
    for seq in (5, 4):
        conn.execute(events_t.update().where(events_t.c.seq == seq).values(seq=seq + 1))
    third = _row(conn, 3)
    data = {
        **{c: getattr(third, c) for c in events_t.c.keys() if c != "id"},
        "seq": 4,
        "prev_hash": third.hash,
        "after": canonical_json({"first_name": "Forged"}),
    }
    data["hash"] = hashlib.sha256(audit._payload(data)).hexdigest()
    conn.execute(events_t.insert().values(**data))


def broken_link(conn: sa.Connection) -> None:
    conn.execute(events_t.update().where(events_t.c.seq == 3).values(prev_hash="0f" * 32))


def written_before(conn: sa.Connection) -> None:
    """The last event's row moved below every other id: its links and hash still hold."""
    lowest = conn.execute(sa.select(sa.func.min(events_t.c.id))).scalar_one()
    conn.execute(events_t.update().where(events_t.c.seq == 5).values(id=int(lowest) - 10))


def hmac_stripped(conn: sa.Connection) -> None:
    conn.execute(events_t.update().where(events_t.c.seq == 4).values(hmac=None))


def hmac_forged(conn: sa.Connection) -> None:
    conn.execute(events_t.update().where(events_t.c.seq == 2).values(hmac="ab" * 32))


# tamper, whether the chain is written with the key, the fault, the bad seq, words it holds
KINDS: list[tuple[Callable[[sa.Connection], None], bool, chain.Fault, int, str]] = [
    (altered, False, chain.HASH, 3, "was altered: its contents no longer match its hash"),
    (first_altered, False, chain.HASH, 1, "was altered: its contents no longer match its hash"),
    (deleted, False, chain.SEQ, 3, "event #2 is missing: the chain jumps from #1 to event #3"),
    (first_deleted, False, chain.SEQ, 2, "event #1 is missing: the chain jumps from the start"),
    (
        reordered,
        False,
        chain.LINK,
        2,
        "is out of order: it was written right after the event now at #3",
    ),
    (
        inserted,
        False,
        chain.LINK,
        5,
        "is out of order: it was written right after the event now at #3",
    ),
    (broken_link, False, chain.LINK, 3, "does not chain onto event #2: its prev_hash differs"),
    (written_before, False, chain.ORDER, 5, "is out of order: it was written before event #4"),
    (hmac_stripped, True, chain.NO_HMAC, 4, "carries no HMAC although USERCTL_AUDIT_KEY is set"),
    (hmac_forged, True, chain.HMAC, 2, "fails its HMAC check"),
]


def _definition_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan's fast bytes refused for every event: the definition's are used throughout."""

    def refused(*args: Any, **kwargs: Any) -> bytes:
        raise TypeError("the fast bytes are off")

    monkeypatch.setattr(
        chain, "orjson", types.SimpleNamespace(dumps=refused, Fragment=orjson.Fragment)
    )


@pytest.mark.parametrize(
    ("tamper", "keyed", "fault", "bad_seq", "words"), KINDS, ids=[k[0].__name__ for k in KINDS]
)
def test_each_tampering_is_worded_alike_by_every_path(
    engine: Engine,
    factory: Any,
    runner: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[sa.Connection], None],
    keyed: bool,
    fault: chain.Fault,
    bad_seq: int,
    words: str,
) -> None:
    if keyed:
        monkeypatch.setenv(audit.ENV_KEY, KEY)
    else:
        monkeypatch.delenv(audit.ENV_KEY, raising=False)
    org = factory.org()
    with engine.begin() as conn:
        append_events(conn, org, records(2), T0)
    with engine.begin() as conn:
        append_events(conn, org, records(3, start=3), T0 + dt.timedelta(minutes=1))
    with engine.begin() as conn:
        tamper(conn)
    key = chain.audit_key()

    with engine.connect() as conn:
        fast = verify_chain(conn, org, batch_size=2)
        scanned = audit._scan(conn, org, None, key, 2)
    assert scanned.bad is not None and scanned.bad.fault == fault
    assert not fast.ok and fast.bad_seq == bad_seq
    assert words in (fast.problem or ""), fast.problem
    assert fast.problem is not None and fast.problem.startswith("event #")

    # The raw driver's scan finds the same event, the same one before it, the same fault: in
    # one batch, and two events a batch (the first batch, past it, the last).
    assert thin.scan_chain(db_url, "acme-payments", None, key) == ("acme-payments", scanned)
    with monkeypatch.context() as small:
        small.setattr(chain, "VERIFY_BATCH", 2)
        assert thin.scan_chain(db_url, "acme-payments", None, key) == ("acme-payments", scanned)

    # The CLI: the same words, whichever path read the chain.
    result = runner("audit", "verify")
    assert result.exit_code == 4
    assert f"audit chain of acme-payments is broken: {fast.problem}" in result.stderr

    # The definition's bytes for every event: the same result, word for word.
    _definition_only(monkeypatch)
    with engine.connect() as conn:
        slow = verify_chain(conn, org, batch_size=2)
        assert audit._scan(conn, org, None, key, 2) == scanned
    assert slow == fast
    assert runner("audit", "verify").stderr == result.stderr


def test_the_definition_alone_finds_an_intact_chain_intact(
    engine: Engine, factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the fast bytes, an intact chain (with HMACs) still verifies, head and all: they
    only stand in for the definition."""
    monkeypatch.setenv(audit.ENV_KEY, KEY)
    org = factory.org()
    with engine.begin() as conn:
        head = append_events(conn, org, records(5), T0)
    _definition_only(monkeypatch)
    with engine.connect() as conn:
        assert verify_chain(conn, org, head, batch_size=2) == audit.VerifyResult(
            5, head, True, after_head=0
        )
