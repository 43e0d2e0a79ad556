"""Nothing slow runs under the organization lock (DESIGN §8 invariant 9; outbox.send_queued):
an SMTP server that accepts the connection and never answers used to keep the organization (on
SQLite, the whole database) locked, so that a concurrent `apply --lock-timeout 5` was refused as
locked. Delivery now claims under the lock, commits, talks to SMTP with no transaction open and
records the outcome in a short locked write; a crashed sender's claim ends with its lease."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import build_org, exported, live_state, rename
from tests.apply.test_notify import NOW, SmtpServer, queued_rows, token_of
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl.apply import outbox
from userctl.clock import utcnow
from userctl.db.engine import begin_read, begin_write
from userctl.db.models import Notification

PATIENCE_S = 60.0


class SilentServer:
    """Accepts TCP connections on loopback and never says a word (no SMTP greeting)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.accepted = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._open.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self._open:
            conn.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on loopback, not yet started."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _invite(factory: Factory, engine: Engine, org: int, role: int, email: str) -> int:
    user = factory.user(org, email, role, status="invited")
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, org, user, email, NOW)
    return int(user)


def test_apply_runs_while_a_sender_waits_on_a_silent_smtp_server(
    factory: Factory,
    engine: Engine,
    db_url: str,
    runner: Runner,
    silent: SilentServer,
    tmp_path: Path,
) -> None:
    org = build_org(factory)
    _invite(factory, engine, org.id, org.roles["Support"], "waiting@acme.co")
    desired = exported(live_state(engine))
    path = write_desired(tmp_path / "users.yaml", rename(desired, "calm@acme.co", "Changed"))

    env = {k: v for k, v in os.environ.items() if not k.startswith("USERCTL_")}
    env |= {
        "USERCTL_DATABASE_URL": db_url,
        "USERCTL_SMTP_URL": silent.url,
        "USERCTL_INVITE_BASE_URL": "https://app.acme.co/join",
    }
    sender = subprocess.Popen(
        [sys.executable, "-m", "userctl", "notifications", "send"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert silent.accepted.wait(PATIENCE_S), "the sender never connected"
        started = time.monotonic()
        applied = runner(
            "apply", "-f", str(path), "--operator", "root@acme.co", "--yes", "--lock-timeout", "5"
        )
        took = time.monotonic() - started
        assert applied.exit_code == 0, applied.output
        assert sender.poll() is None, "the sender was not waiting on the server any more"
        # The claim is visible to others while SMTP is silent: the claim's transaction committed.
        with begin_read(engine) as conn:
            status = conn.execute(
                sa.select(Notification.status).where(Notification.recipient == "waiting@acme.co")
            ).scalar_one()
        assert status == "sending"
        out, err = sender.communicate(timeout=PATIENCE_S)
    finally:
        if sender.poll() is None:
            sender.kill()
    assert took < outbox.SMTP_TIMEOUT_S, took
    assert sender.returncode == 1 and "0 sent, 1 failed" in out, out + err
    [row] = [r for r in queued_rows(engine) if r.recipient == "waiting@acme.co"]
    assert (row.status, row.attempts, row.token_hash, row.expires_at) == ("queued", 1, None, None)
    assert row.last_error and "timed out" in row.last_error
    assert live_state(engine).users["calm@acme.co"].first_name == "Changed"


def test_a_crashed_senders_claim_is_taken_again_when_its_lease_ends(
    factory: Factory, engine: Engine, smtp: SmtpServer
) -> None:
    org = factory.org("acme-payments", name="Acme Payments")
    _invite(factory, engine, org, factory.role(org, "Viewer", ["users.view"]), "crash@acme.co")
    # What a sender that died after claiming leaves: `sending`, a token hash, a lease.
    with begin_write(engine) as conn:
        conn.execute(
            sa.update(Notification).values(
                status="sending",
                token_hash=outbox.token_hash("lost-with-the-crash"),
                expires_at=NOW + outbox.LEASE,
            )
        )
    smtp.start()
    during = outbox.send_queued(engine, smtp.url, NOW + outbox.LEASE - dt.timedelta(seconds=1))
    assert (during.sent, during.failed, smtp.inbox.messages) == (0, 0, [])
    after = NOW + outbox.LEASE + dt.timedelta(seconds=1)
    report = outbox.send_queued(engine, smtp.url, after)
    assert (report.sent, report.failed) == (1, 0)
    [message] = smtp.inbox.messages
    [row] = queued_rows(engine)
    assert row.status == "sent" and row.token_hash == outbox.token_hash(token_of(message))
    with begin_read(engine) as conn:
        assert outbox.registering_user(conn, token_of(message), after) == row.user_id
        assert outbox.registering_user(conn, "lost-with-the-crash", after) is None


def test_many_queued_are_claimed_in_batches_and_each_sent_once(
    factory: Factory, engine: Engine, smtp: SmtpServer
) -> None:
    org = factory.org("acme-payments", name="Acme Payments")
    role = factory.role(org, "Viewer", ["users.view"])
    count = outbox.CLAIM_BATCH * 2 + 3
    invitees = [
        (f"u{i}@acme.co", factory.user(org, f"u{i}@acme.co", role, status="invited"))
        for i in range(count)
    ]
    with begin_write(engine) as conn:
        outbox.queue_invitations(conn, org, invitees, NOW)
    smtp.start()
    report = outbox.send_queued(engine, smtp.url, utcnow())
    assert (report.sent, report.failed) == (count, 0)
    assert sorted(m["To"] for m in smtp.inbox.messages) == sorted(
        f"u{i}@acme.co" for i in range(count)
    )
    assert {r.status for r in queued_rows(engine)} == {"sent"}


@pytest.mark.parametrize("failed", [False, True])
def test_a_user_deleted_while_their_email_is_in_flight_gets_no_live_link(
    factory: Factory, engine: Engine, failed: bool
) -> None:
    from userctl.apply.outbox import _claim, _record
    from userctl.db.models import User

    org = factory.org("acme-payments", name="Acme Payments")
    user = _invite(factory, engine, org, factory.role(org, "Viewer", ["users.view"]), "d@acme.co")
    [claim], _ = _claim(engine, "acme-payments", NOW, 0, 5)
    with engine.begin() as conn:  # an apply deletes the invitee meanwhile
        conn.execute(sa.delete(User).where(User.id == user))
    outcome = _record(engine, claim, NOW, "SMTP 451 try later" if failed else None)
    [row] = queued_rows(engine)
    # The status says whether an email went out; no hash is left to register with.
    assert (outcome.status, row.status) == (("cancelled",) * 2 if failed else ("sent",) * 2)
    assert (row.token_hash, row.expires_at) == (None, None)
    with begin_read(engine) as conn:
        assert outbox.registering_user(conn, claim.token, NOW) is None


def test_two_invitations_of_one_user_sent_in_one_run_leave_one_live_link(
    factory: Factory, engine: Engine, smtp: SmtpServer
) -> None:
    """Two rows queued for one user (from before resend revoked, or written by hand): each send
    revokes the user's other links, so only the last email's registers."""
    org = factory.org("acme-payments", name="Acme Payments")
    user = _invite(factory, engine, org, factory.role(org, "Viewer", ["users.view"]), "d@acme.co")
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, org, user, "d@acme.co", NOW)
    smtp.start()
    assert outbox.send_queued(engine, smtp.url, NOW).sent == 2
    first, second = (token_of(m) for m in smtp.inbox.messages)
    with begin_read(engine) as conn:
        assert outbox.registering_user(conn, first, NOW) is None
        assert outbox.registering_user(conn, second, NOW) == user
    assert [(r.status, r.token_hash is None) for r in queued_rows(engine)] == [
        ("revoked", True),
        ("sent", False),
    ]
