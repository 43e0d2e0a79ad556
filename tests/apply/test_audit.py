"""The audit hash chain: an intact chain verifies; editing, deleting, reordering and truncating
events are each detected and the first bad event named; the HMAC defeats a rebuilt chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import types

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userctl import chain
from userctl.apply import audit
from userctl.apply.audit import GENESIS, AuditRecord, append_events, verify_chain
from userctl.db.models import AuditEvent
from userctl.state import canonical_json

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)
events_t = AuditEvent.__table__


@pytest.fixture(autouse=True)
def no_audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(audit.ENV_KEY, raising=False)


def records(n: int, start: int = 1) -> list[AuditRecord]:
    return [
        AuditRecord(
            operator="ana@acme.co",
            verified_by="totp",
            action="user.update",
            address=f'user["u{i}@acme.co"]',
            before={"first_name": f"Old{i}"},
            after={"first_name": f"New{i}", "note": "ñandú ✓"},
            plan_digest="sha256:" + "ab" * 32,
        )
        for i in range(start, start + n)
    ]


def seed(engine: Engine, org_id: int, n: int = 5) -> str:
    """n events in two batches (two applies), a minute apart."""
    with engine.begin() as conn:
        append_events(conn, org_id, records(2), T0)
    with engine.begin() as conn:
        return append_events(conn, org_id, records(n - 2, start=3), T0 + dt.timedelta(minutes=1))


def verify(engine: Engine, org_id: int, head: str | None = None) -> audit.VerifyResult:
    with engine.connect() as conn:
        return verify_chain(conn, org_id, head)


def execute(engine: Engine, statement: sa.Executable) -> None:
    with engine.begin() as conn:
        conn.execute(statement)


def test_intact_chain_verifies_and_returns_its_head(engine: Engine, factory) -> None:
    org = factory.org()
    head = seed(engine, org)
    result = verify(engine, org, head)
    assert result.ok, result.problem
    assert (result.events, result.head) == (5, head)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(events_t).order_by(events_t.c.seq)).all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert json.loads(rows[0].after) == {"first_name": "New1", "note": "ñandú ✓"}
    assert all(r.hmac is None for r in rows)


def test_empty_chain_is_intact_with_the_genesis_head(engine: Engine, factory) -> None:
    org = factory.org()
    assert verify(engine, org) == audit.VerifyResult(0, GENESIS, False)
    with engine.begin() as conn:
        assert append_events(conn, org, [], T0) == GENESIS


def test_organizations_have_separate_chains(engine: Engine, factory) -> None:
    acme, other = factory.org("acme"), factory.org("other")
    seed(engine, acme)
    with engine.begin() as conn:
        head = append_events(conn, other, records(1), T0)
    assert verify(engine, other, head).events == 1
    assert verify(engine, acme).ok


def test_an_edited_event_is_named(engine: Engine, factory) -> None:
    org = factory.org()
    seed(engine, org)
    execute(
        engine,
        events_t.update()
        .where(events_t.c.seq == 3)
        .values(after=canonical_json({"first_name": "Eve"})),
    )
    result = verify(engine, org)
    assert not result.ok and result.bad_seq == 3
    assert "event #3" in (result.problem or "") and "altered" in (result.problem or "")


def test_an_edited_event_with_its_hash_recomputed_breaks_the_next_link(
    engine: Engine, factory
) -> None:
    org = factory.org()
    seed(engine, org)
    rebuild(engine, org, edit_seq=2, only_that_row=True)
    result = verify(engine, org)
    assert result.bad_seq == 3
    assert "does not chain onto event #2" in (result.problem or "")


def test_a_deleted_event_is_named(engine: Engine, factory) -> None:
    org = factory.org()
    seed(engine, org)
    execute(engine, events_t.delete().where(events_t.c.seq == 2))
    result = verify(engine, org)
    assert not result.ok and result.bad_seq == 3
    assert "event #2 is missing" in (result.problem or "")


def test_swapped_events_are_named_as_out_of_order(engine: Engine, factory) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.begin() as conn:  # through a free seq: the unique key forbids a direct swap
        conn.execute(events_t.update().where(events_t.c.seq == 2).values(seq=-2))
        conn.execute(events_t.update().where(events_t.c.seq == 3).values(seq=2))
        conn.execute(events_t.update().where(events_t.c.seq == -2).values(seq=3))
    result = verify(engine, org)
    assert not result.ok and result.bad_seq == 2
    assert "event #2" in (result.problem or "") and "out of order" in (result.problem or "")


def test_a_truncated_tail_is_caught_only_with_the_head(engine: Engine, factory) -> None:
    org = factory.org()
    head = seed(engine, org)
    execute(engine, events_t.delete().where(events_t.c.seq == 5))
    assert verify(engine, org).ok  # a shorter chain is still a valid chain...
    result = verify(engine, org, head)  # ...but not the one whose head was recorded
    assert not result.ok
    assert head in (result.problem or "") and "removed from the end" in (result.problem or "")


def test_a_head_followed_by_later_events_is_intact_and_counts_them(engine: Engine, factory) -> None:
    """The auditor's case: a head recorded after one apply, more events since (an approval, a
    mistyped code): the chain is intact and the recorded head is in it."""
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        third = conn.execute(sa.select(events_t.c.hash).where(events_t.c.seq == 3)).scalar_one()
    result = verify(engine, org, third)
    assert result.ok and result.after_head == 2, result.problem
    assert verify(engine, org, GENESIS).after_head == 5  # the empty chain's head starts every chain


def test_a_recorded_head_whose_event_was_altered_is_refused(engine: Engine, factory) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        third = conn.execute(sa.select(events_t.c.hash).where(events_t.c.seq == 3)).scalar_one()
    # The event is rewritten and the chain rebuilt over it (no key): the chain alone is intact,
    # but the head the auditor recorded is no longer in it.
    rebuild(engine, org, edit_seq=3)
    assert verify(engine, org).ok
    result = verify(engine, org, third)
    assert not result.ok and result.after_head is None
    assert third in (result.problem or "") and "no event of this chain" in (result.problem or "")


def test_a_recorded_head_in_a_broken_chain_is_not_vouched_for(engine: Engine, factory) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        fourth = conn.execute(sa.select(events_t.c.hash).where(events_t.c.seq == 4)).scalar_one()
    # An event before the recorded head is edited in place: the head's own row still carries
    # the hash, but it no longer stands at the end of an intact chain.
    execute(
        engine, events_t.update().where(events_t.c.seq == 2).values(address='user["x@acme.co"]')
    )
    result = verify(engine, org, fourth)
    assert not result.ok and result.bad_seq == 2 and result.after_head is None


def test_a_head_found_only_past_a_broken_event_is_refused(engine: Engine, factory) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        fifth = conn.execute(sa.select(events_t.c.hash).where(events_t.c.seq == 5)).scalar_one()
    execute(engine, events_t.delete().where(events_t.c.seq == 3))
    result = verify(engine, org, fifth)
    assert not result.ok and result.bad_seq == 4 and "missing" in (result.problem or "")


def test_without_a_key_a_rebuilt_chain_passes(engine: Engine, factory) -> None:
    """Why the HMAC exists: with write access one can recompute a bare hash chain."""
    org = factory.org()
    seed(engine, org)
    rebuild(engine, org, edit_seq=2)
    assert verify(engine, org).ok


def test_with_a_key_a_rebuilt_chain_fails_its_hmac(
    engine: Engine, factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(audit.ENV_KEY, "k" * 40)
    org = factory.org()
    seed(engine, org)
    assert verify(engine, org).ok and verify(engine, org).hmac_checked
    rebuild(engine, org, edit_seq=2)
    result = verify(engine, org)
    assert not result.ok and result.bad_seq == 2
    assert "HMAC" in (result.problem or "")


def test_a_wrong_key_fails_and_a_stripped_hmac_fails(
    engine: Engine, factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(audit.ENV_KEY, "right-key")
    org = factory.org()
    seed(engine, org)
    monkeypatch.setenv(audit.ENV_KEY, "wrong-key")
    assert verify(engine, org).bad_seq == 1
    monkeypatch.setenv(audit.ENV_KEY, "right-key")
    execute(engine, events_t.update().where(events_t.c.seq == 4).values(hmac=None))
    result = verify(engine, org)
    assert result.bad_seq == 4 and "no HMAC" in (result.problem or "")


def rebuild(engine: Engine, org_id: int, edit_seq: int, only_that_row: bool = False) -> None:
    """What an attacker with write access but without the key can do: edit an event, then
    recompute the bare hashes (of that row only, or of the whole chain from there on)."""
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(events_t).where(events_t.c.organization_id == org_id).order_by(events_t.c.seq)
        ).all()
        prev = GENESIS
        for row in rows:
            data = dict(row._mapping)
            if row.seq < edit_seq or (only_that_row and row.seq > edit_seq):
                prev = row.hash
                continue
            if row.seq == edit_seq:
                data["after"] = canonical_json({"first_name": "Mallory"})
            data["prev_hash"] = prev
            payload = canonical_json(
                {
                    "organization_id": data["organization_id"],
                    "seq": data["seq"],
                    "time": data["created_at"].isoformat() + "Z",
                    **{
                        k: data[k]
                        for k in (
                            "operator",
                            "verified_by",
                            "plan_digest",
                            "action",
                            "address",
                            "before",
                            "after",
                            "prev_hash",
                        )
                    },
                    # An attacker who rebuilds the chain covers every field, this one too.
                    **(
                        {"operator_verified": bool(data["operator_verified"])}
                        if data["operator_verified"] is not None
                        else {}
                    ),
                }
            ).encode()
            prev = hashlib.sha256(payload).hexdigest()
            conn.execute(
                events_t.update()
                .where(events_t.c.id == row.id)
                .values(after=data["after"], prev_hash=data["prev_hash"], hash=prev)
            )


# --- streaming: the chain is read in bounded batches, never whole ----------------------------


def test_a_chain_longer_than_a_batch_verifies_and_names_a_problem_past_the_first_batch(
    engine: Engine, factory
) -> None:
    org = factory.org()
    with engine.begin() as conn:
        head = append_events(conn, org, records(10), T0)
    with engine.connect() as conn:
        assert verify_chain(conn, org, head, batch_size=3) == audit.VerifyResult(
            10, head, False, after_head=0
        )
        seventh = conn.execute(sa.select(events_t.c.hash).where(events_t.c.seq == 7)).scalar_one()
        at_seventh = verify_chain(conn, org, seventh, batch_size=3)
        assert at_seventh.ok and at_seventh.after_head == 3
    with engine.begin() as conn:  # swap #7 and #8 through a free seq
        conn.execute(events_t.update().where(events_t.c.seq == 7).values(seq=-7))
        conn.execute(events_t.update().where(events_t.c.seq == 8).values(seq=7))
        conn.execute(events_t.update().where(events_t.c.seq == -7).values(seq=8))
    with engine.connect() as conn:
        result = verify_chain(conn, org, head, batch_size=3)
        # The message names where the event it chains onto now is, found after the stream ended.
        assert (result.events, result.head, result.bad_seq) == (10, head, 7)
        assert "out of order: it was written right after the event now at #8" in (
            result.problem or ""
        )


def test_the_fast_scan_alone_verifies_every_kind_of_event(
    engine: Engine, factory, monkeypatch
) -> None:
    """An intact chain is verified by the scan's fast bytes alone: were they to drift from the
    definition (`chain.event_payload`: a field missed, converted otherwise), every event would
    be hashed again the definition's way and the chain would still pass, only slower; here that
    way refuses to run. Reasons, an earlier event referred to, an operator verified or not, two
    write times, and HMACs, across several batches."""
    monkeypatch.setenv(audit.ENV_KEY, "k3y")
    org = factory.org()
    kinds = [
        AuditRecord("ana@acme.co", "totp", "user.update", 'user["a@acme.co"]', after={"n": 1}),
        AuditRecord(
            "ana@acme.co",
            "approval:bo@acme.co+totp",
            "user.deactivate",
            'user["ñ@acme.co"]',
            before={"status": "active", "tags": ["x", "ÿ\U0001f600"]},
            after={"status": "inactive"},
            plan_digest="sha256:" + "cd" * 32,
            operator_verified=True,
            reason='quarterly review: "leavers" \\ ✓',
            refers_to=1,
        ),
        AuditRecord("bo@acme.co", "none", "policy.set", 'policy["x"]', operator_verified=False),
    ]
    with engine.begin() as conn:
        append_events(conn, org, kinds * 3, T0)
    with engine.begin() as conn:
        head = append_events(conn, org, kinds, T0 + dt.timedelta(seconds=1))

    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the exact path ran for an intact chain")

    monkeypatch.setattr(chain, "event_payload", refused)
    with engine.connect() as conn:
        assert verify_chain(conn, org, head, batch_size=5) == audit.VerifyResult(
            12, head, True, after_head=0
        )


def test_the_exact_path_decides_when_the_fast_scan_disagrees(
    engine: Engine, factory, monkeypatch
) -> None:
    """The scan's fast bytes only stand in for the definition's (`chain.event_payload`), which
    decides. Were the fast encoder ever to write other bytes than the canonical ones for an
    event, that event is hashed again the definition's way and the chain still found intact,
    head and all; an altered event is still found."""
    org = factory.org()
    with engine.begin() as conn:
        head = append_events(conn, org, records(6), T0)
    real = orjson.dumps

    def diverging(record, **options):  # type: ignore[no-untyped-def]
        encoded = real(record, **options)
        return encoded + b" " if record["seq"] == 4 else encoded

    monkeypatch.setattr(
        chain, "orjson", types.SimpleNamespace(dumps=diverging, Fragment=orjson.Fragment)
    )
    with engine.connect() as conn:
        assert verify_chain(conn, org, head, batch_size=4) == audit.VerifyResult(
            6, head, False, after_head=0
        )
    with engine.begin() as conn:
        conn.execute(
            events_t.update()
            .where(events_t.c.organization_id == org, events_t.c.seq == 5)
            .values(after=canonical_json({"first_name": "Mallory"}))
        )
    with engine.connect() as conn:
        result = verify_chain(conn, org, head, batch_size=4)
    assert (result.bad_seq, result.events, result.head) == (5, 6, head)
    assert "was altered: its contents no longer match its hash" in (result.problem or "")


def _watched(batches, seen, statement, size):  # type: ignore[no-untyped-def]
    """`batches`, passed on, once the cursor it opened is noted in `seen` with `statement`."""
    first = next(batches, None)
    cursor = batches.gi_frame.f_locals["cursor"] if batches.gi_frame else None
    seen.append((statement, size, cursor))
    if first is not None:
        yield first
        yield from batches


def test_cli_verify_streams_the_events_through_a_server_side_cursor(
    engine: Engine, factory, runner, monkeypatch
) -> None:
    """Memory flat in the number of events: `audit verify` reads the chain as the driver's
    tuples through a streaming cursor (PostgreSQL: a named server-side cursor; MariaDB: an
    unbuffered one), VERIFY_BATCH rows per fetch, rather than fetching every row at once: on the
    raw driver (db/thin.py) for an intact chain. The real reader runs; the test only looks at the
    cursor it opened."""
    from userctl.db import plan_sql, thin

    org = factory.org()
    seed(engine, org)
    seen: list[tuple[str, int, object]] = []
    real = thin._Rows.batches
    dialect = engine.dialect.name

    def watched(self, name, size, **params):  # type: ignore[no-untyped-def]
        return _watched(
            real(self, name, size, **params), seen, plan_sql.SQL[dialect][name][0], size
        )

    monkeypatch.setattr(thin._Rows, "batches", watched)
    result = runner("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "5 events" in result.stdout
    assert len(seen) == 1
    statement, batch_size, cursor = seen[0]
    assert "FROM audit_events" in statement
    assert "ORDER BY audit_events.seq, audit_events.id" in statement
    assert batch_size == audit.VERIFY_BATCH
    if engine.dialect.name == "postgresql":
        import psycopg

        assert isinstance(cursor, psycopg.ServerCursor)
    elif engine.dialect.name == "mysql":
        import pymysql.cursors

        assert isinstance(cursor, pymysql.cursors.SSCursor)

    # The SQLAlchemy path (where the driver path declines, and to word a problem) streams alike.
    from userctl.db import driver

    def watched_core(conn, query, batch_size):  # type: ignore[no-untyped-def]
        return _watched(
            driver.driver_batches(conn, query, batch_size), seen, str(query), batch_size
        )

    monkeypatch.setattr(audit, "driver_batches", watched_core)
    with engine.connect() as conn:
        assert verify_chain(conn, org).events == 5
    statement, batch_size, cursor = seen[1]
    assert "ORDER BY audit_events.seq, audit_events.id" in statement
    assert batch_size == audit.VERIFY_BATCH
    if engine.dialect.name == "postgresql":
        assert isinstance(cursor, psycopg.ServerCursor)
    elif engine.dialect.name == "mysql":
        assert isinstance(cursor, pymysql.cursors.SSCursor)


def test_driver_batches_stream_in_fetches_of_the_batch_size(engine: Engine, factory) -> None:
    org = factory.org()
    with engine.begin() as conn:
        append_events(conn, org, records(7), T0)
    query = (
        sa.select(events_t.c.seq).where(events_t.c.organization_id == org).order_by(events_t.c.seq)
    )
    from userctl.db.driver import driver_batches

    with engine.connect() as conn:
        batches = [[tuple(r) for r in b] for b in driver_batches(conn, query, 3)]
    assert batches == [[(1,), (2,), (3,)], [(4,), (5,), (6,)], [(7,)]]


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_verify_intact_then_broken(engine: Engine, factory, runner) -> None:
    org = factory.org()
    head = seed(engine, org)
    result = runner("audit", "verify", "--head", head)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"audit chain intact: 5 events, head {head}",
        f"recorded head {head} is in the chain; 0 event(s) were appended after it",
    ]
    assert "HMACs not checked" in result.stderr

    execute(
        engine, events_t.update().where(events_t.c.seq == 4).values(address='user["eve@acme.co"]')
    )
    result = runner("audit", "verify")
    assert result.exit_code == 4
    assert (
        "audit chain of acme-payments is broken: event #4" in result.stderr
        and "altered" in result.stderr
    )
    assert "Traceback" not in result.output


def test_cli_verify_names_a_deleted_event(engine: Engine, factory, runner) -> None:
    org = factory.org()
    seed(engine, org)
    execute(engine, events_t.delete().where(events_t.c.seq == 2))
    result = runner("audit", "verify")
    assert result.exit_code == 4, result.output
    assert (
        "audit chain of acme-payments is broken" in result.stderr
        and "event #2 is missing" in result.stderr
    )
    assert "Traceback" not in result.output and result.stdout == ""


def test_cli_verify_names_reordered_events(engine: Engine, factory, runner) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.begin() as conn:  # through a free seq: the unique key forbids a direct swap
        conn.execute(events_t.update().where(events_t.c.seq == 3).values(seq=-3))
        conn.execute(events_t.update().where(events_t.c.seq == 4).values(seq=3))
        conn.execute(events_t.update().where(events_t.c.seq == -3).values(seq=4))
    result = runner("audit", "verify")
    assert result.exit_code == 4, result.output
    assert (
        "audit chain of acme-payments is broken: event #3" in result.stderr
        and "out of order" in result.stderr
    )
    assert "Traceback" not in result.output and result.stdout == ""


def test_cli_verify_head_with_events_appended_after_it_exits_0_and_counts_them(
    engine: Engine, factory, runner
) -> None:
    org = factory.org()
    with engine.begin() as conn:
        recorded = append_events(conn, org, records(2), T0)  # what apply printed
    seed(engine, org)  # five more events since: approvals, attestations, a wrong code
    result = runner("audit", "verify", "--head", recorded.upper())
    assert result.exit_code == 0, result.output
    assert f"recorded head {recorded} is in the chain; 5 event(s) were appended after it" in (
        result.stdout
    )
    data = json.loads(runner("audit", "verify", "--head", recorded, "--format", "json").stdout)
    assert (data["ok"], data["events"], data["events_after_head"]) == (True, 7, 5)
    assert data["expected_head"] == recorded and data["broken"] is None
    rebuild(engine, org, edit_seq=2)  # the recorded event rewritten, the chain rebuilt
    result = runner("audit", "verify", "--head", recorded)
    assert result.exit_code == 4 and "no event of this chain" in result.stderr
    assert "Traceback" not in result.output


def test_cli_verify_detects_a_truncated_tail_with_head(engine: Engine, factory, runner) -> None:
    org = factory.org()
    head = seed(engine, org)
    execute(engine, events_t.delete().where(events_t.c.seq == 5))
    assert runner("audit", "verify").exit_code == 0
    result = runner("audit", "verify", "--head", head)
    assert result.exit_code == 4 and "removed from the end" in result.stderr


def test_cli_verify_with_key_reports_hmac(
    engine: Engine, factory, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(audit.ENV_KEY, "audit-key")
    org = factory.org()
    seed(engine, org)
    result = runner("audit", "verify")
    assert result.exit_code == 0 and "HMACs not checked" not in result.stderr
    rebuild(engine, org, edit_seq=1)
    result = runner("audit", "verify")
    assert result.exit_code == 4 and "event #1" in result.stderr and "HMAC" in result.stderr


def test_cli_log_text_json_and_filters(engine: Engine, factory, runner) -> None:
    org = factory.org()
    with engine.begin() as conn:
        append_events(
            conn,
            org,
            [
                AuditRecord(
                    "ana@acme.co", "totp", "user.create", 'user["bob@acme.co"]', None, {"x": 1}
                )
            ],
            T0,
        )
        append_events(
            conn,
            org,
            [
                AuditRecord(
                    "carl@acme.co",
                    "approval",
                    "assignment.assign",
                    'assignment["bob@acme.co" -> "ops-main"]',
                ),
                AuditRecord("carl@acme.co", "approval", "role.update", 'role["Admin"]'),
                AuditRecord("ana@acme.co", "totp", "user.update", 'user["bob@acme.com"]'),
            ],
            T0 + dt.timedelta(days=1),
        )
    text = runner("audit", "log")
    assert text.exit_code == 0
    # A header names the columns, then one event a line.
    assert text.stdout.splitlines()[0].startswith("TIME  OPERATOR  VERIFIED BY  ACTION  ADDRESS")
    assert (
        text.stdout.splitlines()[1]
        == '2026-03-01T12:00:00Z  ana@acme.co  totp  user.create  user["bob@acme.co"]'
    )
    assert len(text.stdout.splitlines()) == 1 + 4

    data = json.loads(runner("audit", "log", "--format", "json").stdout)
    assert [e["seq"] for e in data] == [1, 2, 3, 4]
    assert data[0]["after"] == {"x": 1} and data[0]["before"] is None and len(data[0]["hash"]) == 64

    about_bob = json.loads(
        runner("audit", "log", "--user", "Bob@Acme.co", "--format", "json").stdout
    )
    assert [e["seq"] for e in about_bob] == [1, 2]  # not bob@acme.com
    by_carl = json.loads(
        runner("audit", "log", "--user", "carl@acme.co", "--format", "json").stdout
    )
    assert [e["seq"] for e in by_carl] == [2, 3]
    since = json.loads(runner("audit", "log", "--since", "2026-03-02", "--format", "json").stdout)
    assert [e["seq"] for e in since] == [2, 3, 4]
    aware = json.loads(
        runner("audit", "log", "--since", "2026-03-01T13:00:00+02:00", "--format", "json").stdout
    )
    assert [e["seq"] for e in aware] == [1, 2, 3, 4]  # 11:00 UTC

    bad = runner("audit", "log", "--since", "yesterday")
    assert bad.exit_code == 1 and "--since 'yesterday' is not an ISO 8601 date" in bad.stderr


def test_cli_needs_an_organization_when_there_are_several(factory, runner) -> None:
    factory.org("acme")
    factory.org("zeta")
    result = runner("audit", "verify")
    assert (
        result.exit_code == 1
        and "2 organizations (acme, zeta): choose one with --organization" in result.stderr
    )
    assert runner("--organization", "zeta", "audit", "verify").exit_code == 0
    missing = runner("--organization", "nope", "audit", "log")
    assert missing.exit_code == 1 and "'nope' does not exist" in missing.stderr


def test_cli_log_streams_the_events_and_writes_the_same_document(
    engine: Engine, factory, runner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """`audit log --format json` reads the driver's tuples through a streaming cursor (memory flat
    in the number of events; PostgreSQL: a named server-side cursor, MariaDB: an unbuffered one),
    VERIFY_BATCH rows a fetch, and writes exactly the document `json.dumps` of the list would."""
    from userctl.apply import audit_log
    from userctl.db import driver

    org = factory.org()
    seed(engine, org)
    seen: list[tuple[str, int, object]] = []

    def watched(conn, query, batch_size):  # type: ignore[no-untyped-def]
        return _watched(
            driver.driver_batches(conn, query, batch_size), seen, str(query), batch_size
        )

    monkeypatch.setattr(audit_log, "driver_batches", watched)
    result = runner("audit", "log", "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    statement, batch_size, cursor = seen[0]
    assert "FROM audit_events" in statement
    assert "ORDER BY audit_events.seq, audit_events.id" in statement
    assert batch_size == audit.VERIFY_BATCH
    if engine.dialect.name == "postgresql":
        import psycopg

        assert isinstance(cursor, psycopg.ServerCursor)
    elif engine.dialect.name == "mysql":
        import pymysql.cursors

        assert isinstance(cursor, pymysql.cursors.SSCursor)
    with engine.connect() as conn:
        events = audit.list_events(conn, org)
    assert len(events) > 1
    assert result.stdout == json.dumps(events, indent=2, ensure_ascii=False) + "\n"
    # No event at all is an empty array, as before.
    empty = runner("audit", "log", "--format", "json", "--user", "nobody@acme.co")
    assert empty.exit_code == 0 and empty.stdout == "[]\n"
