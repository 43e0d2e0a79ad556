"""`userctl plan`: what would change, in four formats, with exit codes for pipelines."""

from __future__ import annotations

import os
import tempfile

import click

from userctl.cli.context import app
from userctl.plan import Plan, dumps
from userctl.planner import PlanOptions
from userctl.render import FORMATS, render

EXIT_NO_CHANGES, EXIT_CHANGES, EXIT_CHANGES_2FA, EXIT_BLOCKED = 0, 2, 3, 4


def plan_exit_code(plan: Plan, detailed: bool) -> int:
    if plan.blocked:
        return EXIT_BLOCKED
    if not detailed or not plan.active_changes:
        return EXIT_NO_CHANGES
    return EXIT_CHANGES_2FA if plan.requires_2fa else EXIT_CHANGES


def write_atomically(path: str, text: str) -> None:
    """A reader (or a crashed run) never sees half a file (a plan, an export)."""
    from userctl.errors import UsageError

    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".userctl-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            # The temporary file is ours; the path the user gave is what they can fix.
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def planning_options(f: click.decorators.FC) -> click.decorators.FC:
    """Options that shape a plan, shared by `plan` and `apply -f`."""
    for decorator in reversed(
        [
            click.option("--no-prune", is_flag=True, help="Keep users and roles that are absent from the file."),
            click.option("--replace", "replace", multiple=True, metavar="EMAIL",
                         help="Delete and re-create this user (needed to change id_type, id_number or phone). Repeatable."),
            click.option("--allow-mass-removal", is_flag=True, help="Lift the guard against removing over 25% of the users."),
        ]
    ):
        f = decorator(f)
    return f


def make_options(no_prune: bool, replace: tuple[str, ...], allow_mass_removal: bool, operator: str | None) -> PlanOptions:
    return PlanOptions(
        prune=not no_prune,
        replace=frozenset(e.strip().lower() for e in replace),
        allow_mass_removal=allow_mass_removal,
        operator=operator.strip().lower() if operator else None,
    )


@click.command()
@click.option("-f", "--file", "path", required=True, type=click.Path(), help="Desired-state file or directory of *.yaml.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Also save the plan (JSON) for `apply PLAN` / `approve PLAN`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 3 when some need 2FA.")
@planning_options
@click.option("--operator", envvar="USERCTL_OPERATOR", metavar="EMAIL", help="Who will apply: enables the self guard.")
def plan(
    path: str,
    fmt: str,
    out: str | None,
    detailed_exitcode: bool,
    no_prune: bool,
    replace: tuple[str, ...],
    allow_mass_removal: bool,
    operator: str | None,
) -> None:
    """Show what applying FILE would change in the live database. Never writes to it."""
    from userctl.desired.loader import prefetching
    from userctl.cli.planning import plan_from_file

    ctx = app()
    with prefetching(path):  # the file is parsed while ctx.engine() imports the database layer
        result = plan_from_file(ctx.engine(), path, make_options(no_prune, replace, allow_mass_removal, operator), ctx.organization)
    if out:
        write_atomically(out, dumps(result))
    click.echo(render(result.to_data(), fmt, color=ctx.color()), nl=False)
    code = plan_exit_code(result, detailed_exitcode)
    if code:
        click.get_current_context().exit(code)
