"""The invitation outbox (DESIGN §4 step 5): apply queues one row per created user inside its
transaction (a rollback queues nothing); delivery happens after commit, with SMTP outside any
transaction or lock (see `send_queued`), and failures stay queued for `userctl notifications
send` to retry.

The registration token is generated at delivery time, sent only in the email and stored only as
its SHA-256, so nobody who can read the tables (or the output, or the logs) can use an
invitation. Why at delivery and not when apply queues the row: a token made at queue time would
have to wait in the outbox in plain text until it is sent (perhaps days, while SMTP is down);
made at delivery, no plaintext token is ever stored anywhere. So a queued row has no token hash
and no expiry yet, and the 7-day expiry (INVITATION_TTL) is measured from sending, not from the
apply: the invitee always gets the full seven days. Re-sending an invitation issues a fresh token.

Statuses: queued → sending (claimed by a sender, until its lease ends) → sent, or queued again
with the failure. cancelled: the user was deleted, or a resend replaced it before it went out;
revoked: a later invitation of the same user was sent or resent (its link no longer registers).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import secrets
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

from sqlalchemy import Connection, Engine, select, update

from userctl.clock import iso_z, naive_utc
from userctl.db import tables
from userctl.db.driver import insert_many
from userctl.db.models import Notification, Organization, User
from userctl.errors import UsageError
from userctl.state import given_email

INVITATION_TTL = dt.timedelta(days=7)
ENV_SMTP_URL = "USERCTL_SMTP_URL"
ENV_BASE_URL = "USERCTL_INVITE_BASE_URL"
ENV_FROM = "USERCTL_SMTP_FROM"  # read by click as the options' variables, see cli/plan_inputs.py
DEFAULT_BASE_URL = "https://platform.invalid/register"
DEFAULT_FROM = "no-reply@platform.invalid"
SMTP_TIMEOUT_S = 10.0
INVITATION_BATCH = 1000  # rows per INSERT statement (executemany) when an apply queues invitations
# Invitations claimed per short locked write. Small, so that a claim's emails go out well within
# its lease even when each one waits out SMTP_TIMEOUT_S a few times (a silent server).
CLAIM_BATCH = 20
# How long a claim is this sender's: past it, a crashed sender's invitations are claimed again.
LEASE = dt.timedelta(minutes=15)
# An outcome waits this long for the lock (a large apply may hold it for minutes): given up, the
# row stays `sending` and its lease ends, so the email may go out twice but is never lost.
RECORD_TIMEOUT_S = 300.0
_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:  # what messages may show: never the password
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one queued invitation: sent, failed (with the reason, never the token) or
    cancelled (the user was deleted before it went out)."""

    id: int
    organization: str
    recipient: str
    status: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Letterhead:
    """What an invitation says it comes from and where its link points (USERCTL_SMTP_FROM,
    USERCTL_INVITE_BASE_URL, or their options; the CLI refuses to send without a base URL)."""

    base_url: str = DEFAULT_BASE_URL
    sender: str = DEFAULT_FROM


def parse_base_url(url: str) -> str:
    """The registration page's URL, refused unless it is an http(s) URL with a host: a typo here
    would go out in every invitation."""
    value = url.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(
            f"{ENV_BASE_URL} must be the registration page's URL, "
            "e.g. https://app.example.com/register"
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        # The link carries the invitation's one-time token: whoever reads it on the way
        # registers as the invitee.
        raise UsageError(
            f"{ENV_BASE_URL} {value} is http://: the link carries the invitation's one-time "
            "token, which would cross the network in clear; use https:// (http:// only for "
            "this machine, e.g. http://localhost:8000/register)"
        )
    return value


def _loopback(host: str) -> bool:
    """Whether `host` names this machine (localhost, 127.0.0.0/8, ::1): the one place a secret
    may travel without TLS."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SendReport:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0  # the user was deleted before the invitation went out
    errors: tuple[str, ...] = ()  # "recipient: reason", one per failure
    deliveries: tuple[Delivery, ...] = ()


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://[user:password@]host[:port]` (plain), `smtp+starttls://...`, `smtps://...` (TLS)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in _SCHEMES or not parts.hostname:
        raise UsageError(
            f"{ENV_SMTP_URL} must look like smtp://host:port, "
            "smtp+starttls://user:password@host:587 or smtps://user:password@host:465"
        )
    if parts.scheme == "smtp" and parts.password and not _loopback(parts.hostname):
        raise UsageError(
            f"{ENV_SMTP_URL} would send its password in clear to {parts.hostname} (smtp:// has no "
            "TLS): use smtp+starttls://user:password@host:587 or smtps://user:password@host:465 "
            "(smtp:// carries a password only to this machine)"
        )
    return SmtpTarget(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or _SCHEMES[parts.scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def queue_invitation(
    conn: Connection, org_id: int, user_id: int, email: str, now: dt.datetime
) -> None:
    """Queue an invitation for a user just created, inside the caller's transaction."""
    queue_invitations(conn, org_id, [(email, user_id)], now)


def queue_invitations(
    conn: Connection, org_id: int, invitees: Sequence[tuple[str, int]], now: dt.datetime
) -> None:
    """Queue one invitation per (email, user id) just created: a few batched INSERTs, not one
    statement per user (100k creates would otherwise be 100k round trips)."""
    at = naive_utc(now)
    insert_many(
        conn,
        tables.notifications,
        ("organization_id", "user_id", "recipient", "kind", "status", "attempts", "created_at"),
        [
            (org_id, user_id, given_email(email), "invitation", "queued", 0, at)
            for email, user_id in invitees
        ],
        batch=INVITATION_BATCH,
    )


def send_queued(
    engine: Engine,
    smtp: "str | SmtpTarget",
    now: dt.datetime,
    org_id: int | None = None,
    *,
    letterhead: Letterhead = Letterhead(),
    lock_timeout_s: float = 30.0,
) -> SendReport:
    """Deliver every queued invitation (of one organization, or all). `smtp` is a URL, or a
    target parsed earlier (apply parses it before it writes anything).

    Nothing slow runs under the organization lock (DESIGN §8 invariant 9): a few invitations at
    a time are claimed in one short locked write (`_claim`: a fresh token each, its hash stored,
    the row `sending` until a lease ends), that transaction commits, the emails go out with no
    transaction open (on SQLite no lock at all), and each outcome is recorded in its own short
    locked write (`_record`). A sender that dies mid-way leaves rows `sending`; when their
    lease ends the next run claims them again. Each write takes the organization's lock first,
    like every writer: locks are always taken organization first, rows after."""
    from userctl.db.engine import begin_read

    target = parse_smtp_url(smtp) if isinstance(smtp, str) else smtp
    moment = naive_utc(now)
    query = (
        select(Organization.slug)
        .join(Notification, Notification.organization_id == Organization.id)
        .where(_claimable(moment))
        .distinct()
    )
    if org_id is not None:
        query = query.where(Notification.organization_id == org_id)
    with begin_read(engine) as conn:
        slugs = sorted(str(slug) for slug in conn.execute(query).scalars())
    deliveries: list[Delivery] = []
    mailer = _Mailer(target)
    try:
        for slug in slugs:
            after = 0  # ids go up: an invitation that failed in this run waits for the next one
            while True:
                claims, cancelled = _claim(engine, slug, moment, after, lock_timeout_s)
                deliveries += [Delivery(i, slug, r, "cancelled") for i, r in cancelled]
                if not claims and not cancelled:
                    break
                after = max([c.id for c in claims] + [i for i, _ in cancelled])
                for claim in claims:
                    deliveries.append(_deliver(engine, mailer, letterhead, claim, moment))
    finally:
        mailer.close()
    counts = {
        status: sum(d.status == status for d in deliveries)
        for status in ("sent", "failed", "cancelled")
    }
    errors = tuple(f"{d.recipient}: {d.reason}" for d in deliveries if d.status == "failed")
    return SendReport(
        counts["sent"], counts["failed"], counts["cancelled"], errors, tuple(deliveries)
    )


@dataclass(frozen=True, slots=True)
class _Claim:
    """One invitation this sender holds until `lease_ends`: the token exists only here and in
    the email; the row keeps its hash, which is also how a later write knows the claim is still
    this sender's."""

    id: int
    organization: str
    recipient: str
    first_name: str | None
    org_name: str
    token: str = field(repr=False)


def _claimable(now: dt.datetime) -> Any:
    n = Notification
    return (n.status == "queued") | ((n.status == "sending") & (n.expires_at < now))


def _claim(
    engine: Engine, slug: str, now: dt.datetime, after: int, lock_timeout_s: float
) -> tuple[list[_Claim], list[tuple[int, str]]]:
    """Claim up to CLAIM_BATCH invitations of organization `slug` with an id above `after` in one
    short locked write; the invitations of deleted users are cancelled on the way. Returns
    (claims, cancelled)."""
    from userctl.db.engine import begin_write, lock_organization

    n = Notification
    claims: list[_Claim] = []
    cancelled: list[tuple[int, str]] = []
    with begin_write(engine, lock_timeout_s=lock_timeout_s, organization=slug) as conn:
        org_id = lock_organization(conn, slug, lock_timeout_s)
        rows = conn.execute(
            select(
                n.id, n.user_id, n.recipient, Organization.name.label("org_name"), User.first_name
            )
            .join(Organization, Organization.id == n.organization_id)
            .outerjoin(User, User.id == n.user_id)
            .where(n.organization_id == org_id, n.id > after, _claimable(now))
            .order_by(n.id)
            .limit(CLAIM_BATCH)
            .with_for_update(of=n)  # two concurrent senders never claim one invitation twice
        ).all()
        for row in rows:
            if row.user_id is None:
                conn.execute(
                    update(n).where(n.id == row.id).values(status="cancelled", token_hash=None)
                )
                cancelled.append((int(row.id), str(row.recipient)))
                continue
            token = secrets.token_urlsafe(32)
            conn.execute(
                update(n)
                .where(n.id == row.id)
                .values(status="sending", token_hash=token_hash(token), expires_at=now + LEASE)
            )
            claims.append(
                _Claim(int(row.id), slug, str(row.recipient), row.first_name, row.org_name, token)
            )
    return claims, cancelled


def _deliver(
    engine: Engine, mailer: "_Mailer", letterhead: Letterhead, claim: _Claim, now: dt.datetime
) -> Delivery:
    """Send one claimed invitation, outside any transaction, then record what became of it."""
    try:
        mailer.send(
            invitation_email(
                claim.recipient, claim.first_name, claim.org_name, claim.token, letterhead
            )
        )
    except (smtplib.SMTPException, OSError) as exc:
        reason = _describe(exc).replace(claim.token, "[token]")
        return _record(engine, claim, now, reason)
    return _record(engine, claim, now, None)


def _record(engine: Engine, claim: _Claim, now: dt.datetime, reason: str | None) -> Delivery:
    """The outcome of one delivery, in a short locked write: sent (its token the user's only
    live one) or queued again with the reason. A claim lost meanwhile (a resend revoked it, or
    the lease ended and another sender took it) is left as it is, and a deleted user's keeps no
    hash: either way the link just sent does not register."""
    from userctl.db.engine import begin_write, lock_organization

    n = Notification
    mine = (n.id == claim.id) & (n.status == "sending") & (n.token_hash == token_hash(claim.token))
    with begin_write(
        engine, lock_timeout_s=RECORD_TIMEOUT_S, organization=claim.organization
    ) as conn:
        lock_organization(conn, claim.organization, RECORD_TIMEOUT_S)
        row = conn.execute(select(n.user_id).where(mine).with_for_update()).first()
        if row is None:
            return Delivery(
                claim.id, claim.organization, claim.recipient, "cancelled", "superseded"
            )
        if row.user_id is None:
            # The user was deleted while their email was in flight: the status still says
            # whether an email went out, and no hash is kept, so its link never registers.
            gone = {"status": "cancelled"} if reason else {"status": "sent", "sent_at": now}
            conn.execute(update(n).where(mine).values(token_hash=None, expires_at=None, **gone))
            status = "cancelled" if reason else "sent"
            return Delivery(claim.id, claim.organization, claim.recipient, status, "user deleted")
        if reason is not None:
            conn.execute(
                update(n)
                .where(mine)
                .values(
                    status="queued",
                    token_hash=None,
                    expires_at=None,
                    attempts=n.attempts + 1,
                    last_error=reason[:500],
                )
            )
            return Delivery(claim.id, claim.organization, claim.recipient, "failed", reason)
        revoke_tokens(conn, int(row.user_id), keep=claim.id, pending=False)
        conn.execute(
            update(n)
            .where(mine)
            .values(
                status="sent",
                expires_at=now + INVITATION_TTL,
                sent_at=now,
                attempts=n.attempts + 1,
                last_error=None,
            )
        )
    return Delivery(claim.id, claim.organization, claim.recipient, "sent")


def revoke_tokens(
    conn: Connection, user_id: int, *, keep: int | None = None, pending: bool = True
) -> None:
    """An invitation is one live token (DESIGN §8 invariant 9): every other sent invitation of
    `user_id` stops registering (`revoked`, its hash dropped), and with `pending` the queued and
    in-flight ones are `cancelled` too (a resend starts over; a delivery leaves them, so the
    last email to go out is the one that works). Inside the caller's locked transaction."""
    n = Notification
    others = n.user_id == user_id
    if keep is not None:
        others &= n.id != keep
    conn.execute(
        update(n).where(others, n.status == "sent").values(status="revoked", token_hash=None)
    )
    if pending:
        conn.execute(
            update(n)
            .where(others, n.status.in_(("queued", "sending")))
            .values(status="cancelled", token_hash=None)
        )


def registering_user(conn: Connection, token: str, now: dt.datetime) -> int | None:
    """What the platform's registration page checks, here so that the contract is tested: the
    user a presented token registers, or None. Only a sent invitation, before its expiry, of a
    user still invited."""
    n = Notification
    row = conn.execute(
        select(n.user_id)
        .join(User, User.id == n.user_id)
        .where(
            n.token_hash == token_hash(token),
            n.status == "sent",
            n.expires_at > naive_utc(now),
            User.status == "invited",
        )
    ).first()
    return None if row is None else int(row.user_id)


def token_hash(token: str) -> str:
    """What the platform compares a presented registration token with: hex SHA-256."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def registration_link(token: str, base_url: str) -> str:
    return f"{base_url}{'&' if '?' in base_url else '?'}token={token}"


def invitation_email(
    recipient: str, first_name: str | None, org_name: str, token: str, letterhead: Letterhead
) -> EmailMessage:
    """A message a mail server accepts (Date, Message-ID) in two parts, plain text and HTML; the
    names come from the desired-state file, so the HTML part escapes them."""
    message = EmailMessage()
    message["From"] = letterhead.sender
    message["To"] = recipient
    message["Subject"] = f"You are invited to {org_name}"
    # RFC 3834: sent by a program, so vacation responders and auto-forwarders must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    # UTC as +0000: formatdate's "-0000" means "zone unknown" (RFC 5322 3.3).
    message["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
    # The sender's own domain, not this machine's name (which make_msgid would look up).
    message["Message-ID"] = make_msgid(
        domain=parseaddr(letterhead.sender)[1].rpartition("@")[2] or "userctl.invalid"
    )
    link = registration_link(token, letterhead.base_url)
    days = INVITATION_TTL.days
    message.set_content(
        f"{'Hello ' + first_name + ',' if first_name else 'Hello,'}\n\n"
        f"You have been invited to operate the {org_name} business account.\n"
        f"Finish your registration (set your password and enrol your authenticator) within {days} "
        f"days:\n\n{link}\n\nIf you did not expect this invitation, ignore this email.\n"
    )
    e = html.escape
    message.add_alternative(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>You are invited to {e(org_name)}</title></head><body>\n"
        f"<p>{'Hello ' + e(first_name) + ',' if first_name else 'Hello,'}</p>\n"
        f"<p>You have been invited to operate the <strong>{e(org_name)}</strong> business "
        "account.</p>\n"
        "<p>Finish your registration (set your password and enrol your authenticator) within "
        f"{days} days:</p>\n"
        f'<p><a href="{e(link)}">{e(link)}</a></p>\n'
        "<p>If you did not expect this invitation, ignore this email.</p>\n"
        "</body></html>\n",
        subtype="html",
    )
    return message


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"SMTP {exc.smtp_code} {text}".strip()
    return f"{type(exc).__name__}: {exc}".strip()


class _Mailer:
    """One SMTP session reused across messages; dropped after any failure so the next message
    starts from a fresh connection."""

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: EmailMessage) -> None:
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            self._smtp.send_message(message)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        smtp: smtplib.SMTP
        if t.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(
                t.host, t.port, timeout=SMTP_TIMEOUT_S, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(t.host, t.port, timeout=SMTP_TIMEOUT_S)
            if t.scheme == "smtp+starttls":
                smtp.starttls(context=ssl.create_default_context())
        if t.username:
            smtp.login(t.username, t.password or "")
        return smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def list_notifications(
    conn: Connection, org_id: int | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """The outbox as plain data, oldest first. Never the token (only its hash is stored, and
    that is left out too: nothing a reader needs)."""
    n = Notification
    query = select(
        n.id,
        Organization.slug,
        n.recipient,
        n.kind,
        n.status,
        n.attempts,
        n.last_error,
        n.created_at,
        n.sent_at,
        n.expires_at,
    ).join(Organization, Organization.id == n.organization_id)
    if org_id is not None:
        query = query.where(n.organization_id == org_id)
    if status is not None:
        query = query.where(n.status == status)
    return [
        {
            "id": int(r.id),
            "organization": r.slug,
            "recipient": r.recipient,
            "kind": r.kind,
            "status": r.status,
            "attempts": int(r.attempts),
            "last_error": r.last_error,
            "created_at": iso_z(r.created_at),
            "sent_at": None if r.sent_at is None else iso_z(r.sent_at),
            "expires_at": None if r.expires_at is None else iso_z(r.expires_at),
        }
        for r in conn.execute(query.order_by(n.id))
    ]
