"""`userctl apply`: one call (apply.entries.apply_command: which plan, the apply, the checkpoint,
the invitations), given the terminal's part (the confirmation, the code prompt, the progress bar);
then what was done, in text or JSON."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Callable, TypeVar

import click

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
from userctl.cli.messages import say
from userctl.cli.plan_inputs import invitation_options, letterhead, planning_options
from userctl.errors import ConfirmationRequired
from userctl.render import render

if TYPE_CHECKING:
    from userctl.apply.given import GivenCode
    from userctl.plan import Plan

T = TypeVar("T")


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
    from userctl.apply import entries, run

    ctx = app()
    as_json = fmt == "json"

    def confirm(the_plan: Plan) -> None:
        if yes:
            return
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

    def code(attempt: Callable[[GivenCode], T], could_confirm: Callable[[], bool]) -> T:
        return with_code(attempt, otp_code, otp_code is None and interactive() and could_confirm())

    done = entries.apply_command(
        ctx.engine,
        run.Source(
            plan_file=plan_file,
            path=path,
            organization=ctx.organization,
            max_age_days=max_age,
            no_prune=no_prune,
            replace=replace,
            allow_mass_removal=allow_mass_removal,
            operator=operator,
            reason=reason,
        ),
        lock_timeout_s=lock_timeout,
        letterhead=lambda note: letterhead(invite_base_url, smtp_from, note),
        confirm=confirm,
        with_code=code,
        progress=progress,
    )
    the_plan, result, signed = done.plan, done.result, done.checkpoint
    if result is None:
        if as_json:
            click.echo(applied_document(the_plan, operator, None, None, done.started), nl=False)
        else:
            click.echo(render(the_plan.to_data(), "text", color=ctx.color()), nl=False)
        if otp_code is not None:
            click.echo("--otp-code was not used: there is nothing to apply.", err=True)
        return
    if not as_json:
        click.echo(applied_text(the_plan, result, signed), nl=False)
    assert done.delivery is not None  # an apply with changes always reports its invitations
    for warning in done.delivery.warnings:
        say(warning, err=True)
    report = done.delivery.report
    if report is not None and not as_json:
        say(f"Invitations: {report.sent} sent, {report.failed} still queued.")
    if as_json:
        sent = None if report is None else (report.sent, report.failed)
        click.echo(applied_document(the_plan, operator, result, sent, result.at, signed), nl=False)
