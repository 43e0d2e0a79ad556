"""The audit trail (DESIGN §4 "Audit"): append-only events, hash-chained per organization.

Each event stores the hash of the previous one (`prev_hash`; the first event of an organization
chains onto GENESIS) and its own `hash`, a SHA-256 over the canonical JSON of every stored field
— its `seq`, time and `prev_hash` included — so editing, deleting or reordering a row breaks the
chain. Anyone with write access could rebuild a bare hash chain after an edit, so when
USERCTL_AUDIT_KEY is set each event also carries an HMAC of the same bytes, which they cannot
forge without the key. Truncating the tail leaves a valid shorter chain: only looking for a head
recorded earlier (`apply` prints it; `audit verify --head`) detects that.

These functions work inside the caller's transaction and never commit. Appending assumes the
caller holds the organization lock (`db.engine.lock_organization`): reading the last event and
inserting after it is then race-free; the unique (organization_id, seq) key turns any writer
that skipped the lock into an error rather than a forked chain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import types
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from sqlalchemy import Connection, Row, Select, or_, select, type_coerce
from sqlalchemy.types import NullType

from userctl.canonical import canonical_bytes, canonical_json

# The chain's arithmetic lives in userctl/chain.py (no SQLAlchemy); its names are this module's
# too, as callers have always imported them.
from userctl.chain import ENV_KEY as ENV_KEY
from userctl.chain import GENESIS as GENESIS
from userctl.chain import (
    HASH,
    LINK,
    NO_HMAC,
    ORDER,
    SCANNED,
    SEQ,
    Fault,
    Scanned,
    event_payload,
    hashed_fields,
    hashed_time,
    is_stored_text,
    is_stored_text_or_none,
    scan,
    stored_flag,
    stored_int,
    verified,
)
from userctl.chain import VERIFY_BATCH as VERIFY_BATCH
from userctl.chain import VerifyResult as VerifyResult
from userctl.chain import audit_key as audit_key
from userctl.chain import event_hmac as _hmac
from userctl.clock import iso_z, naive_utc

# The Core table, not the ORM model: `audit verify` and `audit log` then never import
# sqlalchemy.orm.
from userctl.db.driver import column_reader, driver_batches, insert_many
from userctl.db.snapshot import audit_chain_query
from userctl.db.tables import audit_events as _table
from userctl.errors import AuditChainBroken
from userctl.plan import assignment_address, user_address
from userctl.state import email_key

# The columns append_events writes, in the order of its tuples: those a scan reads, the
# organization in place of the id.
_INSERTED = ("organization_id", *SCANNED[1:])


class AuditRecord(NamedTuple):
    """One event to append. `before`/`after` are plain JSON-able data (never secrets or codes);
    `verified_by` says how the change was confirmed (totp, approval:EMAIL, both joined by "+",
    none, init); `operator_verified` whether the named operator themselves proved who they are
    with a code, so that no event claims more than was checked. A NamedTuple rather than a frozen
    dataclass: as immutable, and an apply builds one per change (a frozen dataclass's __init__
    sets each field through object.__setattr__)."""

    operator: str
    verified_by: str
    action: str
    address: str
    before: Any = None
    after: Any = None
    plan_digest: str | None = None
    operator_verified: bool = False
    reason: str | None = None  # the plan's --reason
    refers_to: int | None = None  # seq of the earlier event this one follows from


def append_events(
    conn: Connection, org_id: int, events: Iterable[AuditRecord], now: dt.datetime
) -> str:
    """Append `events` in order after the organization's last event (one batched INSERT, its rows
    hashed and written as they come, never all held: an apply has one per change); returns the
    new chain head."""
    seq, head = tail(conn, org_id)
    pending = iter(events)
    first = next(pending, None)
    if first is None:
        return head
    # Whole seconds: MariaDB's DATETIME keeps no fraction, and the hash must survive the round trip.
    created_at = naive_utc(now).replace(microsecond=0)
    chained = _Chained(org_id, seq, head, created_at)
    insert_many(
        conn, _table, _INSERTED, map(chained.row, itertools.chain((first,), pending)), stream=True
    )
    # Here, where every write's events go in, so that no writer can leave its events unsigned
    # when a signing key is set: one signature per batch, not per event. Imported here to keep
    # cryptography off the read paths that import this module.
    from userctl.apply.checkpoints import append_checkpoint

    append_checkpoint(conn, org_id, chained.seq, chained.head, created_at)
    return chained.head


class _Chained:
    """The stored row of each event in turn, chained onto the one before: `seq` and `head` are
    the last row's once every event has been taken."""

    __slots__ = ("org_id", "seq", "head", "created_at", "time", "key")

    def __init__(self, org_id: int, seq: int, head: str, created_at: dt.datetime) -> None:
        self.org_id, self.seq, self.head, self.created_at = org_id, seq, head, created_at
        self.time = hashed_time(created_at)
        self.key = audit_key()

    def row(self, event: AuditRecord) -> tuple[Any, ...]:
        encode, org_id = canonical_json, self.org_id
        self.seq = seq = self.seq + 1
        before = None if event.before is None else encode(event.before)
        after = None if event.after is None else encode(event.after)
        payload = canonical_bytes(
            hashed_fields(
                org_id,
                seq,
                self.time,
                event.operator,
                event.verified_by,
                event.plan_digest,
                event.action,
                event.address,
                before,
                after,
                self.head,
                event.operator_verified,
                event.reason,
                event.refers_to,
            )
        )
        prev = self.head
        self.head = head = hashlib.sha256(payload).hexdigest()
        return (
            org_id,
            seq,
            self.created_at,
            event.operator,
            event.verified_by,
            event.operator_verified,
            event.plan_digest,
            event.action,
            event.address,
            before,
            after,
            prev,
            head,
            _hmac(self.key, payload) if self.key else None,
            event.reason,
            event.refers_to,
        )


def tail(conn: Connection, org_id: int) -> tuple[int, str]:
    """The seq and hash of the organization's last event; (0, GENESIS) before the first."""
    last = conn.execute(
        select(_table.c.seq, _table.c.hash)
        .where(_table.c.organization_id == org_id)
        .order_by(_table.c.seq.desc())
        .limit(1)
    ).first()
    return (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS)


def chain_head(conn: Connection, org_id: int) -> str:
    return tail(conn, org_id)[1]


def verify_chain(
    conn: Connection, org_id: int, head: str | None = None, *, batch_size: int = VERIFY_BATCH
) -> VerifyResult:
    """Recompute the whole chain of one organization and report the FIRST bad event: missing
    (a gap in seq), reordered (chained onto an event now found elsewhere, or written before its
    predecessor), altered (contents no longer match the hash, or the HMAC when the key is set);
    then, when `head` is given (a head recorded earlier), that it is the hash of an intact event:
    events appended after it are normal and counted (`after_head`), a head that is no event of
    the intact chain (altered, removed, rewritten) is the problem.

    The events are streamed as the driver's tuples (a server-side cursor, `batch_size` rows per
    fetch) and only the previous one is kept: `chain.scan` judges them, and names the first
    wrong event, the one before it and the condition it fails. Those two are read again as rows
    once the stream is closed (MariaDB's unbuffered cursor allows no other statement while it
    is open), and `_problem` words the condition."""
    key = audit_key()
    wanted = None if head is None else head.strip().lower()
    scan = _scan(conn, org_id, wanted, key, batch_size)
    if scan.bad is None:
        return verified(scan.events, scan.last, key, wanted, scan.head_seq)
    bad_id, before_id, fault = scan.bad
    ids = [bad_id] if before_id is None else [bad_id, before_id]
    rows = _stored_rows(conn, ids)
    row = rows[bad_id]
    problem = _problem(
        fault, row, None if before_id is None else rows[before_id], _seq_of(conn, org_id)
    )
    return VerifyResult(scan.events, scan.last, key is not None, problem, int(row.seq), int(row.id))


def _scan(
    conn: Connection, org_id: int, wanted: str | None, key: bytes | None, batch_size: int
) -> Scanned:
    """`chain.scan` on the driver's tuples of the chain, streamed `batch_size` a fetch, SQLite's
    stored time text converted by SQLAlchemy's own reader."""
    return scan(
        driver_batches(conn, audit_chain_query(int(org_id)), batch_size),
        org_id,
        wanted,
        key,
        column_reader(conn, _table.c.created_at),
    )


def _stored_rows(conn: Connection, ids: list[int]) -> dict[int, Any]:
    """The events of row ids `ids`, their time as the driver gives it (`_name` reads it): a bad
    event's stored time may be one SQLAlchemy's reader refuses, and it is named all the same."""
    columns = [
        type_coerce(c, NullType()).label(c.name) if c.name == "created_at" else c for c in _table.c
    ]
    found = conn.execute(select(*columns).where(_table.c.id.in_(ids)))
    read = column_reader(conn, _table.c.created_at)
    return {int(r.id): _with_time(r, read) for r in found}


def _with_time(row: Row[Any], read: Callable[[Any], Any] | None) -> Any:
    """`row`'s fields, its time read as SQLAlchemy reads it, or as stored where it cannot be."""
    stored = row.created_at
    try:
        time: Any = stored if read is None else read(stored)
    except (TypeError, ValueError, OverflowError):
        time = stored
    return types.SimpleNamespace(**{**row._mapping, "created_at": time})


def _seq_of(conn: Connection, org_id: int) -> Callable[[str], int | None]:
    """The seq of the first event of the chain with a given hash, or None."""

    def seq_of(hash_: str) -> int | None:
        found = conn.execute(
            select(_table.c.seq)
            .where(_table.c.organization_id == org_id, _table.c.hash == hash_)
            .order_by(_table.c.seq)
            .limit(1)
        ).scalar_one_or_none()
        return None if found is None else int(found)

    return seq_of


def _problem(
    fault: Fault, row: Row[Any], previous: Row[Any] | None, seq_of: Callable[[str], int | None]
) -> str:
    """The words for `row` failing `fault` after `previous` (what `chain.scan` found). `seq_of`
    (the seq of the event with a given hash) only chooses between two messages for a broken
    link, as the seqs do for a seq out of place: which condition failed is the scan's."""
    if fault == SEQ:
        if previous is not None and int(row.seq) == int(previous.seq):
            return f"{_name(row)} has the same seq as the event before it"
        expected_seq = 1 if previous is None else int(previous.seq) + 1
        after = f"#{previous.seq}" if previous is not None else "the start"
        return (
            f"event #{expected_seq} is missing: the chain jumps from {after} to "
            f"{_name(row)} (an event was deleted)"
        )
    if fault == LINK:
        moved_to = seq_of(str(row.prev_hash))
        if moved_to is not None and moved_to != (0 if previous is None else int(previous.seq)):
            return (
                f"{_name(row)} is out of order: it was written right after "
                f"the event now at #{moved_to}"
            )
        before = "the start of the chain" if previous is None else f"event #{previous.seq}"
        return (
            f"{_name(row)} does not chain onto {before}: its prev_hash differs "
            f"({before} was altered, or events between them were removed)"
        )
    if fault == ORDER:
        assert previous is not None, "the first event has no event to be written before"
        return (
            f"{_name(row)} is out of order: it was written before event "
            f"#{previous.seq} (id {previous.id})"
        )
    if fault == HASH:
        return f"{_name(row)} was altered: its contents no longer match its hash"
    if fault == NO_HMAC:
        return (
            f"{_name(row)} carries no HMAC although {ENV_KEY} is set: it was written "
            "or rewritten without the key"
        )
    return (
        f"{_name(row)} fails its HMAC check: it was altered or rewritten by someone "
        f"without {ENV_KEY} (or the key is wrong)"
    )


def _payload(row: Any) -> bytes:
    """The bytes that are hashed, of a stored event (a row's mapping): `chain.event_payload`."""
    return event_payload(
        row["organization_id"],
        row["seq"],
        hashed_time(row["created_at"]),
        row["operator"],
        row["verified_by"],
        row["plan_digest"],
        row["action"],
        row["address"],
        row["before"],
        row["after"],
        row["prev_hash"],
        row["operator_verified"],
        row["reason"],
        row["refers_to"],
    )


def _name(row: Row[Any]) -> str:
    stored = row.created_at
    time = iso_z(stored) if isinstance(stored, dt.datetime) else f"time {stored!r}"
    return f"event #{row.seq} (id {row.id}, {time}, {row.action} {row.address})"


@contextlib.contextmanager
def events_read(conn: Connection, org_id: int) -> Iterator[None]:
    """Around reading an organization's events as data: a stored value no event was written with
    (a time that is no time, a seq that is no number, a before that is not JSON) means the chain
    was altered, which `audit verify` then names (exit 4), for every command that reads events,
    rather than an unexpected error. The reading's stream must be closed inside (MariaDB's
    unbuffered cursor allows no other statement while it is open)."""
    try:
        yield
    except (ValueError, TypeError):
        found = verify_chain(conn, org_id)
        if found.problem is None:
            raise  # an intact chain: this error is not the data's
        raise AuditChainBroken(
            f"the audit chain is broken: {found.problem}; its events cannot be read (`userctl "
            "audit verify` names the first altered one)"
        ) from None


def list_events(
    conn: Connection, org_id: int, *, since: dt.datetime | None = None, user: str | None = None
) -> list[dict[str, Any]]:
    """Events in chain order as plain data. `user` selects the events that user performed as
    operator or that were about them (their user, their bank-account assignments)."""
    with events_read(conn, org_id):
        return [_event_data(r) for r in conn.execute(_events_query(org_id, since, user))]


def iter_events(
    conn: Connection, org_id: int, *, since: dt.datetime | None = None, user: str | None = None
) -> Iterator[dict[str, Any]]:
    """`list_events`, streamed (a server-side cursor, VERIFY_BATCH rows a fetch): `audit log` of
    a million events holds one batch, not the log. MariaDB's streaming cursor allows no other
    statement on the connection until the iteration ends."""
    streamed = conn.execution_options(stream_results=True, yield_per=VERIFY_BATCH)
    for r in streamed.execute(_events_query(org_id, since, user)):
        yield _event_data(r)


def _events_query(org_id: int, since: dt.datetime | None, user: str | None) -> Select[Any]:
    query = select(_table).where(_table.c.organization_id == org_id)
    if since is not None:
        query = query.where(_table.c.created_at >= naive_utc(since))
    if user is not None:
        email = email_key(user.strip())  # events name identities, lower-case
        # Every assignment address of this user starts like this one to an empty key.
        assignments = assignment_address(email, "").removesuffix(' ""]')
        query = query.where(
            or_(
                _table.c.operator == email,
                _table.c.address == user_address(email),
                _table.c.address.startswith(assignments, autoescape=True),
            )
        )
    return query.order_by(_table.c.seq, _table.c.id)


def _event_data(r: Row[Any]) -> dict[str, Any]:
    """An event as plain data. A stored value no event is written with raises ValueError (or
    TypeError), which `events_read` turns into the broken chain `audit verify` names."""
    if not (
        is_stored_text(r.operator, r.verified_by, r.action, r.address, r.prev_hash, r.hash)
        and is_stored_text_or_none(r.plan_digest, r.hmac, r.reason, r.before, r.after)
    ):
        # An integer action (SQLite keeps one) would otherwise reach the renderers and stop
        # them there, outside events_read.
        raise ValueError("a text column holds no text")
    return {
        "seq": stored_int(r.seq),
        "time": iso_z(r.created_at),
        "operator": r.operator,
        "verified_by": r.verified_by,
        "operator_verified": (
            None if r.operator_verified is None else bool(stored_flag(r.operator_verified))
        ),
        "plan_digest": r.plan_digest,
        "action": r.action,
        "address": r.address,
        "before": None if r.before is None else json.loads(r.before),
        "after": None if r.after is None else json.loads(r.after),
        "prev_hash": r.prev_hash,
        "hash": r.hash,
        "hmac": r.hmac,
        "reason": r.reason,
        "refers_to": None if r.refers_to is None else stored_int(r.refers_to),
    }


def expiry_set_by(conn: Connection, org_id: int, email: str) -> int | None:
    """The seq of the last event that gave `email` the expiry they have (a create, replace or
    set_expiry whose record carries one), or None when no event did (the row was written
    outside userctl)."""
    rows = conn.execute(
        select(_table.c.seq, _table.c.after)
        .where(
            _table.c.organization_id == org_id,
            _table.c.address == user_address(email),
            _table.c.action.in_(("user.create", "user.replace", "user.set_expiry")),
        )
        .order_by(_table.c.seq.desc())
    )
    for seq, after in rows:
        if after is not None and json.loads(after).get("expires") is not None:
            return int(seq)
    return None
