"""`audit verify`'s fast path (`chain.Confirmer`) against the definition alone, on values no
generated chain holds: a stored value of another type than userctl writes (a float where text
was, an integer where text was, a float seq or refers_to, a flag of 2), an empty text where
NULL was, the same instant written another way, a change of case or of unicode normalisation.
The tables are what an operator with write access can make of them: on SQLite a column without
a type (any value kept as given), on PostgreSQL a column of JSON or bytea, on MariaDB a BLOB.
For every one, the scan (both read paths, one batch and batches of two) finds the same first
wrong event, the same event before it and the same condition as a scan that judges every event
by the definition (`chain._judge` over `chain.event_payload`'s bytes), and the CLI says so (exit
4 and the event, never an unexpected error): a fast path never calls a broken chain intact."""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import BACKENDS
from userctl import chain
from userctl.apply import audit
from userctl.apply.audit import AuditRecord, append_events
from userctl.db import thin
from userctl.db.driver import column_reader, driver_batches
from userctl.db.snapshot import audit_chain_query
from userctl.db.tables import audit_events as events_t

KEY = "k3y-for-tampered-values"
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 250000)


def _records() -> list[AuditRecord]:
    """One write of three events: a create (no before), an update (with a reason) and a delete
    (no after), the operator's name holding a character NFC and NFD write apart."""
    common = dict(
        operator="zoë@acme.co",
        verified_by="totp",
        plan_digest="sha256:" + "ab" * 32,
        operator_verified=True,
    )
    return [
        AuditRecord(
            action="user.create",
            address='user["ana@acme.co"]',
            after={"first_name": "Ana", "note": 'say "hi"\n\\ ✓'},
            **common,  # type: ignore[arg-type]
        ),
        AuditRecord(
            action="user.update",
            address='user["bo@acme.co"]',
            before={"first_name": "Bo"},
            after={"first_name": "Bob"},
            reason="TICKET-1",
            **common,  # type: ignore[arg-type]
        ),
        AuditRecord(
            action="user.delete",
            address='user["cy@acme.co"]',
            before={"first_name": "Cy"},
            refers_to=1,
            **common,  # type: ignore[arg-type]
        ),
    ]


def definition_scan(
    batches: Iterable[Sequence[Sequence[Any]]],
    org_id: int,
    key: bytes | None,
    read_time: Callable[[Any], Any] | None,
) -> chain.Scanned:
    """The scan as it was before the confirmer: every event judged by the definition
    (`chain._judge`), none confirmed by faster bytes."""
    state = chain.Confirmer(int(org_id), key, read_time, None)
    events, last, bad = 0, chain.GENESIS, None
    for batch in batches:
        events += len(batch)
        last = str(batch[-1][12])
        for row in batch if bad is None else ():
            fault = chain._judge(row, state)
            if fault is not None:
                bad = chain.Bad(
                    int(row[0]), None if state.prev_seq == 0 else int(state.prev_id), fault
                )
                break
            state.accept(row)
    return chain.Scanned(events, last, None, bad)


# --- The tables as an operator with write access can make them ----------------------------------


def _untyped_sqlite(conn: sa.Connection) -> None:
    """SQLite: audit_events rebuilt with columns of no type (values kept as given)."""
    names = ", ".join(c.name for c in events_t.columns)
    rest = ", ".join(c.name for c in events_t.columns if c.name != "id")
    conn.exec_driver_sql("ALTER TABLE audit_events RENAME TO audit_events_typed")
    conn.exec_driver_sql(f"CREATE TABLE audit_events (id INTEGER PRIMARY KEY, {rest})")
    conn.exec_driver_sql(f"INSERT INTO audit_events SELECT {names} FROM audit_events_typed")
    conn.exec_driver_sql("DROP TABLE audit_events_typed")


def _set(conn: sa.Connection, seq: int, column: str, value: Any) -> None:
    """One stored value replaced, as given (no SQLAlchemy type in the way)."""
    name = conn.dialect.identifier_preparer.quote(column)  # `before` is reserved on MariaDB
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    conn.exec_driver_sql(
        f"UPDATE audit_events SET {name} = {mark} WHERE seq = {mark}", (value, seq)
    )


def _stored(conn: sa.Connection, seq: int, column: str) -> Any:
    return conn.execute(sa.select(events_t.c[column]).where(events_t.c.seq == seq)).scalar_one()


Tamper = Callable[[sa.Connection], None]


def _value(seq: int, column: str, value: Any) -> Tamper:
    return lambda conn: _set(conn, seq, column, value)


def _edited(seq: int, column: str, edit: Callable[[Any], Any]) -> Tamper:
    return lambda conn: _set(conn, seq, column, edit(_stored(conn, seq, column)))


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def _reordered_keys(text: str) -> str:
    import json

    return json.dumps(dict(reversed(list(json.loads(text).items()))), ensure_ascii=False)


# On every backend, the columns as migrated: what any operator with write access can store.
EVERYWHERE: dict[str, Tamper] = {
    "before_empty_not_null": _value(1, "before", ""),
    "reason_empty_not_null": _value(1, "reason", ""),
    "reason_null_not_text": _value(2, "reason", None),
    "plan_digest_null": _value(2, "plan_digest", None),
    "plan_digest_empty": _value(3, "plan_digest", ""),
    "operator_nfd": _edited(2, "operator", _nfd),
    "operator_upper": _edited(1, "operator", str.upper),
    "verified_by_padded": _edited(3, "verified_by", lambda v: v + " "),
    "operator_verified_null": _value(2, "operator_verified", None),
    "operator_verified_false": _value(3, "operator_verified", False),
    "after_keys_reordered": _edited(1, "after", _reordered_keys),
    "after_escape_undone": _edited(1, "after", lambda v: v.replace("\\n", "\n")),
    "time_a_microsecond_on": lambda conn: conn.execute(
        events_t.update()
        .where(events_t.c.seq == 2)
        .values(created_at=T0 + dt.timedelta(microseconds=1))
    ),
    "refers_to_added": _value(2, "refers_to", 1),
    "refers_to_removed": _value(3, "refers_to", None),
    "seq_gap": _value(3, "seq", 30),
    "hash_upper": _edited(2, "hash", str.upper),
    "hmac_upper": _edited(2, "hmac", str.upper),
    "hmac_empty": _value(1, "hmac", ""),
    # A MAC that is no hex: compare_digest refuses a str it cannot take as ASCII (TypeError).
    "hmac_not_ascii": _value(2, "hmac", "é" * 64),
}

# SQLite with columns of no type: a value of any type, kept as given.
UNTYPED_SQLITE: dict[str, Tamper] = {
    "before_infinity_not_null": _value(1, "before", math.inf),
    "after_minus_infinity_not_null": _value(3, "after", -math.inf),
    "before_float": _value(1, "before", 1.5),
    "before_integer": _value(1, "before", 7),
    "action_integer": _value(2, "action", 7),
    "reason_infinity": _value(2, "reason", math.inf),
    "reason_infinity_not_null": _value(1, "reason", math.inf),
    "operator_verified_two": _value(2, "operator_verified", 2),
    "operator_verified_text": _value(2, "operator_verified", "1"),
    "operator_verified_float": _value(1, "operator_verified", 1.0),
    "operator_integer": _value(2, "operator", 7),
    "plan_digest_integer": _value(2, "plan_digest", 7),
    "seq_float": _value(2, "seq", 2.0),
    "seq_text": _value(2, "seq", "2"),
    "seq_half": _value(2, "seq", 2.5),
    "refers_to_float": _value(3, "refers_to", 1.0),
    "refers_to_fraction": _value(3, "refers_to", 1.25),
    "refers_to_text": _value(3, "refers_to", "1"),
    "refers_to_huge": _value(3, "refers_to", 2**62),
    "time_same_instant_other_text": _edited(
        2, "created_at", lambda v: v.replace(" ", "T") if isinstance(v, str) else v
    ),
    "hmac_number": _value(2, "hmac", 7),
    # Event #2 written twice (no unique key left to refuse it), the copy after the original.
    "duplicated": lambda conn: conn.exec_driver_sql(
        "INSERT INTO audit_events SELECT id + 100, "
        + ", ".join(c.name for c in events_t.columns if c.name != "id")
        + " FROM audit_events WHERE seq = 2"
    ),
    # Values no event was hashed with, which the definition cannot hash: altered, not a crash.
    "refers_to_blob": _value(3, "refers_to", b"\x01"),
    "address_blob": _edited(2, "address", lambda v: v.encode()),
    "before_blob": _value(2, "before", b"{}"),
    "time_number": _value(2, "created_at", 20260301),
}

# On SQLite as migrated: what is no time, kept as text in a DATETIME column.
EVERYWHERE_SQLITE: dict[str, Tamper] = {
    "time_no_time": _value(2, "created_at", "garbage"),
    "first_time_no_time": _value(1, "created_at", "2026-13-45 99:00:00"),
}


# PostgreSQL and MariaDB: a column retyped (and typed back after the test: the database is shared
# by the session), as SQL (to do, to undo).
RETYPED: dict[str, tuple[str, list[str], list[str]]] = {
    # `before` made JSON holding each stored text as a JSON string (the driver gives back the
    # same text), the create's NULL made the number 1e999 (the driver gives an infinity).
    "before_json_infinity_not_null": (
        "postgresql",
        [
            "ALTER TABLE audit_events ALTER COLUMN before TYPE json USING to_json(before)",
            "UPDATE audit_events SET before = '1e999'::json WHERE seq = 1",
        ],
        ["ALTER TABLE audit_events ALTER COLUMN before TYPE text USING before #>> '{}'"],
    ),
    # Bytes where text was (the driver gives bytes for binary columns).
    "reason_bytea": (
        "postgresql",
        [
            "ALTER TABLE audit_events ALTER COLUMN reason TYPE bytea "
            "USING convert_to(reason, 'UTF8')"
        ],
        [
            "ALTER TABLE audit_events ALTER COLUMN reason TYPE text "
            "USING convert_from(reason, 'UTF8')"
        ],
    ),
    "before_blob_column": (
        "mariadb",
        ["ALTER TABLE audit_events MODIFY `before` BLOB NULL"],
        ["ALTER TABLE audit_events MODIFY `before` TEXT NULL"],
    ),
}


def _sql(statements: list[str]) -> Tamper:
    def run(conn: sa.Connection) -> None:
        for statement in statements:
            conn.exec_driver_sql(statement)

    return run


# (backend, name, the tampering, what undoes it, whether SQLite's table is made untyped first)
CASES: list[tuple[str, str, Tamper, Tamper | None, bool]] = [
    *((b, name, tamper, None, False) for name, tamper in EVERYWHERE.items() for b in BACKENDS),
    *(("sqlite", name, tamper, None, True) for name, tamper in UNTYPED_SQLITE.items()),
    *(("sqlite", name, tamper, None, False) for name, tamper in EVERYWHERE_SQLITE.items()),
    *((b, name, _sql(do), _sql(undo), False) for name, (b, do, undo) in RETYPED.items()),
]


SAME_VALUE_STORED = {
    ("mariadb", "time_a_microsecond_on"),
    ("sqlite", "time_same_instant_other_text"),
}


# A stream of batches left open when the scan stopped used to be closed by the collector after
# its connection was gone ("Exception ignored ... Cannot operate on a closed database").
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("backend", "name", "tamper", "undo", "untyped"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_a_tampered_value_is_judged_as_the_definition_judges_it(
    engine: Engine,
    factory: Any,
    runner: Any,
    db_url: str,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    tamper: Tamper,
    undo: Tamper | None,
    untyped: bool,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(audit.ENV_KEY, KEY)
    key = chain.audit_key()
    org = factory.org()
    with engine.begin() as conn:
        append_events(conn, org, _records(), T0)
    if untyped:
        with engine.begin() as conn:
            _untyped_sqlite(conn)
    try:
        with engine.begin() as conn:
            tamper(conn)
        with engine.connect() as conn:
            read_time = column_reader(conn, events_t.c.created_at)
            query = audit_chain_query(org)
            slow = definition_scan(driver_batches(conn, query, 2), org, key, read_time)
            fast = [audit._scan(conn, org, None, key, size) for size in (2, 1000)]
        assert [s.bad for s in fast] == [slow.bad, slow.bad]
        # Every tampering leaves the chain broken (a stored 2, 1.0 or "1" is no value userctl
        # wrote, though bool() or int() would take it for one), but for what stores the same
        # instant: MariaDB's DATETIME keeps no microseconds, and SQLite's time text with a "T"
        # is read as the very instant its hash covers.
        assert slow.bad is not None or (backend, name) in SAME_VALUE_STORED
        on_driver = thin.scan_chain(db_url, "acme-payments", None, key)
        assert on_driver is None or on_driver[1].bad == slow.bad
        result = runner("audit", "verify")
        assert result.exit_code == (0 if slow.bad is None else 4), result.output
        # The log shows every event, or refuses to (exit 4) where one holds a value no event is
        # written with: never an internal error (exit 70).
        for fmt in ("text", "json"):
            logged = runner("audit", "log", "--format", fmt)
            assert logged.exit_code in (0, 4), (fmt, logged.output[-500:])
            if logged.exit_code == 4:  # naming the event audit verify names
                assert "the audit chain is broken: event #" in logged.stderr, logged.stderr
        # The other reader of the events (audit.list_events), as `review status` runs it.
        status = runner("review", "status")
        assert status.exit_code in (0, 4), status.output[-500:]
        made = runner(
            "evidence", "--since", "2020-01-01", "--until", "2099-12-31", "-o", str(tmp_path / "p")
        )
        assert made.exit_code in (0, 4), made.output[-500:]
        if "its events cannot be read" in made.output:
            assert not (tmp_path / "p").exists()  # no pack rather than half of one
        if slow.bad is not None:
            assert "audit chain of acme-payments is broken: event #" in result.stderr
    finally:
        if undo is not None:
            with engine.begin() as conn:
                undo(conn)
