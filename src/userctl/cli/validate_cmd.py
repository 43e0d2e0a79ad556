"""`userctl validate` and `userctl schema`: the desired-state format, checked and published.
Neither touches the database."""

from __future__ import annotations

import click

from userctl.cli.context import app
from userctl.errors import InputError, UsageError


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@click.command()
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    metavar="PATH",
    help="Desired-state file, or a directory whose *.yaml files form one desired state.",
)
def validate(path: str) -> None:
    """Check a desired-state file against the schema and the semantic rules (no database).

    Prints one line on success; otherwise every problem as FILE:LINE:COL: PATH: message on
    stderr, then their count, and exits 1."""
    from userctl.desired.loader import check_desired

    try:
        summary = check_desired(path)
    except InputError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{_plural(len(exc.problems), 'problem')} found", err=True)
        click.get_current_context().exit(1)
    organization = app().organization
    if organization is not None and organization != summary.organization:
        raise UsageError(f"--organization {organization} does not match {path}, which declares {summary.organization!r}")
    files = f", {_plural(len(summary.files), 'file')}" if len(summary.files) > 1 else ""
    click.echo(f"{path}: valid ({_plural(summary.roles, 'role')}, {_plural(summary.users, 'user')}{files})")


@click.command()
def schema() -> None:
    """Print the JSON Schema of desired-state files (for editors and other tools)."""
    from userctl.desired.schema import schema_text

    click.echo(schema_text(), nl=False)
