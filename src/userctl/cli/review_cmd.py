"""`userctl review` (the access-review report), `review attest REPORT.json` (a reviewer's TOTP
sign-off of that exact report, an audit event) and `review status` (exit 4 when overdue)."""

from __future__ import annotations

from typing import Any

import click

from userctl.cli.code_prompt import interactive, with_code
from userctl.cli.context import app, reading
from userctl.cli.flags import lock_option, otp_option
from userctl.cli.messages import say
from userctl.errors import Refused, UsageError
from userctl.printable import json_text
from userctl.state import given_email

EXIT_OVERDUE_MESSAGE = "the access review is overdue"


@click.group(invoke_without_command=True)
@click.option(
    "--format", "fmt", type=click.Choice(["html", "csv", "json"]), default="html", show_default=True
)
@click.option(
    "--from",
    "source",
    metavar="REPORT.json",
    type=click.Path(dir_okay=False),
    help="Render this saved JSON report (its digest checked) instead of reading the database: the "
    "page shows exactly the report a reviewer attests.",
)
@click.pass_context
def review(ctx: click.Context, fmt: str, source: str | None) -> None:
    """The access review of the organization as it is now: every user with role, permissions,
    bank accounts, status, 2FA and last login, and for each grant the apply that made it (when,
    plan digest, operator, verified how, approved by whom, why), with a digest of its own."""
    if ctx.invoked_subcommand is not None:
        return
    from userctl.apply.reads import review_report_command
    from userctl.clock import utcnow
    from userctl.render.review import render_csv, render_html

    data = review_report_command(reading, source, lambda: utcnow().replace(microsecond=0))
    if fmt == "json":
        click.echo(json_text(data, sort_keys=True), nl=False)
    else:
        click.echo(render_csv(data) if fmt == "csv" else render_html(data), nl=False)


@review.command()
@click.argument("path", metavar="REPORT.json", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--reviewer",
    required=True,
    metavar="EMAIL",
    help="Who reviewed: an active user holding audit.view, with an enrolled authenticator.",
)
@otp_option
@click.option(
    "--note", metavar="TEXT", help="Recorded with the attestation (what was found, what follows)."
)
@lock_option
def attest(
    path: str, reviewer: str, otp_code: str | None, note: str | None, lock_timeout: float
) -> None:
    """Confirm with a TOTP code that you reviewed this exact report (its digest is recomputed from
    the file); recorded as an audit event, chained and HMAC'd like the others."""
    from userctl.apply.entries import attest_command

    if not otp_code and not interactive():
        raise UsageError(
            "--otp-code (or USERCTL_OTP_CODE) is required: an attestation is confirmed with TOTP"
        )
    ctx = app()
    done = attest_command(
        ctx.engine,
        ctx.organization,
        path,
        reviewer=reviewer,
        note=note,
        lock_timeout_s=lock_timeout,
        # A code typed at the prompt and rejected is asked for again, like apply's and approve's.
        with_code=lambda attempt, _could_confirm: with_code(
            attempt, otp_code or None, ask=not otp_code, prompt=f"TOTP code of {reviewer}"
        ),
        recorded=lambda slug, data, head: say(
            f"Attested review {data['digest']} of {slug} by "
            f"{given_email(reviewer)}; audit chain head {head}"
        ),
    )
    from userctl.cli import checkpoint_out

    checkpoint_out.show(done.checkpoint)


@review.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def status(fmt: str) -> None:
    """When the last attested review was; exit 4 when there is none or it is older than
    policies.review_every_days (default 182), for a scheduled pipeline."""
    from userctl.apply.reads import review_status
    from userctl.clock import utcnow

    now = utcnow()
    with reading() as (conn, org_id, org):
        settings, result = review_status(conn, org_id, now)
    data: dict[str, Any] = {"organization": org.slug, **result.to_data(settings)}
    if fmt == "json":
        click.echo(json_text(data), nl=False)
    elif result.last is None:
        say(f"{org.slug}: no access review was ever attested")
    else:
        say(
            f"{org.slug}: last review attested {data['last_attested_at']} by {data['reviewer']} "
            f"(report {data['report_digest']}); next due {data['due_at']}"
        )
    if result.overdue:
        raise Refused(
            f"{EXIT_OVERDUE_MESSAGE}: attest one every {settings.review_every_days} days "
            "(`userctl review --format json > review.json`, "
            "then `userctl review attest review.json`)"
        )
