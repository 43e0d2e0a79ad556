"""`userctl notifications list` / `send`: the invitation outbox (DESIGN §4 step 5).

Both work on every organization of the database unless `--organization` names one, so a single
scheduled `notifications send` retries everything that is still queued."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from userctl.cli.code_prompt import interactive, with_code
from userctl.cli.context import app, reading, reading_database
from userctl.cli.flags import lock_option, operator_option, otp_option, result_format_option
from userctl.cli.plan_inputs import invitation_options, letterhead
from userctl.errors import TwoFactorRequired, UsageError, UserctlError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# See apply/outbox.py: queued → sending → sent; cancelled (user deleted, or replaced by a resend
# before it went out); revoked (a later invitation of the user was sent or resent).
STATUSES = ("queued", "sending", "sent", "cancelled", "revoked")


@click.group()
def notifications() -> None:
    """The invitation outbox."""


@notifications.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only notifications in this state.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def list_(status: str | None, fmt: str) -> None:
    """Show the outbox, oldest first. Invitation tokens are never shown (nor stored)."""
    from userctl.apply import outbox
    from userctl.render.tables import (
        NOTIFICATION_COLUMNS,
        NOTIFICATION_TABLE_COLUMNS,
        render,
        verbatim_cell,
    )

    with reading_database() as conn:
        org_id = _organization_id(conn)
        rows = outbox.list_notifications(conn, org_id, status)
    click.echo(
        render(
            NOTIFICATION_COLUMNS,
            rows,
            fmt,
            empty="no notifications",
            table_columns=NOTIFICATION_TABLE_COLUMNS,
            cell=verbatim_cell,
        ),
        nl=False,
    )


@notifications.command()
@invitation_options
@result_format_option("notifications-send.schema.json")
def send(invite_base_url: str | None, smtp_from: str | None, fmt: str) -> None:
    """Deliver queued invitations over SMTP (USERCTL_SMTP_URL, e.g. smtp://mail.internal:25),
    each with a new link to --invite-base-url. Exits 1 when some could not be sent: they stay
    queued for the next run."""
    from userctl.apply import outbox
    from userctl.clock import utcnow

    smtp_url = os.environ.get(outbox.ENV_SMTP_URL)
    if not smtp_url:
        raise UsageError(
            f"{outbox.ENV_SMTP_URL} is not set: export it (smtp://host:port, "
            "smtp+starttls://user:password@host:587 or smtps://user:password@host:465) and rerun"
        )
    # Refused even with nothing queued: a scheduled run must not wait for an invitation to fail.
    letter = letterhead(invite_base_url, smtp_from, "queued invitations")
    with reading_database() as conn:
        org_id = _organization_id(conn)
    report = outbox.send_queued(app().engine(), smtp_url, utcnow(), org_id, letterhead=letter)
    if fmt == "json":
        from dataclasses import asdict

        from userctl.render import results

        click.echo(
            results.document(
                results.notifications_sent(
                    report.sent,
                    report.failed,
                    report.cancelled,
                    [asdict(d) for d in report.deliveries],
                )
            ),
            nl=False,
        )
    summary = f"invitations: {report.sent} sent, {report.failed} failed"
    if report.cancelled:
        summary += f", {report.cancelled} cancelled (user deleted)"
    click.echo(summary, err=fmt == "json")
    for line in report.errors:
        click.echo(f"  not sent: {line}", err=True)
    if report.failed:
        raise UserctlError(
            f"{report.failed} invitation(s) could not be sent and stay queued; "
            "fix the cause above and rerun `userctl notifications send`"
        )


@notifications.command()
@click.argument("email")
@operator_option
@otp_option
@invitation_options
@lock_option
def resend(
    email: str,
    operator: str,
    otp_code: str | None,
    invite_base_url: str | None,
    smtp_from: str | None,
    lock_timeout: float,
) -> None:
    """Queue a new invitation (a fresh token, 7 days from sending) for a user who is still
    invited, e.g. one whose invitation expired; every earlier link of that user stops working.
    Confirmed by the operator's TOTP code (they need users.add); at most one resend per user
    every 10 minutes and 5 a day. Sent now when USERCTL_SMTP_URL is set, else by the next
    `userctl notifications send`."""
    from userctl.apply import outbox
    from userctl.apply.resend import resend_invitation
    from userctl.clock import utcnow

    # The same refusals as `send`, before anything is written: the link must point somewhere.
    letter = letterhead(invite_base_url, smtp_from, "the new invitation")
    smtp_url = os.environ.get(outbox.ENV_SMTP_URL)
    target = outbox.parse_smtp_url(smtp_url) if smtp_url else None
    if not otp_code and not interactive():
        raise TwoFactorRequired(
            "--otp-code (or USERCTL_OTP_CODE) is required: a resend is confirmed with the "
            "operator's TOTP code. Nothing was sent"
        )
    with reading() as (_conn, org_id, org):
        slug = org.slug
    with_code(
        lambda given: resend_invitation(
            app().engine(),
            slug,
            email,
            operator,
            given.code or "",
            now=utcnow(),
            lock_timeout_s=lock_timeout,
            code_read_at=given.read_at,
        ),
        otp_code or None,
        ask=not otp_code,
        prompt=f"TOTP code of {operator}",
    )
    click.echo(f"{slug}: a new invitation for {email.strip().lower()} is queued")
    if target is not None:
        report = outbox.send_queued(app().engine(), target, utcnow(), org_id, letterhead=letter)
        click.echo(f"invitations: {report.sent} sent, {report.failed} failed")
        if report.failed:
            raise UserctlError(
                f"{report.failed} invitation(s) could not be sent and stay "
                f"queued: {'; '.join(report.errors)}"
            )


def _organization_id(conn: "Connection") -> int | None:
    slug = app().organization
    if slug is None:
        return None
    from userctl.db.snapshot import read_organization

    return read_organization(conn, slug)[0]
