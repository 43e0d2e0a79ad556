"""`userctl notifications list` / `send` / `resend` (resend_cmd.py): the invitation outbox
(DESIGN §4 step 5).

Both work on every organization of the database unless `--organization` names one, so a single
scheduled `notifications send` retries everything that is still queued."""

from __future__ import annotations

import os

import click

from userctl.cli.context import app, reading_database
from userctl.cli.flags import result_format_option
from userctl.cli.messages import say
from userctl.cli.plan_inputs import invitation_options, letterhead
from userctl.cli.resend_cmd import resend
from userctl.errors import UsageError, UserctlError

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
    from userctl.apply.reads import outbox_listing
    from userctl.render.tables import (
        NOTIFICATION_COLUMNS,
        NOTIFICATION_TABLE_COLUMNS,
        render,
        verbatim_cell,
    )

    with reading_database() as conn:
        rows = outbox_listing(conn, app().organization, status)
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
    from userctl.apply import entries, outbox

    smtp_url = os.environ.get(outbox.ENV_SMTP_URL)
    if not smtp_url:
        raise UsageError(
            f"{outbox.ENV_SMTP_URL} is not set: export it (smtp://host:port, "
            "smtp+starttls://user:password@host:587 or smtps://user:password@host:465) and rerun"
        )
    # Refused even with nothing queued: a scheduled run must not wait for an invitation to fail.
    letter = letterhead(invite_base_url, smtp_from, "queued invitations")
    report = entries.send_invitations(app().engine(), smtp_url, app().organization, letter)
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
        say(f"  not sent: {line}", err=True)
    if report.failed:
        raise UserctlError(
            f"{report.failed} invitation(s) could not be sent and stay queued; "
            "fix the cause above and rerun `userctl notifications send`"
        )


# Defined apart (it confirms with a code, the others do not), shown under the same group.
notifications.add_command(resend)
