"""Reliability under concurrency (issue 10, parts 2 and 3): the lockout holds under parallel
guesses, every writer of an organization takes its lock before it reads anything (so that on
MariaDB no snapshot predates it), and apply checks its preconditions on rows it has locked.

Every race is lined up, not hoped for: the test holds the lock the writers need (the
organization row, or a user row as the platform would), polls the server until each writer is
seen waiting for it (or has finished without needing it), and only then lets go. Waits are
bounded by PATIENCE_S."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    ORG,
    Org,
    build_org,
    exported,
    live_state,
    make_plan,
    rename,
    rows_of,
    save_plan,
    with_users,
)
from tests.apply.test_apply_concurrency import (
    PATIENCE_S,
    apply_cmd,
    holding_organization_lock,
    lock_waiters,
    userctl,  # noqa: F401 - the fixture, shared with the concurrency suite
    wait_until,
)
from tests.apply.test_notify import SmtpServer
from tests.conftest import BACKENDS, Factory, Operator
from userctl.apply import apply_plan, approve_plan, audit, otp, outbox
from userctl.apply.accounts_import import import_bank_accounts
from userctl.apply.enrolment import enroll_user
from userctl.clock import unix_seconds, utcnow
from userctl.db import models as m
from userctl.db.engine import begin_write, create_engine_for
from userctl.errors import TwoFactorFailed
from userctl.plan import Plan

GUESSES = 20


def never_valid_code(op: Operator) -> str:
    """A well-formed code that none of the steps this test can live through accepts (a random
    "000000" is someone's right code one time in a million)."""
    now = unix_seconds(utcnow())
    valid = {op.code(now + 30 * step) for step in range(-5, 10)}
    return next(c for c in (f"{n:06d}" for n in range(0, 1_000_000, 7919)) if c not in valid)


def holding_sqlite_file(pid: int, database: str) -> bool:
    """Whether process `pid` has the SQLite file open (Linux /proc): it has started its
    database work and is at, or about to reach, the write lock the test holds."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        return any(os.path.realpath(fd_dir / fd) == database for fd in os.listdir(fd_dir))
    except OSError:  # the process ended, or a descriptor closed while being read
        return False


def lined_up(engine: Engine, backend: str, procs: list["subprocess.Popen[str]"]) -> None:
    """Return once every process waits for the organization lock the test holds (or is done)."""
    if backend == "sqlite":
        database = os.path.realpath(engine.url.database or "")
        if not os.path.isdir("/proc/self/fd"):
            return  # no /proc to look in: they queue as they come, which the assertions allow too
        wait_until(
            lambda: all(
                p.poll() is not None or holding_sqlite_file(p.pid, database) for p in procs
            ),
            "every process to open the database",
        )
        return
    wait_until(
        lambda: len(lock_waiters(engine)) + sum(p.poll() is not None for p in procs) >= len(procs),
        f"{len(procs)} processes to wait for the organization lock",
    )


# --- part 1: the lockout holds under parallel guesses ---------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_twenty_parallel_wrong_codes_are_checked_at_most_five_times(
    backend: str,
    engine: Engine,
    factory: Factory,
    tmp_path: Path,
    userctl: Callable[..., Any],  # noqa: F811
) -> None:
    """Twenty `approve` processes with the same wrong code queue behind the organization lock.
    Each check and its booking are one locked, committed unit, so the sixth process already
    sees the lockout: exactly five codes are checked (five otp.failure events, then the
    lockout), the other fifteen are refused as locked out without their code being looked at.
    Before the fix every guess was checked (the booking came after the lock was released),
    and on MariaDB bookings died on a duplicate audit sequence."""
    org = build_org(factory)
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Approved"), tmp_path
    )
    wrong = never_valid_code(org.root)

    with holding_organization_lock(engine, backend):
        procs = [
            userctl(
                "approve",
                "--yes",
                str(path),
                "--operator",
                "root@acme.co",
                "--otp-code",
                wrong,
                "--lock-timeout",
                str(PATIENCE_S),
            )
            for _ in range(GUESSES)
        ]
        lined_up(engine, backend, procs)
    errors = [p.communicate(timeout=2 * PATIENCE_S)[1] for p in procs]

    assert [p.returncode for p in procs] == [4] * GUESSES, errors
    checked = [
        e for e in errors if "wrong one-time code" in e
    ]  # the fifth also announces the lockout
    refused = [
        e
        for e in errors
        if "is locked out of confirmations until" in e and "wrong one-time code" not in e
    ]
    assert len(checked) == otp.MAX_FAILURES, errors
    assert len(refused) == GUESSES - otp.MAX_FAILURES, errors
    assert sum("attempt(s) left" in e for e in checked) == otp.MAX_FAILURES - 1
    assert all(wrong not in e for e in errors)
    events = rows_of(engine, m.AuditEvent)
    assert sorted(e.action for e in events) == ["otp.failure"] * otp.MAX_FAILURES + ["otp.lockout"]
    assert sorted(e.seq for e in events) == list(range(1, otp.MAX_FAILURES + 2))
    [(locked_until,)] = rows_of(
        engine, m.TotpSecret.locked_until, m.TotpSecret.user_id == org.root.user_id
    )
    assert locked_until is not None
    assert rows_of(engine, m.Approval) == []
    with engine.connect() as conn:
        assert audit.verify_chain(conn, org.id).ok


# --- part 3: preconditions are checked on locked rows --------------------------------------


def user_row_waiters(engine: Engine) -> int:
    """Sessions of this test's database blocked on a users row, whatever their statement."""
    if engine.dialect.name == "postgresql":
        return len(lock_waiters(engine))
    # MariaDB lists such a waiter in neither innodb_trx nor innodb_lock_waits: a session still
    # running a locking read of users, or an UPDATE of it, is blocked by the platform's row.
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE() AND "
                    "id <> CONNECTION_ID() AND command = 'Query' AND (info LIKE '%FROM users%FOR "
                    "UPDATE' OR info LIKE 'UPDATE users%')"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
@pytest.mark.parametrize("platform_commits", [True, False], ids=["commits", "rolls-back"])
def test_a_row_the_platform_changes_while_apply_waits_makes_the_plan_stale(
    backend: str,
    engine: Engine,
    factory: Factory,
    tmp_path: Path,
    userctl: Callable[..., Any],  # noqa: F811
    platform_commits: bool,
) -> None:
    """The platform holds an uncommitted UPDATE of a user the plan renames, and apply waits for
    the row. If the platform commits, apply must find the precondition broken: stale, exit 4,
    the platform's value intact and nothing written. Before the fix apply read the row without
    locking it, waited in its own UPDATE and wrote over the platform's change, auditing a
    `before` that was no longer true. If the platform rolls back, apply goes on and writes, and
    its audit event's `before` is the row it wrote over."""
    org = build_org(factory)
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Userctl"), tmp_path
    )
    calm = org.users["calm@acme.co"]

    with engine.connect() as platform:
        transaction = platform.begin()
        platform.execute(sa.update(m.User).where(m.User.id == calm).values(first_name="Platform"))
        proc = userctl(*apply_cmd(path, "root@acme.co", "--lock-timeout", str(PATIENCE_S)))
        wait_until(
            lambda: user_row_waiters(engine) or proc.poll() is not None,
            "the apply to wait for the platform's row",
        )
        assert proc.poll() is None, proc.communicate()
        if platform_commits:
            transaction.commit()
        else:
            transaction.rollback()
    out, err = proc.communicate(timeout=PATIENCE_S)

    if platform_commits:
        assert proc.returncode == 4, out + err
        assert "stale" in err and 'user["calm@acme.co"]' in err and "Nothing was written" in err
        assert rows_of(engine, m.User.first_name, m.User.id == calm) == [("Platform",)]
        assert rows_of(engine, m.AuditEvent) == []
        assert rows_of(engine, m.Organization.serial) == [(0,)]
        return
    assert proc.returncode == 0, out + err
    assert rows_of(engine, m.User.first_name, m.User.id == calm) == [("Userctl",)]
    [event] = rows_of(engine, m.AuditEvent)
    assert (json.loads(event.before)["first_name"], json.loads(event.after)["first_name"]) == (
        "Calm",
        "Userctl",
    )


# --- part 2: each pair of writers, lined up behind the organization lock --------------------


@dataclass
class Scene:
    """One organization with a job for every writer, none of which breaks another's."""

    db_url: str
    org: Org
    apply: Plan  # renames calm@, deletes invitee@ (who has a queued invitation): root's code
    approve: Plan  # renames upd@: approved by approver@, guessed at by guesser@
    approver: Operator
    confirmer: Operator  # enrols mover@'s authenticator
    guesser: Operator
    smtp: SmtpServer
    invitation: int


@pytest.fixture
def scene(db_url: str, engine: Engine, factory: Factory) -> Iterator[Scene]:
    org = build_org(factory)
    admin = org.roles["Admin"]
    approver = factory.operator(org.id, "approver@acme.co", admin)
    confirmer = factory.operator(org.id, "confirmer@acme.co", admin)
    guesser = factory.operator(org.id, "guesser@acme.co", admin)
    # Who imports accounts (an operator holding bank_accounts.manage).
    factory.operator(
        org.id, "ops@acme.co", factory.role(org.id, "Treasury", ["bank_accounts.manage"])
    )
    invitee = factory.user(org.id, "invitee@acme.co", org.roles["Ops"])
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, org.id, invitee, "invitee@acme.co", utcnow())
    [(invitation,)] = rows_of(engine, m.Notification.id)
    desired = exported(live_state(engine))
    server = SmtpServer()
    server.start()
    try:
        yield Scene(
            db_url=db_url,
            org=org,
            apply=make_plan(
                engine,
                with_users(rename(desired, "calm@acme.co", "Applied"), drop=["invitee@acme.co"]),
            ),
            approve=make_plan(engine, rename(desired, "upd@acme.co", "Approved")),
            approver=approver,
            confirmer=confirmer,
            guesser=guesser,
            smtp=server,
            invitation=int(invitation),
        )
    finally:
        server.stop()


def run_apply(s: Scene, engine: Engine) -> None:
    apply_plan(
        engine,
        s.apply,
        "root@acme.co",
        otp_code=s.org.root.code(),
        now=utcnow(),
        lock_timeout_s=PATIENCE_S,
    )


def run_approve(s: Scene, engine: Engine) -> None:
    approve_plan(
        engine,
        s.approve,
        s.approver.email,
        s.approver.code(),
        now=utcnow(),
        valid_for=dt.timedelta(hours=1),
        lock_timeout_s=PATIENCE_S,
    )


def run_enroll(s: Scene, engine: Engine) -> None:
    enroll_user(
        engine,
        ORG,
        "mover@acme.co",
        s.confirmer.email,
        s.confirmer.code(),
        now=utcnow(),
        lock_timeout_s=PATIENCE_S,
    )


def run_import(s: Scene, engine: Engine) -> None:
    # No --organization: the one organization is found first, which must not start the snapshot.
    data = b"key,bank,account_type,masked_number,currency\nimported-1,Citi,savings,****0001,USD\n"
    import_bank_accounts(engine, None, data, "accounts.csv", "ops@acme.co", PATIENCE_S, utcnow())


def run_failure(s: Scene, engine: Engine) -> None:
    """A wrong code: refused, and booked (the booking is this writer's write)."""
    with pytest.raises(TwoFactorFailed, match=r"4 attempt\(s\) left"):
        approve_plan(
            engine,
            s.approve,
            s.guesser.email,
            never_valid_code(s.guesser),
            now=utcnow(),
            valid_for=dt.timedelta(hours=1),
            lock_timeout_s=PATIENCE_S,
        )


def run_send(s: Scene, engine: Engine) -> None:
    report = outbox.send_queued(engine, s.smtp.url, utcnow())
    assert (report.failed, report.sent + report.cancelled) == (0, 1), report


WRITERS: dict[str, Callable[[Scene, Engine], None]] = {
    "apply": run_apply,
    "approve": run_approve,
    "enroll": run_enroll,
    "import": run_import,
    "failure": run_failure,
    "send": run_send,
}
# The audit events each writer appends.
AUDITED = {
    "apply": ["user.delete", "user.update"],
    "approve": ["plan.approve"],
    "enroll": ["mfa.enroll"],
    "import": ["bank_account.import"],
    "failure": ["otp.failure"],
    "send": [],
}


def check_written(name: str, s: Scene, engine: Engine) -> None:
    """The writer's effect is there: no lost write."""
    with engine.connect() as conn:
        users = {str(e): int(i) for e, i in conn.execute(sa.select(m.User.email, m.User.id))}
    if name == "apply":
        assert rows_of(engine, m.User.first_name, m.User.email == "calm@acme.co") == [("Applied",)]
        assert "invitee@acme.co" not in users
    elif name == "approve":
        assert [a.approver_email for a in rows_of(engine, m.Approval)] == [s.approver.email]
    elif name == "enroll":
        assert rows_of(engine, m.User.totp_enrolled, m.User.email == "mover@acme.co") == [(True,)]
        assert (
            len(rows_of(engine, m.TotpSecret, m.TotpSecret.user_id == users["mover@acme.co"])) == 1
        )
    elif name == "import":
        assert [
            b.key for b in rows_of(engine, m.BankAccount, m.BankAccount.key == "imported-1")
        ] == ["imported-1"]
    elif name == "failure":
        assert rows_of(
            engine, m.TotpSecret.failed_attempts, m.TotpSecret.user_id == s.guesser.user_id
        ) == [(1,)]
    else:
        [(status,)] = rows_of(engine, m.Notification.status, m.Notification.id == s.invitation)
        assert status in ("sent", "cancelled")
        assert len(s.smtp.inbox.messages) == (status == "sent")


class WriterThread(threading.Thread):
    """One writer on its own engine (its own connections), keeping whatever it raised."""

    def __init__(self, name: str, scene: Scene) -> None:
        super().__init__(name=name, daemon=True)
        self.scene = scene
        self.error: BaseException | None = None

    def run(self) -> None:
        engine = create_engine_for(self.scene.db_url)
        try:
            WRITERS[self.name](self.scene, engine)
        except BaseException as exc:  # noqa: BLE001 - reported by the test, with its name
            self.error = exc
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
@pytest.mark.parametrize(
    ("first", "second"),
    [pytest.param(a, b, id=f"{a}-then-{b}") for a, b in itertools.permutations(WRITERS, 2)],
)
def test_two_writers_lined_up_behind_the_organization_lock_both_write(
    backend: str, engine: Engine, scene: Scene, first: str, second: str
) -> None:
    """`first` queues for the organization lock, then `second`; the test lets go and both must
    succeed, with their writes and audit events all there and one intact chain. Before the fix,
    on MariaDB, a writer that read before locking took its snapshot before `first` committed
    and reused an audit sequence number (uq_audit_events_org_seq): accounts import, which
    resolved its organization first, and the booking of a wrong code, which read the operator
    first and ran after the `approve` that checked it had let go of the lock. The other pairs
    (and PostgreSQL, whose writers read committed data) hold the line against regressions:
    `notifications send` now also queues for the lock (organization first, then the invitation,
    which an apply deleting the invitee writes too)."""
    threads = [WriterThread(first, scene), WriterThread(second, scene)]
    with holding_organization_lock(engine, backend):
        for n, thread in enumerate(threads, 1):
            thread.start()
            wait_until(
                lambda: len(lock_waiters(engine)) + sum(not t.is_alive() for t in threads[:n]) >= n,
                f"{thread.name} to wait for the organization lock",
            )
    for thread in threads:
        thread.join(timeout=2 * PATIENCE_S)
        assert not thread.is_alive(), f"{thread.name} did not finish"

    failed = {
        t.name: f"{type(t.error).__name__}: {t.error}" for t in threads if t.error is not None
    }
    assert failed == {}, failed
    for name in (first, second):
        check_written(name, scene, engine)
    events = sorted(rows_of(engine, m.AuditEvent), key=lambda e: e.seq)
    assert sorted(e.action for e in events) == sorted(AUDITED[first] + AUDITED[second])
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    with engine.connect() as conn:
        assert audit.verify_chain(conn, scene.org.id).ok
