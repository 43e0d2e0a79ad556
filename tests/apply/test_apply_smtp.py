"""What `apply` does with USERCTL_SMTP_URL, on every backend and against a real aiosmtpd server
on loopback: a malformed URL is refused before anything is written; once committed, the apply
succeeds whatever delivery does (failures stay queued); and it delivers only the invitations of
the organization it applied, never another organization's backlog."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    ADMIN_PERMS,
    apply_args,
    build_org,
    exported,
    live_state,
    new_user,
    rows_of,
    save_plan,
    tables,
    with_users,
)
from tests.apply.test_notify import SmtpServer, part, send_env
from tests.conftest import Factory, Runner
from userctl.apply import outbox
from userctl.db import models as m
from userctl.db.engine import begin_write

NOW = dt.datetime(2026, 3, 1, 9, 30, 0)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


def invite_plan(engine: Engine, tmp_path: Path, email: str = "late@acme.co") -> Path:
    """A plan creating one user (no 2FA needed under the default policy)."""
    return save_plan(engine, with_users(exported(live_state(engine)), new_user(email, 9)), tmp_path)


@pytest.mark.parametrize("url", ["http://x", "smtp://", "mail.internal:25", "smtp://mail:notaport"])
def test_malformed_smtp_url_is_refused_before_anything_is_written(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path, url: str
) -> None:
    build_org(factory)
    path = invite_plan(engine, tmp_path)
    before = tables(engine)

    result = runner(*apply_args(path, "root@acme.co"), env={"USERCTL_SMTP_URL": url})

    assert result.exit_code == 1, result.output
    assert "USERCTL_SMTP_URL must look like smtp://host:port" in result.stderr
    assert "Traceback" not in result.output and "Applied" not in result.stdout
    assert tables(engine) == before


class Rejecting:
    """A server that is up but refuses every message."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 5.1.1 mailbox unavailable"


def test_delivery_refused_after_commit_is_a_warning_and_the_email_stays_queued(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path, smtp: SmtpServer
) -> None:
    build_org(factory)
    path = invite_plan(engine, tmp_path)
    smtp.inbox = Rejecting()  # type: ignore[assignment]
    smtp.start()

    result = runner(*apply_args(path, "root@acme.co"), env=send_env(smtp.url))

    assert result.exit_code == 0, result.output
    assert "Applied 1 change(s)" in result.stdout and "0 sent, 1 still queued" in result.stdout
    assert "notifications send" in result.stderr and "Traceback" not in result.output
    assert rows_of(engine, m.User.email, m.User.email == "late@acme.co") == [("late@acme.co",)]
    [row] = rows_of(engine, m.Notification)
    assert (row.status, row.attempts, row.token_hash) == ("queued", 1, None)
    assert row.last_error and "550" in row.last_error


def test_unreachable_server_after_commit_is_a_warning_and_the_email_stays_queued(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path, smtp: SmtpServer
) -> None:
    build_org(factory)
    path = invite_plan(engine, tmp_path)  # smtp is never started: nothing listens on its port

    result = runner(*apply_args(path, "root@acme.co"), env=send_env(smtp.url))

    assert result.exit_code == 0, result.output
    assert "0 sent, 1 still queued" in result.stdout and "notifications send" in result.stderr
    assert [(n.status, n.attempts) for n in rows_of(engine, m.Notification)] == [("queued", 1)]


def test_apply_delivers_only_its_own_organizations_invitations(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path, smtp: SmtpServer
) -> None:
    build_org(factory)
    other = factory.org("other-co", name="Other Co")
    other_user = factory.user(
        other, "waiting@other.co", factory.role(other, "Admin", ADMIN_PERMS), status="invited"
    )
    with begin_write(engine) as conn:  # another organization's backlog, e.g. its SMTP was down
        outbox.queue_invitation(conn, other, other_user, "waiting@other.co", NOW)
    path = invite_plan(engine, tmp_path, "new@acme.co")
    smtp.start()

    result = runner(*apply_args(path, "root@acme.co"), env=send_env(smtp.url))

    assert result.exit_code == 0, result.output
    assert "Invitations: 1 sent, 0 still queued." in result.stdout
    assert [message["To"] for message in smtp.inbox.messages] == ["new@acme.co"]
    status = {n.recipient: n.status for n in rows_of(engine, m.Notification)}
    assert status == {"new@acme.co": "sent", "waiting@other.co": "queued"}


def test_an_apply_that_would_invite_without_invite_base_url_is_refused_before_anything_is_written(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path, smtp: SmtpServer
) -> None:
    build_org(factory)
    path = invite_plan(engine, tmp_path)
    smtp.start()
    before = tables(engine)

    result = runner(*apply_args(path, "root@acme.co"), env={"USERCTL_SMTP_URL": smtp.url})

    assert result.exit_code == 1, result.output
    assert (
        "1 invitation(s) would be sent" in result.stderr
        and "USERCTL_INVITE_BASE_URL" in result.stderr
    )
    assert "Traceback" not in result.output and "Applied" not in result.stdout
    assert tables(engine) == before and smtp.inbox.messages == []


def test_the_invite_base_url_option_sets_the_link(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path, smtp: SmtpServer
) -> None:
    build_org(factory)
    path = invite_plan(engine, tmp_path)
    smtp.start()

    result = runner(
        *apply_args(
            path, "root@acme.co", None, "--invite-base-url", "https://app.acme.co/join?lang=es"
        ),
        env={"USERCTL_SMTP_URL": smtp.url},
    )

    assert result.exit_code == 0, result.output
    [message] = smtp.inbox.messages
    assert "https://app.acme.co/join?lang=es&token=" in part(message, "text/plain")
