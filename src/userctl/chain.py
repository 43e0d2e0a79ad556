"""The audit chain's arithmetic (DESIGN §4 "Audit"), without a database: what an event's hash
covers, and the scan of a chain's stored events, in order, for the first one that is wrong.
`apply/audit.py` appends and verifies through SQLAlchemy; `db/thin.py` runs the same scan on the
raw driver, so that `audit verify` on an intact chain never imports SQLAlchemy. Nothing here does
I/O but read USERCTL_AUDIT_KEY."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Final, Iterable, Literal, NamedTuple, Sequence

import orjson

from userctl.canonical import canonical_bytes, scalar_record_bytes
from userctl.clock import naive_utc

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
        # int(): a driver may read a stored integer back as another type (verify's definition).
        "organization_id": int(organization_id),
        "seq": int(seq),
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
        fields["operator_verified"] = bool(operator_verified)  # MariaDB reads back 0/1
    # Likewise the reason and the earlier event, added by migration 0004.
    if reason is not None:
        fields["reason"] = reason
    if refers_to is not None:
        fields["refers_to"] = int(refers_to)
    return fields


def hashed_time(created_at: dt.datetime) -> str:
    """The time as the hash covers it: frozen at the form events were first written in (Python's
    isoformat, any fraction kept), so a change to how times are shown never breaks a chain."""
    return naive_utc(created_at).isoformat() + "Z"


def event_hmac(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def scan(
    batches: Iterable[Sequence[Sequence[Any]]],
    org_id: int,
    wanted: str | None,
    key: bytes | None,
    read_time: Callable[[Any], Any] | None,
) -> Scanned:
    """The chain's events (tuples in SCANNED's order, in seq then id order) judged in order: the
    first wrong one, the one before it and the condition it fails (`Fault`), or none. This is
    the one statement of what an intact event is; `apply/audit.py` only words what it finds.
    `read_time` is SQLAlchemy's reader of a stored time, where it has one, so that the time
    hashed is the one SQLAlchemy would give."""
    organization_id = int(org_id)
    head_seq: int | None = 0 if wanted == GENESIS else None
    events, last = 0, GENESIS
    # The event before: none yet (seq 0, and an id below any).
    prev_seq, prev_hash, prev_id = 0, GENESIS, -math.inf
    bad: Bad | None = None
    # The events of one write share their time: formatted once per run of them.
    stored_time: Any = None
    time = ""
    sha256, dumps = hashlib.sha256, orjson.dumps
    looked_for = "" if wanted is None else wanted  # a str: comparing with None is slower
    for batch in batches:
        events += len(batch)
        last = str(batch[-1][12])
        if bad is not None:
            continue  # only counting remains
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
        ) in batch:
            # The conditions, in the order they are judged: the first that fails is the fault.
            # The values as the driver gives them (no int(): a seq or id of another type can
            # only make the event look wrong).
            if seq != prev_seq + 1:
                fault: Fault | None = SEQ
            elif prev != prev_hash:
                fault = LINK
            elif id_ < prev_id:
                fault = ORDER
            else:
                fault = None
                if created_at != stored_time:
                    stored_time = created_at
                    time = hashed_time(created_at if read_time is None else read_time(created_at))
                payload: bytes | None = None
                if operator_verified is not None:
                    # `hashed_fields` of the event, its keys already in canonical (sorted) order,
                    # so orjson needs neither the call nor the sort (tests/core/test_chain.py holds
                    # the bytes equal).
                    fields = {
                        "action": action,
                        "address": address,
                        "after": after,
                        "before": before,
                        "operator": operator,
                        "operator_verified": bool(operator_verified),
                        "organization_id": organization_id,
                        "plan_digest": plan_digest,
                        "prev_hash": prev,
                        "seq": seq,
                        "time": time,
                        "verified_by": verified_by,
                    }
                    try:
                        if reason is None and refers_to is None:
                            payload = dumps(fields)
                        else:
                            if reason is not None:
                                fields["reason"] = reason
                            if refers_to is not None:
                                fields["refers_to"] = int(refers_to)
                            payload = scalar_record_bytes(fields)
                    except (TypeError, ValueError):  # orjson.JSONEncodeError too
                        pass  # a value orjson refuses: the definition below writes it
                if payload is None or sha256(payload).hexdigest() != hash_:
                    # The fast bytes only stand in for the definition's, which decides.
                    payload = event_payload(
                        organization_id,
                        seq,
                        time,
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
                    if sha256(payload).hexdigest() != hash_:
                        fault = HASH
                if key is not None and fault is None:
                    if mac is None:
                        fault = NO_HMAC
                    elif not hmac.compare_digest(str(mac), event_hmac(key, payload)):
                        fault = HMAC
            if fault is not None:
                bad = Bad(int(id_), None if prev_seq == 0 else int(prev_id), fault)
                break
            if hash_ == looked_for:
                head_seq = seq
            prev_seq, prev_hash, prev_id = seq, hash_, id_
    return Scanned(events, last, head_seq, bad)


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
