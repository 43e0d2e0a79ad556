"""`userctl show PLAN`: render a saved plan, after checking its format and digest."""

from __future__ import annotations

import click

from userctl.cli.common import read_plan_file
from userctl.cli.context import app
from userctl.render import FORMATS, render


@click.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
def show(plan_file: str, fmt: str) -> None:
    """Show a saved PLAN_FILE (a pull request's plan.json artifact) as plan would: text, json,
    markdown or html. Needs no database. Checks the file's format and digest only: apply still
    re-derives the plan from the live state and refuses it when it is not what the planner writes.
    """
    from userctl.render.text import provenance_line

    the_plan = read_plan_file(plan_file)
    data = the_plan.to_data()
    if fmt == "text":
        click.echo(provenance_line(data))
    click.echo(render(data, fmt, color=app().color()), nl=False)
