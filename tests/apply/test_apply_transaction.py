"""The shape of apply's transaction, on every backend: the statements it sends (no DDL, the
organization lock taken first), an error after the audit events were written rolling back all
of it, and MariaDB's session lock timeout not outliving the apply on a pooled connection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    apply_args,
    bulk_org,
    code_at,
    every_change,
    exported,
    live_state,
    make_plan,
    rename,
    rows_of,
    save_plan,
    tables,
)
from tests.apply.test_notify import SmtpServer, send_env
from tests.conftest import Factory, Runner
from userctl.apply import apply_plan
from userctl.clock import utcnow
from userctl.db import models as m
from userctl.db.executor import CHUNK, Executor
from userctl.errors import DatabaseError, StalePlan
from userctl.planner import PlanOptions

DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|TRUNCATE|RENAME|GRANT|REVOKE)\b", re.IGNORECASE)
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def capture(engine: Engine) -> list[str]:
    statements: list[str] = []

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return statements


def is_lock(statement: str, backend: str) -> bool:
    flat = " ".join(statement.split()).upper()
    if backend == "sqlite":
        return flat == "BEGIN IMMEDIATE"
    return "FROM ORGANIZATIONS" in flat and flat.endswith("FOR UPDATE")


def test_apply_runs_no_ddl_and_takes_the_organization_lock_first(
    engine: Engine, org: Org, backend: str
) -> None:
    desired, options = every_change(engine)
    plan = make_plan(engine, desired, PlanOptions(**options))
    now = utcnow()
    statements = capture(engine)

    result = apply_plan(engine, plan, "root@acme.co", otp_code=code_at(org.root, now), now=now)

    assert result.applied == len(plan.active_changes)
    assert [s for s in statements if DDL.match(s)] == []
    locks = [i for i, s in enumerate(statements) if is_lock(s, backend)]
    first_write = next(i for i, s in enumerate(statements) if WRITE.match(s))
    assert locks and locks[0] < first_write, statements[: first_write + 1]
    if backend != "sqlite":
        assert not any(
            " ".join(s.split()).upper().startswith("BEGIN IMMEDIATE") for s in statements
        )


def test_failure_after_the_audit_events_rolls_back_everything_and_sends_nothing(
    engine: Engine,
    org: Org,
    runner: Runner,
    tmp_path: Path,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desired, options = every_change(engine)
    path = save_plan(engine, desired, tmp_path, **options)
    before = tables(engine)
    seen_in_transaction: list[tuple[int, int, int]] = []

    def failing_bump(self: Executor) -> int:
        # The last write of an apply: by now users, invitations and audit events are all written.
        def count(table: sa.FromClause) -> int:
            return int(
                self.conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )

        seen_in_transaction.append(
            (
                count(m.User.__table__),
                count(m.Notification.__table__),
                count(m.AuditEvent.__table__),
            )
        )
        raise DatabaseError("injected failure while bumping the serial")

    monkeypatch.setattr(Executor, "bump_serial", failing_bump)

    result = runner(*apply_args(path, "root@acme.co", org.root.code()), env=send_env(smtp.url))

    assert result.exit_code == 1, result.output
    assert "injected failure" in result.stderr and "Traceback" not in result.output
    [(users, notifications, events)] = seen_in_transaction
    assert users > len(before["users"]) and notifications == 3 and events == len(plan_changes(path))
    assert tables(engine) == before
    assert rows_of(engine, m.Notification) == [] and rows_of(engine, m.AuditEvent) == []
    assert smtp.inbox.messages == []


def plan_changes(path: Path) -> list[Any]:
    from tests.apply.apply_helpers import plan_of

    return list(plan_of(path).active_changes)


# --- MariaDB's session-wide lock timeout ---------------------------------------------------------


def session_lock_wait(engine: Engine, backend: str) -> tuple[Any, str]:
    """(server session id, this session's lock timeout) of the pooled connection."""
    with engine.connect() as conn:
        if backend == "mariadb":
            row = conn.exec_driver_sql(
                "SELECT CONNECTION_ID(), @@SESSION.innodb_lock_wait_timeout"
            ).one()
        else:
            row = conn.exec_driver_sql(
                "SELECT pg_backend_pid(), current_setting('lock_timeout')"
            ).one()
        return row[0], str(row[1])


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_the_lock_timeout_does_not_outlive_the_apply_on_the_pooled_connection(
    engine: Engine, org: Org, backend: str
) -> None:
    session, default = session_lock_wait(engine, backend)
    assert default != "7"
    plan = make_plan(engine, rename(exported(live_state(engine)), "calm@acme.co", "Pooled"))

    apply_plan(engine, plan, "root@acme.co", otp_code=None, now=utcnow(), lock_timeout_s=7)
    # The same connection of the pool, else this would prove nothing.
    assert session_lock_wait(engine, backend) == (session, default)

    with pytest.raises(StalePlan):  # and after a rollback too
        apply_plan(engine, plan, "root@acme.co", otp_code=None, now=utcnow(), lock_timeout_s=7)
    assert session_lock_wait(engine, backend) == (session, default)
    assert rows_of(engine, m.User.first_name, m.User.email == "calm@acme.co") == [("Pooled",)]


def test_many_creates_write_each_table_in_batches_not_row_by_row(
    engine: Engine, factory: Factory
) -> None:
    """2,500 creates: the users, their invitations and their audit events are each written in a
    few batched statements (executemany), whatever the number of users: the statement count per
    table is pinned, the time is the benchmark's business."""
    from tests.db.test_executor_progress import with_new_users
    from userctl.apply.outbox import INVITATION_BATCH

    _, root = bulk_org(factory)
    plan = make_plan(engine, with_new_users(engine, 2500))
    inserts: dict[str, int] = {}

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        match = re.match(r"\s*INSERT INTO (\w+)", statement, re.IGNORECASE)
        if match:
            inserts[match.group(1).strip('"`')] = inserts.get(match.group(1).strip('"`'), 0) + 1

    event.listen(engine, "before_cursor_execute", record)
    try:
        result = apply_plan(engine, plan, "root@acme.co", otp_code=None, now=utcnow())
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert result.applied == result.invitations_queued == 2500
    assert len(rows_of(engine, m.Notification.id)) == 2500
    assert inserts["notifications"] == -(-2500 // INVITATION_BATCH)
    assert inserts["users"] == -(-2500 // CHUNK) and inserts["audit_events"] == 1
