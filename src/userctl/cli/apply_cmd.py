"""`userctl apply` and `userctl approve`."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from userctl.cli.common import (
    FiniteRange,
    interactive,
    lock_option,
    make_options,
    operator_option,
    otp_option,
    plan_from_file,
    planning_options,
)
from userctl.cli.context import app
from userctl.errors import ConfirmationRequired, UsageError, UserctlError
from userctl.plan import Plan, loads
from userctl.render import render

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from userctl.apply.outbox import SmtpTarget

PROGRESS_THRESHOLD = 300
# An approval is for a reviewed plan about to be applied, not a standing permission.
MAX_APPROVAL_HOURS = 168.0


def read_saved_plan(path: str) -> Plan:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read saved plan {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a saved plan (not UTF-8 text)") from None
    return loads(text, source=path)


@click.command()
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@click.option("-f", "--file", "path", type=click.Path(), help="Plan and apply this desired-state file in one go.")
@operator_option
@otp_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@planning_options
@lock_option
def apply(
    plan_file: str | None,
    path: str | None,
    operator: str,
    otp_code: str | None,
    yes: bool,
    no_prune: bool,
    replace: tuple[str, ...],
    allow_mass_removal: bool,
    lock_timeout: float,
) -> None:
    """Apply a saved PLAN_FILE (no YAML needed) or the desired state in -f FILE, in one transaction."""
    from userctl.apply.transaction import apply_plan, code_can_confirm
    from userctl.clock import utcnow
    from userctl.db.migrate import require_current

    ctx = app()
    if (plan_file is None) == (path is None):
        raise UsageError("give either a saved PLAN file or -f FILE, not both and not neither")
    # Parsed before anything is written: a typo found only after commit would fail a committed apply.
    smtp = _smtp_target()
    engine = ctx.engine()
    if plan_file is not None:
        if no_prune or replace:
            raise UsageError("--no-prune and --replace shape a new plan: use them with `plan` or `apply -f`")
        require_current(engine)
        the_plan = read_saved_plan(plan_file)
    else:
        assert path is not None
        the_plan = plan_from_file(engine, path, make_options(no_prune, replace, allow_mass_removal, operator), ctx.organization)
    if not the_plan.active_changes:
        click.echo(render(the_plan.to_data(), "text", color=ctx.color()), nl=False)
        return
    if not yes:
        if not interactive():
            raise ConfirmationRequired("refusing to apply without confirmation: no terminal to ask on; pass --yes")
        click.echo(render(the_plan.to_data(), "text", color=ctx.color()), nl=False)
        click.confirm(f"Apply these {len(the_plan.active_changes)} changes to {the_plan.organization}?", abort=True, err=True)
    if otp_code is None and the_plan.requires_2fa and interactive() and code_can_confirm(engine, the_plan, operator, utcnow()):
        otp_code = click.prompt("TOTP code", hide_input=True, err=True)

    now = utcnow()
    total = len(the_plan.active_changes)
    if total > PROGRESS_THRESHOLD and sys.stderr.isatty():
        with click.progressbar(length=total, label="Applying", file=sys.stderr) as bar:
            result = apply_plan(engine, the_plan, operator, otp_code=otp_code, allow_mass_removal=allow_mass_removal,
                                lock_timeout_s=lock_timeout, now=now, progress=bar.update)
    else:
        result = apply_plan(engine, the_plan, operator, otp_code=otp_code, allow_mass_removal=allow_mass_removal,
                            lock_timeout_s=lock_timeout, now=now)
    click.echo(
        f"Applied {result.applied} change(s) to {the_plan.organization} (serial {result.serial}), "
        f"verified by {result.verified_by}."
    )
    if result.invitations_queued:
        click.echo(f"Queued {result.invitations_queued} invitation email(s).")
    click.echo(f"Audit chain head: {result.audit_head}")
    _deliver_invitations(engine, smtp, result.organization_id, result.invitations_queued)


def _smtp_target() -> "SmtpTarget | None":
    from userctl.apply import outbox

    url = os.environ.get(outbox.ENV_SMTP_URL)
    return outbox.parse_smtp_url(url) if url else None


def _deliver_invitations(engine: "Engine", smtp: "SmtpTarget | None", org_id: int, queued: int) -> None:
    """After commit (a rolled-back apply never gets here, so it never sends anything), deliver
    this organization's queued invitations. The apply is committed whatever happens here, so a
    failure is a warning: the emails stay queued for `userctl notifications send`."""
    if not queued:
        return
    if smtp is None:
        click.echo("USERCTL_SMTP_URL is not set: invitations stay queued (`userctl notifications send`).", err=True)
        return
    from sqlalchemy.exc import SQLAlchemyError

    from userctl.apply import outbox
    from userctl.clock import utcnow

    try:
        report = outbox.send_queued(engine, smtp, utcnow(), org_id)
    except (UserctlError, SQLAlchemyError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"warning: invitations not sent ({reason}); they stay queued: retry with `userctl notifications send`.", err=True)
        return
    click.echo(f"Invitations: {report.sent} sent, {report.failed} still queued.")
    if report.failed:
        click.echo("Some invitations could not be sent; retry with `userctl notifications send`.", err=True)


@click.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@operator_option
@otp_option
@click.option("--valid-for", type=FiniteRange(min=0.01, max=MAX_APPROVAL_HOURS), default=24.0, show_default=True,
              help=f"Hours the approval stays valid (at most {MAX_APPROVAL_HOURS:g}: a week).")
@lock_option
def approve(plan_file: str, operator: str, otp_code: str | None, valid_for: float, lock_timeout: float) -> None:
    """Record a 2FA approval of one exact saved plan, so a pipeline can apply it without a code."""
    from userctl.apply.transaction import approve_plan
    from userctl.clock import utcnow
    from userctl.db.migrate import require_current

    ctx = app()
    engine = ctx.engine()
    require_current(engine)
    the_plan = read_saved_plan(plan_file)
    if otp_code is None:
        if not interactive():
            raise UsageError("approve needs --otp-code (or USERCTL_OTP_CODE) when there is no terminal")
        otp_code = click.prompt("TOTP code", hide_input=True, err=True)
    row = approve_plan(engine, the_plan, operator, otp_code, now=utcnow(), valid_for=dt.timedelta(hours=valid_for),
                       lock_timeout_s=lock_timeout)
    click.echo(f"Approved plan {the_plan.digest} for {the_plan.organization} by {operator.lower()}, valid until {row.expires_at.isoformat()}Z.")
