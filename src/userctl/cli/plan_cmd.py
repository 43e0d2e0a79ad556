"""`userctl plan`: what would change, in four formats, with exit codes for pipelines."""

from __future__ import annotations

import click

from userctl.cli.common import (
    make_options,
    plan_from_file,
    planning_options,
    reason_option,
)
from userctl.cli.context import app
from userctl.plan import Plan, dumps
from userctl.render import FORMATS, render

EXIT_NO_CHANGES, EXIT_CHANGES, EXIT_CHANGES_2FA, EXIT_BLOCKED = 0, 2, 3, 4


def plan_exit_code(plan: Plan, detailed: bool) -> int:
    if plan.blocked:
        return EXIT_BLOCKED
    if not detailed or not plan.active_changes:
        return EXIT_NO_CHANGES
    return EXIT_CHANGES_2FA if plan.requires_2fa else EXIT_CHANGES


@click.command()
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    type=click.Path(),
    help="Desired-state file or directory of *.yaml.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Also save the plan (JSON) for `apply PLAN` / `approve PLAN`.",
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 3 when some need 2FA."
)
@planning_options
@click.option(
    "--operator",
    envvar="USERCTL_OPERATOR",
    metavar="EMAIL",
    help="Who will apply: enables the self guard.",
)
@reason_option
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Text: show every deferred step and note in full (by default, one line each).",
)
def plan(
    path: str,
    fmt: str,
    out: str | None,
    detailed_exitcode: bool,
    no_prune: bool,
    replace: tuple[str, ...],
    allow_mass_removal: bool,
    operator: str | None,
    reason: str | None,
    verbose: bool,
) -> None:
    """Show what applying FILE would change in the live database. Never writes to it."""
    from userctl.clock import utcnow
    from userctl.desired.loader import prefetching

    ctx = app()
    with prefetching(path):  # the file is parsed while ctx.engine() imports the database layer
        result = plan_from_file(
            ctx.engine(),
            path,
            make_options(no_prune, replace, allow_mass_removal, operator, reason),
            ctx.organization,
            utcnow(),
        )
    if out:
        from userctl.cli.outputs import desired_files, write_file

        write_file("--out", out, dumps(result), reads=desired_files(path))
    click.echo(
        render(result.to_data(), fmt, color=ctx.color(), verbose=verbose, saved_as=out),
        nl=False,
    )
    code = plan_exit_code(result, detailed_exitcode)
    if code:
        click.get_current_context().exit(code)
