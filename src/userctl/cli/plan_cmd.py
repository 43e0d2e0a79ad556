"""`userctl plan`: what would change, in four formats, with exit codes for pipelines."""

from __future__ import annotations

import click

from userctl.apply.planning import plan_from_file, plan_options
from userctl.cli.context import app
from userctl.cli.flags import reason_option
from userctl.cli.plan_inputs import planning_options
from userctl.errors import ExitCode, plan_exit_code
from userctl.plan import dumps
from userctl.render import FORMATS, render


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
) -> ExitCode:
    """Show what applying FILE would change in the live database. Never writes to it."""
    from userctl.clock import utcnow
    from userctl.desired.loader import prefetching

    ctx = app()
    with prefetching(path):
        # Read on the raw driver (db/thin.py); ctx.engine only if that path declines.
        result = plan_from_file(
            ctx.engine,
            path,
            plan_options(no_prune, replace, allow_mass_removal, operator, reason),
            ctx.organization,
            utcnow(),
            url=ctx.database_url,
            connect_timeout=ctx.connect_timeout,
        )
    if out:
        from userctl.cli.outputs import desired_files, write_file

        write_file("--out", out, dumps(result), reads=desired_files(path))
    click.echo(
        render(result.to_data(), fmt, color=ctx.color(), verbose=verbose, saved_as=out),
        nl=False,
    )
    # Returned, not exited with: cli/main.py ends the process with it.
    return plan_exit_code(
        blocked=bool(result.blocked),
        detailed=detailed_exitcode,
        changes=bool(result.active_changes),
        needs_2fa=result.requires_2fa,
    )
