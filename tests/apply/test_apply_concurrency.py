"""Real processes racing and dying: `python -m userctl apply` as a subprocess against this test's
database. A second apply of an organization waits for the first and then refuses (locked, or
stale once the first has committed) — never a lost update; other organizations are not blocked;
and a process killed mid-apply leaves nothing behind.

The races are made deterministic by holding the lock the test is about from the test itself and
polling the server until the subprocess is seen waiting for it (never by sleeping and hoping)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from tests.apply.apply_helpers import (
    ADMIN_PERMS,
    ORG,
    build_org,
    bulk_org,
    every_change,
    exported,
    live_state,
    new_user,
    rename,
    rows_of,
    save_plan,
    tables,
)
from tests.conftest import BACKENDS, Factory, Runner
from userctl.apply import audit
from userctl.db import models as m
from userctl.db.engine import begin_write
from userctl.state import DesiredState

T = TypeVar("T")
PATIENCE_S = 60.0  # how long to wait for a subprocess to reach the expected point before failing


@pytest.fixture(params=("postgresql", "mariadb"))
def backend(request: pytest.FixtureRequest) -> str:
    """Row locks, lock waits and sessions that outlive their client exist on the servers."""
    return str(request.param)


@pytest.fixture
def userctl(db_url: str, tmp_path: Path) -> Iterator[Callable[..., "subprocess.Popen[str]"]]:
    """Start `python -m userctl ARGS` on this test's database; any still running at the end of
    the test (a failed assertion) is killed, so no orphan keeps waiting on the database."""
    started: list[subprocess.Popen[str]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERCTL_")}
    env["USERCTL_DATABASE_URL"] = db_url

    def start(*args: str) -> "subprocess.Popen[str]":
        proc = subprocess.Popen(
            [sys.executable, "-m", "userctl", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def wait_until(probe: Callable[[], T], what: str) -> T:
    deadline = time.monotonic() + PATIENCE_S
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {PATIENCE_S:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def holding_organization_lock(engine: Engine, backend: str, slug: str = ORG) -> Iterator[None]:
    """What another apply holds: the organization row FOR UPDATE (SQLite: the write lock)."""
    if backend == "sqlite":
        with begin_write(engine) as conn:
            conn.execute(sa.select(m.Organization.id).where(m.Organization.slug == slug))
            yield
        return
    with engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(
            sa.select(m.Organization.id).where(m.Organization.slug == slug).with_for_update()
        )
        try:
            yield
        finally:
            transaction.rollback()


def lock_waiters(engine: Engine) -> list[str]:
    """The statements of other sessions of this test's database blocked on a lock the test holds."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = (
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        else:
            # MariaDB lists a session waiting on a unique secondary index in neither innodb_trx
            # nor innodb_lock_waits, so: a session still running a statement that the test's
            # lock blocks is waiting for it.
            sql = (
                "SELECT info FROM information_schema.processlist WHERE db = DATABASE() AND "
                "id <> CONNECTION_ID() AND command = 'Query' AND (info LIKE '%FOR UPDATE' "
                "OR info LIKE 'DELETE FROM %')"
            )
        return [str(q) for q in conn.execute(sa.text(sql)).scalars()]


def uncommitted_user_exists(engine: Engine, email: str) -> bool:
    """Whether another session has inserted this user without committing yet."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # No dirty reads on PostgreSQL: a waiting session that has written holds an xid.
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL"
                    )
                ).scalar_one()
            )
        conn = conn.execution_options(isolation_level="READ UNCOMMITTED")
        return bool(
            conn.execute(
                sa.select(sa.func.count()).select_from(m.User).where(m.User.email == email)
            ).scalar_one()
        )


def open_transactions(engine: Engine) -> int:
    """Transactions of other sessions still open in this test's database."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
            )
        else:
            sql = (
                "SELECT count(*) FROM information_schema.innodb_trx t JOIN "
                "information_schema.processlist p ON p.id = t.trx_mysql_thread_id WHERE p.db = "
                "DATABASE() AND t.trx_mysql_thread_id <> CONNECTION_ID()"
            )
        return int(conn.execute(sa.text(sql)).scalar_one())


def apply_cmd(plan: Path, operator: str, *extra: str) -> list[str]:
    return ["apply", str(plan), "--operator", operator, "--yes", *extra]


# --- the organization lock --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_apply_waits_for_the_lock_then_refuses_as_locked(
    backend: str, engine: Engine, factory: Factory, tmp_path: Path, userctl: Callable[..., Any]
) -> None:
    build_org(factory)
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Waiting"), tmp_path
    )
    before = tables(engine)

    with holding_organization_lock(engine, backend):
        proc = userctl(*apply_cmd(path, "root@acme.co", "--lock-timeout", "1"))
        out, err = proc.communicate(timeout=PATIENCE_S)

    assert proc.returncode == 4, out + err
    assert (
        "organization acme-payments is locked by another apply" in err and "--lock-timeout" in err
    )
    assert "Traceback" not in err
    assert tables(engine) == before


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("command", ["apply", "approve"])
def test_lock_timeout_option_is_honoured(
    backend: str, command: str, engine: Engine, factory: Factory, tmp_path: Path, runner: Runner
) -> None:
    """In-process (no interpreter start-up in the measurement): the refusal comes after about
    the second asked for — neither at once nor after the 30 s default."""
    org = build_org(factory)
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Waiting"), tmp_path
    )
    args = (
        [*apply_cmd(path, "root@acme.co")]
        if command == "apply"
        else [
            "approve",
            "--yes",
            str(path),
            "--operator",
            "root@acme.co",
            "--otp-code",
            org.root.code(),
        ]
    )
    before = tables(engine)

    with holding_organization_lock(engine, backend):
        started = time.monotonic()
        result = runner(*args, "--lock-timeout", "1")
        elapsed = time.monotonic() - started

    assert result.exit_code == 4, result.output
    assert "organization acme-payments is locked by another apply" in result.stderr
    assert 0.8 <= elapsed < 15, f"refused after {elapsed:.2f} s with --lock-timeout 1"
    assert tables(engine) == before


def test_applies_of_different_organizations_do_not_block_each_other(
    backend: str, engine: Engine, factory: Factory, tmp_path: Path, userctl: Callable[..., Any]
) -> None:
    build_org(factory)
    other = factory.org("other-co")
    admin = factory.role(other, "Admin", ADMIN_PERMS)
    factory.operator(other, "boss@other.co", admin)
    factory.user(other, "worker@other.co", admin, first_name="Before")
    live = live_state(engine, "other-co")
    path = save_plan(engine, rename(exported(live), "worker@other.co", "After"), tmp_path)

    with holding_organization_lock(engine, backend, ORG):
        proc = userctl(*apply_cmd(path, "boss@other.co", "--lock-timeout", "1"))
        out, err = proc.communicate(timeout=PATIENCE_S)

    assert proc.returncode == 0, out + err
    assert rows_of(engine, m.User.first_name, m.User.email == "worker@other.co") == [("After",)]
    assert rows_of(engine, m.User.first_name, m.User.email == "calm@acme.co") == [("Calm",)]


def test_two_organizations_applies_overlap_in_time(
    backend: str, engine: Engine, factory: Factory, tmp_path: Path, userctl: Callable[..., Any]
) -> None:
    """A real apply of acme-payments holds its organization lock, paused at a row the test holds
    (the platform editing calm@acme.co), while other-co's whole apply (an update, a create with
    its invitation, audit events, the serial) runs and commits within a one-second lock timeout;
    then acme-payments' apply resumes and commits too. So one organization's apply never waits
    for another's, not merely for a lock held by the test."""
    org = build_org(factory)
    other = factory.org("other-co")
    admin = factory.role(other, "Admin", ADMIN_PERMS)
    factory.role(other, "Support", ["users.view"])
    factory.operator(other, "boss@other.co", admin)
    factory.user(other, "worker@other.co", admin, first_name="Before")
    first = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Paused"), tmp_path, "a.json"
    )
    desired_b = rename(exported(live_state(engine, "other-co")), "worker@other.co", "After")
    desired_b = replace(
        desired_b, users={**desired_b.users, "new@other.co": new_user("new@other.co", 1)}
    )
    second = save_plan(engine, desired_b, tmp_path, "b.json")

    with engine.connect() as holder:
        transaction = holder.begin()
        holder.execute(
            sa.select(m.User.id).where(m.User.id == org.users["calm@acme.co"]).with_for_update()
        )
        proc_a = userctl(*apply_cmd(first, "root@acme.co", "--lock-timeout", str(PATIENCE_S)))
        wait_until(
            lambda: lock_waiters(engine), "acme-payments' apply to wait for calm@acme.co's row"
        )
        proc_b = userctl(*apply_cmd(second, "boss@other.co", "--lock-timeout", "1"))
        out_b, err_b = proc_b.communicate(timeout=PATIENCE_S)
        a_still_running = proc_a.poll() is None
        transaction.rollback()
    out_a, err_a = proc_a.communicate(timeout=PATIENCE_S)

    assert proc_b.returncode == 0, out_b + err_b
    assert a_still_running, "acme-payments' apply ended before other-co's: they did not overlap"
    assert proc_a.returncode == 0, out_a + err_a
    assert rows_of(
        engine, m.User.first_name, m.User.email.in_(["calm@acme.co", "worker@other.co"])
    ) in ([("Paused",), ("After",)], [("After",), ("Paused",)])
    assert rows_of(engine, m.User.email, m.User.email == "new@other.co") == [("new@other.co",)]
    with engine.connect() as conn:
        for slug in (ORG, "other-co"):
            org_id = conn.execute(
                sa.select(m.Organization.id).where(m.Organization.slug == slug)
            ).scalar_one()
            assert audit.verify_chain(conn, org_id).ok


def test_two_concurrent_applies_of_one_user_never_lose_an_update(
    backend: str, engine: Engine, factory: Factory, tmp_path: Path, userctl: Callable[..., Any]
) -> None:
    """Both plans were made from the same state and rename the same user. Both processes are
    started while the organization is locked and seen waiting; once it is released exactly one
    applies, and the other finds its precondition broken and refuses as stale."""
    org = build_org(factory)
    live = exported(live_state(engine))
    alpha = save_plan(engine, rename(live, "calm@acme.co", "Alpha"), tmp_path, name="alpha.json")
    bravo = save_plan(
        engine,
        rename(rename(live, "calm@acme.co", "Bravo"), "upd@acme.co", "Bravo"),
        tmp_path,
        name="bravo.json",
    )

    with holding_organization_lock(engine, backend):
        procs = {
            name: userctl(*apply_cmd(plan, "root@acme.co", "--lock-timeout", str(PATIENCE_S)))
            for name, plan in (("Alpha", alpha), ("Bravo", bravo))
        }
        wait_until(
            lambda: len(lock_waiters(engine)) >= 2, "both applies to wait for the organization lock"
        )
    results = {name: (p.wait(timeout=PATIENCE_S), *p.communicate()) for name, p in procs.items()}

    assert sorted(rc for rc, _, _ in results.values()) == [0, 4], results
    [winner] = [name for name, (rc, _, _) in results.items() if rc == 0]
    [(_, _, loser_err)] = [r for name, r in results.items() if name != winner]
    assert "stale" in loser_err and 'user["calm@acme.co"]' in loser_err
    with engine.connect() as conn:
        names = dict(conn.execute(sa.select(m.User.email, m.User.first_name)).all())
    assert names["calm@acme.co"] == winner
    assert names["upd@acme.co"] == ("Bravo" if winner == "Bravo" else "Old")
    events = rows_of(engine, m.AuditEvent)
    assert len(events) == (2 if winner == "Bravo" else 1)
    assert rows_of(engine, m.Organization.serial) == [(1,)]
    with engine.connect() as conn:
        assert audit.verify_chain(conn, org.id).ok


# --- SIGKILL mid-apply ------------------------------------------------------------------------


def test_apply_killed_mid_way_leaves_no_partial_state(
    backend: str, engine: Engine, factory: Factory, tmp_path: Path, userctl: Callable[..., Any]
) -> None:
    """The test locks the authenticator row of the user whose 2FA the plan disables (the user
    rows themselves apply locks before it writes anything): the apply writes the roles, creates
    and updates users, then blocks deleting that row; it is SIGKILLed there."""
    org = build_org(factory)
    desired, options = every_change(engine)
    path = save_plan(engine, desired, tmp_path, **options)
    before = tables(engine)

    with engine.connect() as holder:
        transaction = holder.begin()
        holder.execute(
            sa.select(m.TotpSecret.user_id)
            .where(m.TotpSecret.user_id == org.users["no2fa@acme.co"])
            .with_for_update()
        )
        proc = userctl(
            *apply_cmd(
                path,
                "root@acme.co",
                "--otp-code",
                org.root.code(),
                "--lock-timeout",
                str(2 * PATIENCE_S),
            )
        )
        wait_until(
            lambda: [
                q
                for q in lock_waiters(engine)
                if q.lstrip().upper().startswith("DELETE FROM TOTP_SECRETS")
            ],
            "the apply to block deleting the locked authenticator row",
        )
        # Mid-way for real: the earlier phases are written (uncommitted), the user deletion waits.
        assert uncommitted_user_exists(engine, "new1@acme.co")
        assert rows_of(engine, m.User, m.User.email == "new1@acme.co") == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=PATIENCE_S)
        transaction.rollback()
    wait_until(lambda: open_transactions(engine) == 0, "the killed apply's session to end")

    assert proc.returncode == -signal.SIGKILL
    assert tables(engine) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_apply_killed_mid_way_is_all_or_nothing(
    backend: str,
    engine: Engine,
    factory: Factory,
    db_url: str,
    tmp_path: Path,
    userctl: Callable[..., Any],
) -> None:
    """A plan creating 20,000 users; the apply is killed a second after it has begun writing
    (SQLite's rollback journal exists). Reopening the database rolls the journal back: none of the
    users, invitations or audit events exist — unless the commit won the race,
    then all of them do."""
    bulk_org(factory)
    live = exported(live_state(engine))
    many = 20_000
    users = dict(live.users)
    users.update((f"bulk{i}@acme.co", new_user(f"bulk{i}@acme.co", i)) for i in range(many))
    path = save_plan(engine, DesiredState(ORG, live.roles, users), tmp_path)
    database = make_url(db_url).database
    assert database is not None
    journal = Path(database + "-journal")
    before = tables(engine)

    size_before = Path(database).stat().st_size

    proc = userctl(*apply_cmd(path, "root@acme.co"))
    # Kill it well into its writes but not at the end, judged by progress rather than by a
    # sleep (a fast machine finished the whole apply within a fixed second): once the written
    # pages have spilled a megabyte into the database file, the transaction is mid-way (a process
    # committing phase by phase would have committed some by now).
    wait_until(
        lambda: (
            (journal.exists() and Path(database).stat().st_size > size_before + 2**20)
            or proc.poll() is not None
        ),
        "the apply to get well into its writes",
    )
    was_writing = proc.poll() is None and journal.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=PATIENCE_S)
    assert was_writing, "the apply finished before it could be interrupted: make the plan larger"

    after = tables(engine)
    if after != before:  # the commit completed just before the kill: then everything is there
        assert len(after["users"]) == many + 1
        assert len(after["notifications"]) == len(after["audit_events"]) == many
        assert after["organizations"][0] != before["organizations"][0]  # serial bumped


def test_row_held_by_another_transaction_is_a_lock_refusal(
    backend: str, engine: Engine, factory: Factory, tmp_path: Path, userctl: Callable[..., Any]
) -> None:
    """The platform (or anything else) holds a row the plan writes for longer than
    --lock-timeout: a clear "locked" refusal (exit 4) and nothing written, not a database error."""
    org = build_org(factory)
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Blocked"), tmp_path
    )
    before = tables(engine)

    with engine.connect() as holder:
        transaction = holder.begin()
        holder.execute(
            sa.select(m.User.id).where(m.User.id == org.users["calm@acme.co"]).with_for_update()
        )
        proc = userctl(*apply_cmd(path, "root@acme.co", "--lock-timeout", "1"))
        out, err = proc.communicate(timeout=PATIENCE_S)
        transaction.rollback()

    assert proc.returncode == 4, out + err
    assert "locked" in err and "--lock-timeout" in err and "database error" not in err
    assert tables(engine) == before
