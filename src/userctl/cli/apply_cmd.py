"""`userctl apply`: which plan (apply.run.plan_to_apply), a confirmation on the terminal, the code,
the apply (apply.run.apply_now), the invitations; then what was done, in text or JSON."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from userctl.cli import checkpoint_out
from userctl.cli.apply_output import applied_document, applied_text, progress
from userctl.cli.code_prompt import interactive, with_code
from userctl.cli.context import app
from userctl.cli.flags import (
    lock_option,
    max_age_option,
    operator_option,
    otp_option,
    reason_option,
    result_format_option,
)
from userctl.cli.plan_inputs import invitation_options, letterhead, planning_options
from userctl.errors import ConfirmationRequired
from userctl.render import render

if TYPE_CHECKING:
    from userctl.apply.given import GivenCode
    from userctl.apply.transaction import ApplyResult


@click.command()
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(),
    help="The desired-state file or directory. Alone: plan and apply it in one go. With PLAN_FILE: "
    "apply PLAN_FILE only if FILE plans to exactly it (what a pipeline runs on the merged branch).",
)
@operator_option
@otp_option
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal)."
)
@planning_options
@lock_option
@max_age_option
@invitation_options
@result_format_option("apply.schema.json")
@reason_option
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
    max_age: float,
    invite_base_url: str | None,
    smtp_from: str | None,
    reason: str | None,
    fmt: str,
) -> None:
    """Apply a saved PLAN_FILE, the desired state in -f FILE, or PLAN_FILE checked against -f FILE,
    in one transaction."""
    from userctl.apply import run
    from userctl.apply.transaction import code_can_confirm
    from userctl.clock import utcnow

    ctx = app()
    source = run.Source(
        plan_file=plan_file,
        path=path,
        organization=ctx.organization,
        max_age_days=max_age,
        no_prune=no_prune,
        replace=replace,
        allow_mass_removal=allow_mass_removal,
        operator=operator,
        reason=reason,
    )
    smtp = run.smtp_target()
    engine = ctx.engine()
    started = utcnow()
    the_plan = run.plan_to_apply(engine, source, started)
    as_json = fmt == "json"
    if not the_plan.active_changes:
        if as_json:
            click.echo(applied_document(the_plan, operator, None, None, started), nl=False)
        else:
            click.echo(render(the_plan.to_data(), "text", color=ctx.color()), nl=False)
        if otp_code is not None:
            click.echo("--otp-code was not used: there is nothing to apply.", err=True)
        return
    # Every user the executor creates (a replace too) is invited.
    invited = sum(
        1 for c in the_plan.active_changes if c.kind == "user" and c.action in ("create", "replace")
    )
    letter = letterhead(
        invite_base_url, smtp_from, f"{invited} invitation(s)" if smtp and invited else None
    )
    if not yes:
        if not interactive():
            raise ConfirmationRequired(
                "refusing to apply without confirmation: no terminal to ask on; pass --yes"
            )
        color = ctx.color(sys.stderr if as_json else None)
        click.echo(render(the_plan.to_data(), "text", color=color), nl=False, err=as_json)
        click.confirm(
            f"Apply these {len(the_plan.active_changes)} changes to {the_plan.organization}?",
            abort=True,
            err=True,
        )
    ask = (
        otp_code is None
        and the_plan.requires_2fa
        and interactive()
        and code_can_confirm(engine, the_plan, operator, utcnow())
    )

    def attempt(given: GivenCode) -> "ApplyResult":
        with progress(len(the_plan.active_changes)) as bar:
            return run.apply_now(
                engine,
                the_plan,
                operator,
                given,
                allow_mass_removal=allow_mass_removal,
                lock_timeout_s=lock_timeout,
                progress=bar,
            )

    result = with_code(attempt, otp_code, ask)
    signed = checkpoint_out.written(engine, the_plan.organization, result.audit_head)
    if not as_json:
        click.echo(applied_text(the_plan, result, signed), nl=False)
    delivery = run.deliver_invitations(engine, smtp, letter, result)
    for warning in delivery.warnings:
        click.echo(warning, err=True)
    report = delivery.report
    if report is not None and not as_json:
        click.echo(f"Invitations: {report.sent} sent, {report.failed} still queued.")
    if as_json:
        sent = None if report is None else (report.sent, report.failed)
        click.echo(applied_document(the_plan, operator, result, sent, result.at, signed), nl=False)
