"""`userctl validate` and `userctl schema`: the desired-state format, checked and published.
Neither touches the database."""

from __future__ import annotations

import click

from userctl.cli.context import app
from userctl.cli.messages import say
from userctl.errors import ExitCode, InputError, UsageError, exit_code_of


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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: problems on stderr; json: one document on stdout (schemas/validate.schema.json); "
    "github: one workflow annotation per problem on stdout.",
)
def validate(path: str, fmt: str) -> ExitCode | None:
    """Check a desired-state file against the schema and the semantic rules (no database).

    Prints one line on success; otherwise every problem as FILE:LINE:COL: PATH: message on
    stderr, then their count, and exits 1. The exit code is the same in every format."""
    from userctl.desired.loader import check_desired, desired_files
    from userctl.render import results

    try:
        summary = check_desired(path)
    except InputError as exc:
        if fmt == "json":
            click.echo(
                results.document(results.validation(desired_files(path)[0], exc.problems)), nl=False
            )
        for problem in exc.problems:
            if fmt == "github":
                click.echo(results.github_annotation(problem))
            elif fmt == "text":
                click.echo(str(problem), err=True)
        say(f"{_plural(len(exc.problems), 'problem')} found", err=True)
        # The problems are shown already: the error is not raised again, only its code returned.
        return exit_code_of(exc)
    organization = app().organization
    if organization is not None and organization != summary.organization:
        raise UsageError(
            f"--organization {organization} does not match {path}, which "
            f"declares {summary.organization!r}"
        )
    if fmt == "json":
        click.echo(
            results.document(
                results.validation(
                    summary.files, (), summary.organization, summary.roles, summary.users
                )
            ),
            nl=False,
        )
        return ExitCode.OK
    files = f", {_plural(len(summary.files), 'file')}" if len(summary.files) > 1 else ""
    # github: a valid file makes no annotation; the line goes to the log (stderr) only.
    say(
        f"{path}: valid ({_plural(summary.roles, 'role')}, "
        f"{_plural(summary.users, 'user')}{files})",
        err=fmt == "github",
    )
    return ExitCode.OK


@click.command()
def schema() -> None:
    """Print the JSON Schema of desired-state files (for editors and other tools)."""
    from userctl.desired.schema import schema_text

    click.echo(schema_text(), nl=False)
