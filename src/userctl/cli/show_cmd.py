"""`userctl show PLAN`: render a saved plan, after checking its format and digest."""

from __future__ import annotations

import click

from userctl.cli.common import read_plan_file
from userctl.cli.context import app
from userctl.render import FORMATS, render
from userctl.render.markdown import MAX_BYTES as MARKDOWN_BYTES

# Room for the summary table, the lists of risky steps and the notes about what was cut.
MIN_MARKDOWN_BYTES = 2_000


@click.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--max-bytes",
    type=click.IntRange(min=MIN_MARKDOWN_BYTES),
    metavar="N",
    help=f"Markdown only: the most UTF-8 bytes to write (default {MARKDOWN_BYTES}, a pull-request "
    "comment; a GitHub job summary holds 1 MiB: 1000000 leaves room). Risky steps are named "
    "most dangerous first; only plain changes are cut from the details.",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Text: show every deferred step and note in full (by default, one line each).",
)
def show(plan_file: str, fmt: str, max_bytes: int | None, verbose: bool) -> None:
    """Show a saved PLAN_FILE (a pull request's plan.json artifact) as plan would: text, json,
    markdown or html. Needs no database. Checks the file's format and digest only: apply still
    re-derives the plan from the live state and refuses it when it is not what the planner writes.
    """
    from userctl.render.text import provenance_line

    the_plan = read_plan_file(plan_file)
    data = the_plan.to_data()
    if fmt == "text":
        click.echo(provenance_line(data))
    click.echo(
        render(
            data,
            fmt,
            color=app().color(),
            max_bytes=max_bytes,
            verbose=verbose,
            saved_as=plan_file,
        ),
        nl=False,
    )
