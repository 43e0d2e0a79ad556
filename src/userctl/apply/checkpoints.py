"""Signed checkpoints of the audit chain (docs/auditing.md "Signed checkpoints").

A checkpoint is a signature, with the key of USERCTL_AUDIT_SIGNING_KEY, over the organization,
the seq of its last event, the chain head at that seq, the time and the key id. The hash chain
lets anyone with database write access rebuild it after an edit; a signed head cannot be rebuilt
without the private key, and checking it needs only the public key. `audit.append_events` appends
one after every batch it writes, inside the caller's transaction, so no writer can forget it.

What the signature covers is `message()`: canonical JSON, so a checkpoint exported with
`audit checkpoints --format json` carries the exact bytes `ssh-keygen -Y verify` checks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, insert, select

from userctl.apply.signing import CHECKPOINT_NAMESPACE, signing_key, sshsig_verify
from userctl.canonical import canonical_bytes
from userctl.chain import is_stored_int, is_stored_text
from userctl.clock import iso_z, naive_utc, parse_utc
from userctl.db.tables import audit_checkpoints as _table
from userctl.db.tables import audit_events as _events
from userctl.db.tables import organizations as _orgs
from userctl.errors import AuditChainBroken

# Checkpoints fetched per round trip by verify_checkpoints.
VERIFY_BATCH = 2000


@dataclass(frozen=True, slots=True)
class Checkpoint:
    organization: str
    organization_id: int
    seq: int
    head: str
    time: str  # RFC 3339 UTC, whole seconds
    key_id: str
    signature: str  # armored SSHSIG over message()

    def message(self) -> bytes:
        return canonical_bytes(
            {
                "organization": self.organization,
                "organization_id": self.organization_id,
                "seq": self.seq,
                "head": self.head,
                "time": self.time,
                "key_id": self.key_id,
            }
        )

    def as_data(self) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "organization_id": self.organization_id,
            "seq": self.seq,
            "head": self.head,
            "time": self.time,
            "key_id": self.key_id,
            "message": self.message().decode("utf-8"),
            "signature": self.signature,
        }


def append_checkpoint(
    conn: Connection, org_id: int, seq: int, head: str, now: dt.datetime
) -> Checkpoint | None:
    """Sign the head `head` at `seq` and store it; None (nothing written) without a signing key."""
    key = signing_key()
    if key is None:
        return None
    slug = str(conn.execute(select(_orgs.c.slug).where(_orgs.c.id == org_id)).scalar_one())
    created_at = naive_utc(now).replace(microsecond=0)
    unsigned = Checkpoint(slug, org_id, seq, head, iso_z(created_at), key.key_id, "")
    signature = key.sign(unsigned.message(), CHECKPOINT_NAMESPACE)
    conn.execute(
        insert(_table).values(
            organization_id=org_id,
            seq=seq,
            head=head,
            created_at=created_at,
            key_id=key.key_id,
            signature=signature,
        )
    )
    return Checkpoint(slug, org_id, seq, head, unsigned.time, key.key_id, signature)


def list_checkpoints(
    conn: Connection,
    org_id: int,
    *,
    since: dt.datetime | None = None,
    stop_at_unreadable: bool = False,
) -> list[Checkpoint]:
    """The organization's checkpoints in the order they were written. A row holding a value no
    checkpoint is written with (`_stored`) is AuditChainBroken, or with `stop_at_unreadable`
    ends the list there (the evidence pack's period: its verification already names it)."""
    slug = str(conn.execute(select(_orgs.c.slug).where(_orgs.c.id == org_id)).scalar_one())
    query = select(_table).where(_table.c.organization_id == org_id)
    if since is not None:
        query = query.where(_table.c.created_at >= naive_utc(since))
    found: list[Checkpoint] = []
    try:
        found.extend(c for _, c in _read(slug, org_id, conn.execute(query.order_by(_table.c.id))))
    except _Unreadable as exc:
        if not stop_at_unreadable:
            raise AuditChainBroken(f"audit chain of {slug} is broken: {exc}") from None
    return found


def checkpoint_at(conn: Connection, org_id: int, head: str) -> Checkpoint | None:
    """The checkpoint written for `head` (the head a write returned), or None."""
    slug = str(conn.execute(select(_orgs.c.slug).where(_orgs.c.id == org_id)).scalar_one())
    row = conn.execute(
        select(_table)
        .where(_table.c.organization_id == org_id, _table.c.head == head)
        .order_by(_table.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _stored(slug, org_id, row)


def from_data(data: Any) -> Checkpoint:
    """A checkpoint as `audit checkpoints --format json` writes it (one object, or the list whose
    last element is taken). ValueError names what is missing."""
    if isinstance(data, list):
        if not data:
            raise ValueError("the list of checkpoints is empty")
        data = data[-1]
    if not isinstance(data, dict):
        raise ValueError("it is not a checkpoint object")
    try:
        checkpoint = Checkpoint(
            str(data["organization"]),
            int(data["organization_id"]),
            int(data["seq"]),
            str(data["head"]),
            str(data["time"]),
            str(data["key_id"]),
            str(data["signature"]),
        )
        parse_utc(checkpoint.time)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"it is not a checkpoint as `audit checkpoints` writes it ({exc})"
        ) from None
    return checkpoint


@dataclass(frozen=True, slots=True)
class SignedResult:
    checkpoints: int
    signed_seq: int  # the seq the last good checkpoint covers (0: none)
    unsigned: int  # events after the last checkpoint: "not yet signed"
    problem: str | None = None
    last_checkpoint: Checkpoint | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_checkpoints(
    conn: Connection,
    org_id: int,
    events: int,
    keys: dict[str, Ed25519PublicKey],
    kept: Checkpoint | None = None,
) -> SignedResult:
    """Check every checkpoint of an organization whose chain `audit.verify_chain` found intact
    with `events` events: its signature by one of `keys` (an unknown key id is a failure), its
    place (seqs strictly increase in the order written: a copied old row is a replay) and that
    the chain reaches its head at its seq. `kept`, a checkpoint the auditor kept outside the
    database, must be valid and still in the table: that is what detects checkpoints deleted
    from the end, which otherwise look like events "not yet signed"."""
    slug = str(conn.execute(select(_orgs.c.slug).where(_orgs.c.id == org_id)).scalar_one())
    # Each checkpoint with the hash of the event at its seq, in the order written: streamed, so
    # a long history is never held in memory (and MariaDB's streaming cursor sees no other
    # statement until it is closed).
    query = (
        select(_table, _events.c.hash.label("event_hash"))
        .select_from(
            _table.outerjoin(
                _events,
                (_events.c.organization_id == _table.c.organization_id)
                & (_events.c.seq == _table.c.seq),
            )
        )
        .where(_table.c.organization_id == org_id)
        .order_by(_table.c.id)
    )
    count, good_seq, previous, problem = 0, 0, None, None
    streamed = conn.execution_options(stream_results=True, yield_per=VERIFY_BATCH)
    result = streamed.execute(query)
    try:
        for row, checkpoint in _read(slug, org_id, result):
            count += 1
            actual = None if row.event_hash is None else str(row.event_hash)
            problem = _wrong(checkpoint, keys, actual, previous, good_seq)
            if problem is not None:
                break
            good_seq, previous = checkpoint.seq, checkpoint
    except _Unreadable as exc:
        count, problem = count + 1, str(exc)
    finally:
        result.close()
    if problem is None and kept is not None:
        problem = _wrong_kept(conn, kept, org_id, keys)
    if problem is not None:
        return SignedResult(count, good_seq, max(events - good_seq, 0), problem)
    return SignedResult(count, good_seq, events - good_seq, None, previous)


class _Unreadable(Exception):
    """A stored row holding a value no checkpoint is written with: SQLite keeps a value of any
    type in any column (a time that is no time, a seq that is no number). Verify names it, as it
    names a forged checkpoint, instead of stopping on it."""


def _read(slug: str, org_id: int, rows: Iterable[Any]) -> Iterator[tuple[Any, Checkpoint]]:
    """Each stored row with the Checkpoint it holds, in order; _Unreadable at the first that
    holds none (reading it may already fail, in SQLAlchemy's reader of its time)."""
    stream = iter(rows)
    at = 0
    while True:
        at += 1
        try:
            row = next(stream, None)
            if row is None:
                return
            checkpoint = _stored(slug, org_id, row)
        except (TypeError, ValueError) as exc:
            raise _Unreadable(
                f"checkpoint {at} (in the order stored) holds a value no checkpoint is written "
                f"with ({exc})"
            ) from None
        yield row, checkpoint


def _stored(slug: str, org_id: int, row: Any) -> Checkpoint:
    """A stored checkpoint row as the Checkpoint it claims to be; ValueError (or TypeError) for a
    value no checkpoint was written with: a seq that is no int, a signature that is no text."""
    seq, head, key_id, signature = row.seq, row.head, row.key_id, row.signature
    if not is_stored_int(seq):
        raise ValueError(f"seq {seq!r} is not a number")
    if not is_stored_text(head, key_id, signature):
        raise ValueError("a text column holds no text")
    return Checkpoint(slug, org_id, seq, head, iso_z(row.created_at), key_id, signature)


def _wrong(
    checkpoint: Checkpoint,
    keys: dict[str, Ed25519PublicKey],
    actual: str | None,
    previous: Checkpoint | None,
    good_seq: int,
) -> str | None:
    """What is wrong with `checkpoint`, stored after `previous`, when the event at its seq has
    the hash `actual` (None: there is none)."""
    name = f"the checkpoint at event #{checkpoint.seq} ({checkpoint.time}, key {checkpoint.key_id})"
    bad_signature = sshsig_verify(
        checkpoint.signature, checkpoint.message(), CHECKPOINT_NAMESPACE, keys
    )
    if bad_signature is not None:
        return f"{name} is not validly signed: {bad_signature}"
    # Only the seq is held to order, not the time: two hosts' clocks may disagree by seconds.
    if previous is not None and checkpoint.seq <= previous.seq:
        return (
            f"{name} is a replay: it was stored after the checkpoint at event #{previous.seq} "
            f"({previous.time}) but signs an earlier or the same place"
        )
    if actual != checkpoint.head:
        since = f"event #{good_seq}" if good_seq else "the start of the chain"
        what = "is gone" if actual is None else f"has hash {actual}"
        return (
            f"the chain no longer matches {name}: it signed head {checkpoint.head} but event "
            f"#{checkpoint.seq} {what}; an event after {since} (the last signed head that "
            f"matches), up to #{checkpoint.seq}, was altered, removed, reordered or inserted"
        )
    return None


def _wrong_kept(
    conn: Connection, kept: Checkpoint, org_id: int, keys: dict[str, Ed25519PublicKey]
) -> str | None:
    name = f"the kept checkpoint at event #{kept.seq} ({kept.time})"
    if kept.organization_id != org_id:
        return f"{name} is one of organization {kept.organization}, not this one"
    bad_signature = sshsig_verify(kept.signature, kept.message(), CHECKPOINT_NAMESPACE, keys)
    if bad_signature is not None:
        return f"{name} is not validly signed: {bad_signature}"
    actual = conn.execute(
        select(_events.c.hash).where(_events.c.organization_id == org_id, _events.c.seq == kept.seq)
    ).scalar_one_or_none()
    if actual != kept.head:
        return (
            f"the chain no longer matches {name}: event #{kept.seq} is not the head it signed "
            "(events were removed from the end, or the chain rewritten)"
        )
    stored = conn.execute(
        select(_table.c.id).where(
            _table.c.organization_id == org_id,
            _table.c.seq == kept.seq,
            _table.c.signature == kept.signature,
        )
    ).first()
    if stored is None:
        return f"{name} is missing from the database: checkpoints were deleted"
    return None


def evidence_seal(
    conn: Connection,
    org_id: int,
    events: int,
    keys: dict[str, Ed25519PublicKey],
    kept: Checkpoint | None,
    since: dt.datetime,
    until: dt.datetime,
) -> tuple[SignedResult, list[Checkpoint]]:
    """For an evidence pack of [since, until): the verification of every checkpoint (as
    `audit verify --public-key` does it) and the checkpoints written in the period."""
    result = verify_checkpoints(conn, org_id, events, keys, kept)
    period = [
        c
        for c in list_checkpoints(conn, org_id, since=since, stop_at_unreadable=True)
        if parse_utc(c.time) < naive_utc(until)
    ]
    return result, period


def signed_data(result: SignedResult) -> dict[str, Any]:
    """A SignedResult as `audit verify --format json` and the evidence pack show it."""
    last = result.last_checkpoint
    return {
        "checkpoints": result.checkpoints,
        "signed_through_seq": result.signed_seq,
        "not_yet_signed": result.unsigned,
        "last_checkpoint": None if last is None else last.as_data(),
    }
