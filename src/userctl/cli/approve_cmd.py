"""`userctl approve`: one call (apply.entries.approve_command: the saved plan read, the approval
recorded, its checkpoint), given the terminal's part (showing the plan, the confirmation, the code
prompt); then what was recorded, in text or JSON."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Callable, TypeVar

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
from userctl.cli.messages import say
from userctl.clock import iso_z
from userctl.errors import ConfirmationRequired, UsageError
from userctl.render.text import approval_text

if TYPE_CHECKING:
    from userctl.apply.given import GivenCode
    from userctl.plan import Plan

T = TypeVar("T")

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
    from userctl.apply import entries

    ctx = app()
    as_json = fmt == "json"

    def show(the_plan: Plan) -> None:
        # An approver never signs blind: what the code will confirm comes first.
        color = ctx.color(sys.stderr if as_json else None)
        click.echo(approval_text(the_plan.to_data(), color=color), nl=False, err=as_json)

    def confirm(the_plan: Plan) -> None:
        if yes:
            return
        if not interactive():
            # As apply: a pipeline must say --yes; silence is no consent.
            raise ConfirmationRequired(
                "refusing to approve without confirmation: no terminal to ask on; pass --yes"
            )
        click.confirm(f"Approve this plan for {the_plan.organization}?", abort=True, err=True)

    def code(attempt: Callable[[GivenCode], T], could_confirm: Callable[[], bool]) -> T:
        if otp_code is None and not interactive():
            raise UsageError(
                "approve needs --otp-code (or USERCTL_OTP_CODE) when there is no terminal"
            )
        return with_code(attempt, otp_code, ask=otp_code is None)

    done = entries.approve_command(
        ctx.engine(),
        plan_file,
        organization=ctx.organization,
        max_age_days=max_age,
        operator=operator,
        valid_for=dt.timedelta(hours=valid_for),
        lock_timeout_s=lock_timeout,
        show=show,
        confirm=confirm,
        with_code=code,
    )
    the_plan, approval, signed = done.plan, done.approval, done.checkpoint
    if as_json:
        click.echo(approved_document(the_plan, approval, signed), nl=False)
        return
    say(
        f"Approved plan {the_plan.digest} for {the_plan.organization} by {approval.approver}, "
        f"valid until {iso_z(approval.expires_at)}."
    )
    say(f"Audit chain head: {approval.audit_head}")
    checkpoint_out.show(signed)
