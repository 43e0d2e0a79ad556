"""`userctl approve`: the saved plan shown, a confirmation on the terminal, the code, the approval
recorded (apply.run.approve_now); then what was recorded, in text or JSON."""

from __future__ import annotations

import datetime as dt
import sys

import click

from userctl.cli import checkpoint_out
from userctl.cli.apply_output import approved_document
from userctl.cli.code_prompt import interactive, with_code
from userctl.cli.context import app
from userctl.cli.flags import (
    FiniteRange,
    lock_option,
    max_age_option,
    operator_option,
    otp_option,
    result_format_option,
)
from userctl.clock import iso_z
from userctl.errors import ConfirmationRequired, UsageError
from userctl.render.text import approval_text

# An approval is for a reviewed plan about to be applied, not a standing permission.
MAX_APPROVAL_HOURS = 168.0


@click.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@operator_option
@otp_option
@click.option(
    "--valid-for",
    type=FiniteRange(min=0.01, max=MAX_APPROVAL_HOURS),
    default=24.0,
    show_default=True,
    help=f"Hours the approval stays valid (at most {MAX_APPROVAL_HOURS:g}: a week).",
)
@lock_option
@max_age_option
@click.option(
    "--yes",
    is_flag=True,
    help="Do not ask to confirm on a terminal (the TOTP code is still required).",
)
@result_format_option("approve.schema.json")
def approve(
    plan_file: str,
    operator: str,
    otp_code: str | None,
    valid_for: float,
    lock_timeout: float,
    max_age: float,
    yes: bool,
    fmt: str,
) -> None:
    """Record a 2FA approval of one exact saved plan, so a pipeline can apply it without a code."""
    from userctl.apply import run
    from userctl.clock import utcnow
    from userctl.db.migrate import require_current

    ctx = app()
    engine = ctx.engine()
    require_current(engine)
    the_plan = run.read_saved_plan(plan_file, ctx.organization, utcnow(), max_age)
    as_json = fmt == "json"
    # An approver never signs blind: what the code will confirm comes first.
    click.echo(
        approval_text(the_plan.to_data(), color=ctx.color(sys.stderr if as_json else None)),
        nl=False,
        err=as_json,
    )
    if not yes:
        if not interactive():
            # As apply: a pipeline must say --yes; silence is no consent.
            raise ConfirmationRequired(
                "refusing to approve without confirmation: no terminal to ask on; pass --yes"
            )
        click.confirm(f"Approve this plan for {the_plan.organization}?", abort=True, err=True)
    if otp_code is None and not interactive():
        raise UsageError("approve needs --otp-code (or USERCTL_OTP_CODE) when there is no terminal")
    done = with_code(
        lambda given: run.approve_now(
            engine,
            the_plan,
            operator,
            given,
            valid_for=dt.timedelta(hours=valid_for),
            lock_timeout_s=lock_timeout,
        ),
        otp_code,
        ask=otp_code is None,
    )
    signed = checkpoint_out.written(engine, the_plan.organization, done.audit_head)
    if as_json:
        click.echo(approved_document(the_plan, done, signed), nl=False)
        return
    click.echo(
        f"Approved plan {the_plan.digest} for {the_plan.organization} by {done.approver}, valid "
        f"until {iso_z(done.expires_at)}."
    )
    click.echo(f"Audit chain head: {done.audit_head}")
    if signed is not None:
        click.echo(checkpoint_out.line(signed))
