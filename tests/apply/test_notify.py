"""The invitation outbox against a real SMTP server (aiosmtpd on loopback) and every backend:
delivery with a token that only the email carries, retries after an outage, and nothing queued
by a rolled-back transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import socket
from email import message_from_bytes
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from userctl.apply import outbox
from userctl.db.engine import begin_write
from userctl.db.models import Notification
from userctl.errors import UsageError

NOW = dt.datetime(2026, 3, 1, 9, 30, 0)
LINK = re.compile(r"https://\S+")
BASE_URL = "https://app.acme.co/join"


def send_env(smtp_url: str) -> dict[str, str | None]:
    """What a scheduled `notifications send` (or an apply that invites) is given."""
    return {"USERCTL_SMTP_URL": smtp_url, "USERCTL_INVITE_BASE_URL": BASE_URL}


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A server on a free loopback port, not yet started: tests start it (or leave it down)."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def invited(factory: Any, engine: Engine) -> dict[str, Any]:
    org = factory.org("acme-payments", name="Acme Payments")
    role = factory.role(org, "Viewer", ["users.view"])
    user = factory.user(org, "nuevo@acme.co", role, status="invited", first_name="Nuevo")
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, org, user, "Nuevo@Acme.co", NOW)
    return {"org": org, "user": user, "email": "nuevo@acme.co"}


def queued_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(Notification).order_by(Notification.id)).all())


def part(message: Message, content_type: str) -> str:
    [found] = [p for p in message.walk() if p.get_content_type() == content_type]
    body = found.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode(found.get_content_charset() or "utf-8")


def token_of(message: Message) -> str:
    [link] = LINK.findall(part(message, "text/plain"))
    return link.split("token=", 1)[1]


# --- pure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.internal", ("smtp", "mail.internal", 25, None, None)),
        ("smtp://127.0.0.1:2525", ("smtp", "127.0.0.1", 2525, None, None)),
        (
            "smtp+starttls://bot%40acme.co:p%40ss@mail:587",
            ("smtp+starttls", "mail", 587, "bot@acme.co", "p@ss"),
        ),
        ("smtps://u:p@mail", ("smtps", "mail", 465, "u", "p")),
    ],
)
def test_smtp_urls(url: str, expected: tuple[Any, ...]) -> None:
    t = outbox.parse_smtp_url(url)
    assert (t.scheme, t.host, t.port, t.username, t.password) == expected
    assert "p@ss" not in str(t) and "p@ss" not in repr(t)


@pytest.mark.parametrize(
    "url", ["http://mail", "mail.internal:25", "smtp://", "smtp://mail:notaport"]
)
def test_bad_smtp_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError, match="USERCTL_SMTP_URL must look like"):
        outbox.parse_smtp_url(url)


def test_registration_link_appends_the_token_to_the_base() -> None:
    assert (
        outbox.registration_link("T", "https://app.acme.co/join")
        == "https://app.acme.co/join?token=T"
    )
    assert (
        outbox.registration_link("T", "https://app.acme.co/join?lang=es")
        == "https://app.acme.co/join?lang=es&token=T"
    )


@pytest.mark.parametrize("url", ["app.acme.co/join", "ftp://app.acme.co", "https://", "  "])
def test_a_base_url_that_is_no_web_address_is_a_usage_error(url: str) -> None:
    with pytest.raises(
        UsageError, match="USERCTL_INVITE_BASE_URL must be the registration page's URL"
    ):
        outbox.parse_base_url(url)


@pytest.mark.parametrize(
    "url", ["smtp://u:p@mail.internal", "smtp://u:p@10.0.0.5:2525", "smtp://u:p@[2001:db8::1]"]
)
def test_a_password_never_goes_over_plain_smtp_to_another_machine(url: str) -> None:
    with pytest.raises(UsageError, match="would send its password in clear to") as refused:
        outbox.parse_smtp_url(url)
    assert "u:p" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["smtp://u:p@localhost:1025", "smtp://u:p@127.0.0.1:2525", "smtp://u:p@[::1]:2525"]
)
def test_a_password_over_plain_smtp_to_this_machine_is_taken(url: str) -> None:
    assert outbox.parse_smtp_url(url).password == "p"


def test_a_registration_link_over_http_is_refused_but_to_this_machine() -> None:
    with pytest.raises(UsageError, match="carries the invitation's one-time token"):
        outbox.parse_base_url("http://app.acme.co/join")
    for local in ("http://localhost:8000/join", "http://127.0.0.1/join", "http://[::1]/join"):
        assert outbox.parse_base_url(local) == local


# --- against the database and a real SMTP server -------------------------------------------


def test_delivery_sends_the_token_and_stores_only_its_hash(
    engine: Engine, invited: dict[str, Any], smtp: SmtpServer
) -> None:
    smtp.start()
    report = outbox.send_queued(engine, smtp.url, NOW)
    assert (report.sent, report.failed, report.errors) == (1, 0, ())
    [message] = smtp.inbox.messages
    assert message["To"] == "nuevo@acme.co" and "Acme Payments" in message["Subject"]
    token = token_of(message)
    assert len(token) >= 43  # 32 random bytes, base64url
    [row] = queued_rows(engine)
    assert row.status == "sent" and row.attempts == 1 and row.last_error is None
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.sent_at == NOW and row.expires_at == NOW + dt.timedelta(days=7)
    assert not any(token in str(value) for value in row)
    assert outbox.send_queued(engine, smtp.url, NOW).sent == 0  # nothing left to send


def test_server_down_keeps_it_queued_then_notifications_send_delivers(
    engine: Engine, invited: dict[str, Any], smtp: SmtpServer, runner: Any
) -> None:
    report = outbox.send_queued(engine, smtp.url, NOW)
    assert (report.sent, report.failed) == (0, 1)
    assert report.errors[0].startswith("nuevo@acme.co: ")
    [row] = queued_rows(engine)
    assert (row.status, row.attempts, row.token_hash) == ("queued", 1, None)
    assert row.last_error and "refused" in row.last_error.lower()

    result = runner("notifications", "send", env=send_env(smtp.url))
    assert result.exit_code == 1
    assert "0 sent, 1 failed" in result.stdout and "stay queued" in result.stderr
    assert queued_rows(engine)[0].attempts == 2

    smtp.start()
    result = runner("notifications", "send", env=send_env(smtp.url))
    assert result.exit_code == 0, result.output
    assert "1 sent, 0 failed" in result.stdout
    [message] = smtp.inbox.messages
    token = token_of(message)
    assert token not in result.output
    [row] = queued_rows(engine)
    assert (row.status, row.attempts) == ("sent", 3)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()

    listed = runner("notifications", "list", "--format", "json")
    assert listed.exit_code == 0
    [entry] = json.loads(listed.stdout)
    assert (
        entry["status"] == "sent"
        and entry["recipient"] == "nuevo@acme.co"
        and entry["attempts"] == 3
    )
    assert token not in listed.stdout and row.token_hash not in listed.stdout


def test_a_rolled_back_transaction_queues_nothing(engine: Engine, factory: Any) -> None:
    org = factory.org()
    user = factory.user(org, "x@acme.co", factory.role(org, "R"), status="invited")
    with pytest.raises(RuntimeError):
        with begin_write(engine) as conn:
            outbox.queue_invitation(conn, org, user, "x@acme.co", NOW)
            raise RuntimeError("apply failed after queueing")
    assert queued_rows(engine) == []


def test_an_invitation_for_a_deleted_user_is_cancelled(
    engine: Engine, invited: dict[str, Any], smtp: SmtpServer
) -> None:
    from userctl.db.models import User

    with engine.begin() as conn:
        conn.execute(sa.delete(User).where(User.id == invited["user"]))
    smtp.start()
    report = outbox.send_queued(engine, smtp.url, NOW)
    assert (report.sent, report.cancelled) == (0, 1)
    assert smtp.inbox.messages == []
    assert queued_rows(engine)[0].status == "cancelled"


def test_send_is_limited_to_one_organization_when_asked(
    engine: Engine, invited: dict[str, Any], factory: Any, smtp: SmtpServer, runner: Any
) -> None:
    other = factory.org("other")
    user = factory.user(other, "o@other.co", factory.role(other, "R"), status="invited")
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, other, user, "o@other.co", NOW)
    smtp.start()
    result = runner("--organization", "other", "notifications", "send", env=send_env(smtp.url))
    assert result.exit_code == 0 and "1 sent" in result.stdout
    assert [m["To"] for m in smtp.inbox.messages] == ["o@other.co"]
    table = runner("notifications", "list", "--status", "queued")
    assert table.exit_code == 0
    assert "nuevo@acme.co" in table.stdout and "o@other.co" not in table.stdout


def test_send_without_smtp_url_is_a_clear_error(runner: Any, invited: dict[str, Any]) -> None:
    result = runner("notifications", "send", env={"USERCTL_SMTP_URL": None})
    assert result.exit_code == 1
    assert "USERCTL_SMTP_URL is not set" in result.stderr and "Traceback" not in result.output
    assert outbox_status(runner) == ["queued"]


def outbox_status(runner: Any) -> list[str]:
    result = runner("notifications", "list", "--format", "json")
    return [n["status"] for n in json.loads(result.stdout)]


def test_the_email_has_date_message_id_and_a_text_and_an_escaped_html_part(
    engine: Engine, factory: Any, smtp: SmtpServer, runner: Any
) -> None:
    org = factory.org("acme-payments", name="Acme & <Sons>")
    user = factory.user(
        org,
        "nuevo@acme.co",
        factory.role(org, "Viewer"),
        status="invited",
        first_name="<b>Nuevo</b>",
    )
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, org, user, "nuevo@acme.co", NOW)
    smtp.start()

    result = runner(
        "notifications", "send", "--smtp-from", "Acme <invites@acme.co>", env=send_env(smtp.url)
    )

    assert result.exit_code == 0, result.output
    [message] = smtp.inbox.messages
    assert message["From"] == "Acme <invites@acme.co>"
    assert parsedate_to_datetime(message["Date"]).utcoffset() == dt.timedelta(0)
    assert re.fullmatch(r"<[^@<>\s]+@acme\.co>", message["Message-ID"])
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.get_payload()] == ["text/plain", "text/html"]
    text, page = part(message, "text/plain"), part(message, "text/html")
    link = f"{BASE_URL}?token={token_of(message)}"
    assert link in text and "Hello <b>Nuevo</b>," in text  # plain text shows the name as it is
    assert f'<a href="{link}">{link}</a>' in page
    assert (
        "&lt;b&gt;Nuevo&lt;/b&gt;" in page
        and "Acme &amp; &lt;Sons&gt;" in page
        and "<b>" not in page
    )


def test_send_without_an_invite_base_url_is_refused_before_anything_is_sent(
    runner: Any, invited: dict[str, Any], smtp: SmtpServer
) -> None:
    smtp.start()
    result = runner("notifications", "send", env={"USERCTL_SMTP_URL": smtp.url})
    assert result.exit_code == 1
    assert (
        "USERCTL_INVITE_BASE_URL (or --invite-base-url)" in result.stderr
        and "Traceback" not in result.output
    )
    assert smtp.inbox.messages == [] and outbox_status(runner) == ["queued"]
