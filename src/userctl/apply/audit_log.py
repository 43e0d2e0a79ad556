"""`audit log`'s read: the events of `audit.iter_events`, as the same dicts, a batch at a time
from the driver's own tuples (db/driver.driver_batches) instead of one SQLAlchemy Row each. A
million events spent most of their time in the Row machinery; here each event is one tuple
unpacked. The query is `audit.iter_events`'s (its filters and order, narrowed to the shown
columns), so the Core table stays the one place that knows the schema, and each column is
converted as SQLAlchemy converts it (`driver.column_reader`); tests/apply/test_audit_log_stream.py
holds the two reads equal on all three backends."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any, Callable, Iterator, NamedTuple

import orjson
from sqlalchemy import Connection

from userctl import chain
from userctl.apply import audit
from userctl.canonical import orjson_exact
from userctl.clock import iso_z
from userctl.db.driver import column_reader, driver_batches
from userctl.db.tables import audit_events

# The columns of an event, in the order the dict below unpacks them: every column the chain's
# scan reads but the id.
_SHOWN = chain.SCANNED[1:]


# What orjson writes as json does, as the exact types of a flat record's values.
_SCALARS = frozenset({str, int, bool, type(None)})


class EventBatch(NamedTuple):
    events: list[dict[str, Any]]
    # Whether every value is a dict or list of str, int, bool and None, where orjson writes json's
    # bytes (render/streamed.py): the columns' values are by their types, a record as parsed.
    plain: bool


def event_batches(
    conn: Connection,
    org_id: int,
    *,
    since: dt.datetime | None = None,
    user: str | None = None,
    records: bool = True,
) -> Iterator[EventBatch]:
    """`audit.iter_events(conn, org_id, since=since, user=user)` in lists of at most
    VERIFY_BATCH events (never an empty one): the same dicts, keys and order. records=False
    leaves `before` and `after` as the stored text (the text log shows neither, and reading them
    is most of an event's work). Streamed as iter_events is, so MariaDB allows no other statement
    on the connection until the iteration ends."""
    table = audit_events
    query = audit._events_query(org_id, since, user).with_only_columns(
        *(table.c[name] for name in _SHOWN)
    )
    read_time = column_reader(conn, table.c.created_at)
    with (
        audit.events_read(conn, org_id),
        contextlib.closing(driver_batches(conn, query, audit.VERIFY_BATCH)) as batches,
    ):
        yield from _batches(batches, read_time, records)


def _batches(
    batches: Iterator[list[Any]], read_time: Callable[[Any], Any] | None, records: bool
) -> Iterator[EventBatch]:
    for batch in batches:
        # An apply writes its events at one instant: each stored time is converted once a batch.
        times: dict[Any, str] = {}
        events = []
        plain = [True]
        for (
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
            prev_hash,
            hash_,
            hmac,
            reason,
            refers_to,
        ) in batch:
            # As audit._event_data: a value no event is written with raises ValueError, which
            # the events_read around this read turns into the broken chain audit verify names.
            try:
                time = times[created_at]
            except KeyError:
                time = times[created_at] = iso_z(
                    created_at if read_time is None else read_time(created_at)
                )
            # chain.is_stored_text and is_stored_text_or_none, inline: two calls per event
            # showed in the time of a million events' log.
            if not (
                operator.__class__
                is verified_by.__class__
                is action.__class__
                is address.__class__
                is prev_hash.__class__
                is hash_.__class__
                is str
                and (plan_digest is None or plan_digest.__class__ is str)
                and (hmac is None or hmac.__class__ is str)
                and (reason is None or reason.__class__ is str)
                and (before is None or before.__class__ is str)
                and (after is None or after.__class__ is str)
            ):
                raise ValueError("a text column holds no text")
            events.append(
                {
                    "seq": seq if seq.__class__ is int else chain.stored_int(seq),
                    "time": time,
                    "operator": operator,
                    "verified_by": verified_by,
                    "operator_verified": (
                        operator_verified
                        if operator_verified is None or operator_verified.__class__ is bool
                        else bool(chain.stored_flag(operator_verified))
                    ),
                    "plan_digest": plan_digest,
                    "action": action,
                    "address": address,
                    "before": before if before is None or not records else _record(before, plain),
                    "after": after if after is None or not records else _record(after, plain),
                    "prev_hash": prev_hash,
                    "hash": hash_,
                    "hmac": hmac,
                    "reason": reason,
                    "refers_to": (
                        refers_to
                        if refers_to is None or refers_to.__class__ is int
                        else chain.stored_int(refers_to)
                    ),
                }
            )
        if events:
            yield EventBatch(events, plain[0])


def _record(text: str, plain: list[bool]) -> Any:
    """`json.loads(text)`, through orjson where that is sure to be the same value: orjson reads
    an int beyond 64 bits as a float (and refuses NaN, the infinities and lone surrogates, which
    json reads), so a value holding a float, or refused, is read by json. Clears plain[0] when
    the value is not plain (EventBatch)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    else:
        # A record is a flat dict of scalars, but for the rare nested one.
        if type(value) is dict and set(map(type, value.values())) <= _SCALARS:
            return value
        if orjson_exact(value):
            return value
    value = json.loads(text)
    if not orjson_exact(value):
        plain[0] = False
    return value
