"""The audit chain's arithmetic (DESIGN §4 "Audit"), without a database: what an event's hash
covers, and the scan of a chain's stored events, in order, for the first one that is wrong.
`apply/audit.py` appends and verifies through SQLAlchemy; `db/thin.py` runs the same scan on the
raw driver, so that `audit verify` on an intact chain never imports SQLAlchemy. Nothing here does
I/O but read USERCTL_AUDIT_KEY."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Final, Iterable, Iterator, Literal, NamedTuple, Sequence

import orjson

from userctl import hexdigest
from userctl.canonical import canonical_bytes
from userctl.clock import naive_utc
from userctl.gcpause import gc_paused

GENESIS = "0" * 64
ENV_KEY = "USERCTL_AUDIT_KEY"
# Events fetched per round trip by a verifying scan: memory stays flat however long the chain is.
VERIFY_BATCH = 2000

# The stored fields a scan reads of an event, in the order of its tuples: every one but the
# organization, which the query fixes (db/snapshot.audit_chain_query selects them so).
SCANNED = (
    "id",
    "seq",
    "created_at",
    "operator",
    "verified_by",
    "operator_verified",
    "plan_digest",
    "action",
    "address",
    "before",
    "after",
    "prev_hash",
    "hash",
    "hmac",
    "reason",
    "refers_to",
)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    events: int
    head: str  # hash of the last event, GENESIS for an empty chain
    hmac_checked: bool
    problem: str | None = None  # the first thing wrong, naming the event; None when intact
    bad_seq: int | None = None
    bad_id: int | None = None  # the row id of that event, which stays put when seqs are edited
    # With a head to check: how many events were appended after it (None without one).
    after_head: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


# Which condition an event fails, in the order they are judged (`scan`): its seq is not the one
# after the event before's; its prev_hash is not that event's hash; it was written (its row id)
# before that event; its contents do not match its hash; with USERCTL_AUDIT_KEY set, it carries
# no HMAC, or one that does not match.
Fault = Literal["seq", "link", "order", "hash", "no_hmac", "hmac"]
SEQ: Final = "seq"
LINK: Final = "link"
ORDER: Final = "order"
HASH: Final = "hash"
NO_HMAC: Final = "no_hmac"
HMAC: Final = "hmac"


class Bad(NamedTuple):
    """The first wrong event of a chain: its row id, the row id of the event before it (None for
    the first), and the condition it fails."""

    id: int
    before_id: int | None
    fault: Fault


@dataclass(frozen=True, slots=True)
class Scanned:
    events: int
    last: str  # the hash of the last event, GENESIS for an empty chain
    head_seq: int | None  # where the wanted head is among the intact events, if it is
    bad: Bad | None  # the first wrong event, None when intact


def audit_key() -> bytes | None:
    key = os.environ.get(ENV_KEY)
    return key.encode("utf-8") if key else None


def hashed_fields(
    organization_id: int,
    seq: int,
    time: str,
    operator: str,
    verified_by: str,
    plan_digest: str | None,
    action: str,
    address: str,
    before: str | None,
    after: str | None,
    prev_hash: str,
    operator_verified: bool | int | None,
    reason: str | None,
    refers_to: int | None,
) -> dict[str, Any]:
    """What is hashed: every stored field but the id and the hash/HMAC themselves (`before` and
    `after` as their stored canonical JSON, the time as `hashed_time` gives it). Appending and
    verifying both build it here. operator_verified is covered when present: events written
    before it existed keep the hash they were written with."""
    fields: dict[str, Any] = {
        # The organization is the scan's own (its query's parameter), not a stored value.
        "organization_id": int(organization_id),
        "seq": stored_int(seq),
        "time": time,
        "operator": operator,
        "verified_by": verified_by,
        "plan_digest": plan_digest,
        "action": action,
        "address": address,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    if operator_verified is not None:
        fields["operator_verified"] = bool(stored_flag(operator_verified))
    # Likewise the reason and the earlier event, added by migration 0004.
    if reason is not None:
        fields["reason"] = reason
    if refers_to is not None:
        fields["refers_to"] = stored_int(refers_to)
    return fields


def stored_flag(value: Any) -> bool | int:
    """A stored flag as the drivers give the ones userctl writes (`is_stored_flag`); anything
    else is a value no event was written with, though bool() would take it for one: ValueError,
    and its event is altered."""
    if not is_stored_flag(value):
        raise ValueError(f"not a stored flag: {value!r}")
    return value  # type: ignore[no-any-return]


def is_stored_flag(value: Any) -> bool:
    """A bool, or 0/1 (SQLite, MariaDB); not 2, 1.0 or "1"."""
    return value.__class__ in _FLAG_TYPES and value in (0, 1)


def stored_int(value: Any) -> int:
    """A stored integer as the drivers give the ones userctl writes (`is_stored_int`); anything
    else (ValueError) makes its event altered."""
    if not is_stored_int(value):
        raise ValueError(f"not a stored integer: {value!r}")
    return value  # type: ignore[no-any-return]


def is_stored_int(value: Any) -> bool:
    """An int; never a bool, a float (1.0, 1.25) or a text that int() would take for one.
    (Confirmer.confirm tests it inline: a call per event would add about 0.05 s a million.)"""
    return value.__class__ is int


def is_stored_text(*values: Any) -> bool:
    """Whether each value of a text column is text, as the drivers give what userctl writes (not
    the integer or bytes SQLite keeps in any column, or a retyped column gives)."""
    return all(v.__class__ is str for v in values)


def is_stored_text_or_none(*values: Any) -> bool:
    """Likewise for text columns that may be empty."""
    return all(v is None or v.__class__ is str for v in values)


_FLAG_TYPES: Final = (bool, int)


def hashed_time(created_at: dt.datetime) -> str:
    """The time as the hash covers it: frozen at the form events were first written in (Python's
    isoformat, any fraction kept), so a change to how times are shown never breaks a chain."""
    return naive_utc(created_at).isoformat() + "Z"


def event_hmac(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def mac_matches(key: bytes, payload: bytes, mac: Any) -> bool:
    """Whether a stored HMAC is the one the key gives `payload`, compared in constant time. A
    stored value that is no str, or not ASCII, is none userctl wrote: False, so its event is
    altered (compare_digest raises TypeError on a str it cannot take as ASCII, which stopped the
    scan instead of naming the event)."""
    return (
        isinstance(mac, str)
        and mac.isascii()
        and hmac.compare_digest(mac, event_hmac(key, payload))
    )


def scan(
    batches: Iterable[Sequence[Sequence[Any]]],
    org_id: int,
    wanted: str | None,
    key: bytes | None,
    read_time: Callable[[Any], Any] | None,
) -> Scanned:
    """The chain's events (tuples in SCANNED's order, in seq then id order) judged in order: the
    first wrong one, the one before it and the condition it fails (`Fault`), or none, as
    `_judge` states it; `apply/audit.py` only words what it finds.
    `read_time` is SQLAlchemy's reader of a stored time, where it has one, so that the time
    hashed is the one SQLAlchemy would give.

    Most events are confirmed by `Confirmer` (db/thin.py's scan of a million events is mostly
    this); the first one it cannot confirm is judged here by the definition, then it resumes.
    The collector is paused: the rows and payloads form no cycles."""
    organization_id = int(org_id)
    head_seq: int | None = 0 if wanted == GENESIS else None
    events, last = 0, GENESIS
    fast = Confirmer(organization_id, key, read_time, wanted)
    bad: Bad | None = None
    stream = iter(batches)
    with gc_paused(), _closed_on_error(stream):
        for batch in stream:
            events += len(batch)
            last = str(batch[-1][12])
            if bad is not None:
                continue  # only counting remains
            index, size = 0, len(batch)
            while index < size:
                index = fast.confirm(batch, index)
                if index == size:
                    break
                # The event the fast path could not confirm: the conditions, in the order they
                # are judged, by the definition.
                row = batch[index]
                fault = _judge(row, fast)
                if fault is not None:
                    before_id = None if fast.prev_seq == 0 else int(fast.prev_id)
                    bad = Bad(int(row[0]), before_id, fault)
                    break
                fast.accept(row)
                index += 1
    if fast.head_seq is not None:
        head_seq = fast.head_seq
    return Scanned(events, last, head_seq, bad)


@contextlib.contextmanager
def _closed_on_error(stream: Iterator[Any]) -> Iterator[None]:
    """Where the scan stops on an error (a stored time the raw driver's path cannot read: it
    falls back to SQLAlchemy's), the stream of batches is closed then, its cursor with it, while
    its connection is still open: not later, by the collector, once the connection is gone."""
    try:
        yield
    except BaseException:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        raise


def _judge(row: Sequence[Any], fast: Confirmer) -> Fault | None:
    """The first condition one event fails after the event before it (`fast` holds its seq,
    hash and row id), by the definition's bytes; None when it is intact. This is the one
    statement of what an intact event is: `Confirmer` only confirms what it would find intact.
    The values as the driver gives them (no int(): a seq or id of another type can only make
    the event look wrong)."""
    (
        id_,
        seq,
        created_at,
        operator,
        verified_by,
        operator_verified,
        plan_digest,
        action,
        address,
        before,
        after,
        prev,
        hash_,
        mac,
        reason,
        refers_to,
    ) = row
    if not is_stored_int(seq) or seq != fast.prev_seq + 1:  # 2.0 is no seq userctl wrote
        return SEQ
    if prev != fast.prev_hash:
        return LINK
    if id_ < fast.prev_id:
        return ORDER
    try:
        payload = event_payload(
            fast.organization_id,
            seq,
            fast.hashed_time(created_at),
            operator,
            verified_by,
            plan_digest,
            action,
            address,
            before,
            after,
            prev,
            operator_verified,
            reason,
            refers_to,
        )
    except (TypeError, ValueError, OverflowError):
        # A stored value no event was hashed with (bytes, a time that is no time, a refers_to
        # that is no number): its contents cannot match its hash.
        return HASH
    if not hexdigest.matches_by_hashlib(payload, hash_):
        return HASH
    key = fast.key
    if key is not None:
        if mac is None:
            return NO_HMAC
        if not mac_matches(key, payload, mac):
            return HMAC
    return None


# The canonical bytes' openings of the two runs of keys `Confirmer` writes whole (see there).
_MIDDLE_KEY = b'{"operator":'
_TAIL_KEY = b'{"time":'


class Confirmer:
    """The fast half of `scan`: from the event before (its seq, hash and row id), how many of a
    batch's events are intact, each hashed over bytes built its own way that equal the
    definition's (`event_payload`) whenever it builds them (tests/core/test_chain.py holds them
    equal on generated events); an event it cannot build, or whose hash or HMAC does not match,
    it leaves to the definition (`_judge`), which decides. So it can only cost speed, never
    change a verdict.

    How: the canonical bytes are a dict's items in sorted key order, so they split into runs of
    keys. The events of one write share their operator, how they were verified, the plan and
    the time; those two runs (operator .. plan_digest, and time, verified_by) are encoded once
    by the canonical encoder itself and spliced in as orjson Fragments, written verbatim. What
    changes per event (action, address, before, after, prev_hash, reason, refers_to, seq) goes
    through orjson in one dict reused from event to event, its keys in canonical order, its
    values replaced: no dict built per event, a third fewer items than the whole record, no
    sort, no bool(). The seq written is the counter (prev_seq + 1), an int, which the seq was
    just found equal to and to be an int: what the definition's stored_int(seq) gives. The
    text columns give str or None (a BLOB, bytes, orjson refuses), for which orjson writes
    json's bytes; before and after are written only when text or None (a column an operator
    retyped can give a float, and orjson writes an infinity as null, which a NULL was hashed
    as); refers_to only when an int, operator_verified only when a flag stored_flag takes
    (else the definition decides). A run is reused only for an event whose values equal the
    ones it was encoded from, and only str values are cached, so that an equal value is a str
    with the same bytes (tests/core/test_chain.py changes each
    of them after hashing and watches the event found altered)."""

    __slots__ = (
        "organization_id",
        "key",
        "read_time",
        "looked_for",
        "head_seq",
        "prev_seq",
        "prev_hash",
        "prev_id",
        "_time_of",
        "_time",
        "_middle_of",
        "_middle",
        "_tail_of",
        "_tail",
    )

    def __init__(
        self,
        organization_id: int,
        key: bytes | None,
        read_time: Callable[[Any], Any] | None,
        wanted: str | None,
    ) -> None:
        self.organization_id, self.key, self.read_time = organization_id, key, read_time
        self.looked_for = wanted
        self.head_seq: int | None = None  # the seq of the intact event whose hash is `wanted`
        # The event before: none yet (seq 0, and an id below any).
        self.prev_seq: int = 0
        self.prev_hash: str = GENESIS
        self.prev_id: Any = -math.inf
        # The runs' cached encodings, with the stored values they were encoded from; a sentinel
        # no stored value equals until the first event sets them.
        self._time_of: Any = _UNSET
        self._time = ""
        self._middle_of: tuple[Any, Any, Any] = (_UNSET, _UNSET, _UNSET)
        self._middle: Any = None
        self._tail_of: tuple[Any, Any] = (_UNSET, _UNSET)
        self._tail: Any = None

    def hashed_time(self, created_at: Any) -> str:
        """The time the hash covers, formatted once per run of events that share it."""
        if created_at != self._time_of:
            read = self.read_time
            self._time = hashed_time(created_at if read is None else read(created_at))
            self._time_of = created_at
        return self._time

    def accept(self, row: Sequence[Any]) -> None:
        """An event the definition found intact becomes the event before."""
        self.prev_seq += 1
        self.prev_hash, self.prev_id = row[12], row[0]
        if row[12] == self.looked_for:
            self.head_seq = self.prev_seq

    def _runs(
        self, created_at: Any, operator: Any, ov: Any, plan_digest: Any, verified_by: Any
    ) -> bool:
        """The two runs' Fragments for these stored values, encoded by the canonical encoder
        (False where a value is not one this path writes: the definition takes the event). Only
        str values are cached, so that a later equal value is a str with the same bytes."""
        if type(operator) is not str or type(verified_by) is not str:
            return False
        if plan_digest is not None and type(plan_digest) is not str:
            return False
        if ov is not None and not is_stored_flag(ov):
            return False  # the definition's stored_flag refuses it
        middle: dict[str, Any] = {"operator": operator}
        if ov is not None:
            middle["operator_verified"] = bool(ov)
        middle["organization_id"] = self.organization_id
        middle["plan_digest"] = plan_digest
        self._middle = orjson.Fragment(canonical_bytes(middle)[len(_MIDDLE_KEY) : -1])
        self._middle_of = (operator, ov, plan_digest)
        time = self.hashed_time(created_at)
        tail = canonical_bytes({"time": time, "verified_by": verified_by})
        self._tail = orjson.Fragment(tail[len(_TAIL_KEY) : -1])
        self._tail_of = (created_at, verified_by)
        return True

    def confirm(self, rows: Sequence[Sequence[Any]], start: int) -> int:
        """The index of the first of `rows[start:]` this path cannot confirm (len(rows): all
        confirmed), each confirmed one becoming the event before."""
        first_seq = prev_seq = self.prev_seq
        prev_hash, prev_id = self.prev_hash, self.prev_id
        middle, tail = self._middle, self._tail
        m_operator, m_ov, m_digest = self._middle_of
        t_created, t_verified_by = self._tail_of
        key = self.key
        # The definition's hash test (hashlib's digest == the stored one), in C where it was built.
        dumps, matches = orjson.dumps, hexdigest.matches
        fields = dict.fromkeys(_COMMON, None)
        reasoned = dict.fromkeys(_REASONED, None)
        fields["operator"] = reasoned["operator"] = middle
        fields["time"] = reasoned["time"] = tail
        try:
            for (
                id_,
                seq,
                created_at,
                operator,
                verified_by,
                operator_verified,
                plan_digest,
                action,
                address,
                before,
                after,
                prev,
                hash_,
                mac,
                reason,
                refers_to,
            ) in rows[start:] if start else rows:
                number = prev_seq + 1
                if seq != number or seq.__class__ is not int or prev != prev_hash or id_ < prev_id:
                    break
                if (before is not None and type(before) is not str) or (
                    after is not None and type(after) is not str
                ):
                    # Not text as userctl stores it: a float, say, which orjson writes its own
                    # way (an infinity as null, the bytes a NULL before or after was hashed as).
                    break
                if (
                    created_at != t_created
                    or verified_by != t_verified_by
                    or operator != m_operator
                    # `is`: the flags the drivers give (True, False, 0, 1) are singletons,
                    # and a 1.0 equal to 1 must not reuse the run 1 was encoded for.
                    or operator_verified is not m_ov
                    or plan_digest != m_digest
                ):
                    if not self._runs(
                        created_at, operator, operator_verified, plan_digest, verified_by
                    ):
                        break
                    middle, tail = self._middle, self._tail
                    fields["operator"] = reasoned["operator"] = middle
                    fields["time"] = reasoned["time"] = tail
                    m_operator, m_ov, m_digest = self._middle_of
                    t_created, t_verified_by = self._tail_of
                if reason is None and refers_to is None:
                    # One dict for them all, its keys in canonical order, the values replaced.
                    fields["action"] = action
                    fields["address"] = address
                    fields["after"] = after
                    fields["before"] = before
                    fields["prev_hash"] = prev
                    fields["seq"] = number
                    payload = dumps(fields)
                elif refers_to is None:
                    # A write with a --reason: every event carries it.
                    reasoned["action"] = action
                    reasoned["address"] = address
                    reasoned["after"] = after
                    reasoned["before"] = before
                    reasoned["prev_hash"] = prev
                    reasoned["reason"] = reason
                    reasoned["seq"] = number
                    payload = dumps(reasoned)
                else:
                    if type(refers_to) is not int:
                        break
                    record = {
                        "action": action,
                        "address": address,
                        "after": after,
                        "before": before,
                        "operator": middle,
                        "prev_hash": prev,
                        "reason": reason,
                        "refers_to": refers_to,
                        "seq": number,
                        "time": tail,
                    }
                    if reason is None:
                        del record["reason"]
                    if refers_to is None:
                        del record["refers_to"]
                    payload = dumps(record)
                if not matches(payload, hash_):
                    break
                if key is not None and (mac is None or not mac_matches(key, payload, mac)):
                    break
                prev_seq, prev_hash, prev_id = number, hash_, id_
        except (TypeError, ValueError):  # orjson.JSONEncodeError too: a value orjson refuses
            pass  # the definition writes this event
        finally:
            self.prev_seq, self.prev_hash, self.prev_id = prev_seq, prev_hash, prev_id
        index = start + prev_seq - first_seq  # one event confirmed, one seq on
        looked_for = self.looked_for
        if looked_for is not None:
            # Where the head an auditor kept is, among the events just confirmed.
            for offset, row in enumerate(rows[start:index]):
                if row[12] == looked_for:
                    self.head_seq = first_seq + offset + 1
        return index


_UNSET: Final = object()
# The keys of an event's payload without a reason or an earlier event, in canonical order, the
# two runs standing for theirs.
_COMMON: Final = ("action", "address", "after", "before", "operator", "prev_hash", "seq", "time")
_REASONED: Final = (*_COMMON[:6], "reason", *_COMMON[6:])  # with a reason, no earlier event


def event_payload(*stored: Any) -> bytes:
    """The bytes an event's hash is over, by the definition: `hashed_fields` of its stored values
    (that function's arguments, in its order), through the canonical encoder."""
    return canonical_bytes(hashed_fields(*stored))


def verified(
    events: int, last: str, key: bytes | None, wanted: str | None, head_seq: int | None
) -> VerifyResult:
    """The result for a chain found intact: with a wanted head, whether it is one of its events
    (`head_seq`, its seq) and how many came after it."""
    if wanted is None:
        return VerifyResult(events, last, key is not None)
    if head_seq is None:
        problem = (
            f"the recorded head {wanted} is no event of this chain (head {last}): events were "
            "removed from the end, or the event it named was altered or the chain rewritten"
        )
        return VerifyResult(events, last, key is not None, problem)
    return VerifyResult(events, last, key is not None, after_head=events - head_seq)
