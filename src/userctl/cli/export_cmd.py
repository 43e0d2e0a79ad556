"""`userctl export`: the live organization as a desired-state file, the starting point for
managing an existing organization as code. Planning the exported file shows no changes."""

from __future__ import annotations

import click

from userctl.cli.context import reading
from userctl.cli.messages import say
from userctl.cli.outputs import write_file


@click.command()
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False),
    help="Write the file here (atomically) instead of to standard output.",
)
@click.option(
    "--schema",
    "schema",
    metavar="PATH|URL",
    default=None,
    help="Where the first line's $schema points editors, relative to the file (default: "
    "userctl.schema.json beside it, saved with `userctl schema > userctl.schema.json`).",
)
def export(output: str | None, schema: str | None) -> None:
    """Write the organization's roles and users as desired-state YAML (`--organization` picks
    the organization when the database holds several)."""
    from userctl.apply.reads import exported

    with reading() as (conn, _org_id, org):
        document = exported(conn, org.slug, schema)
    for warning in document.warnings:
        say(f"Warning: {warning}", err=True)
    if output:
        write_file("-o", output, document.text)
        say(
            f"{output}: exported {document.roles} roles, {document.users} users of {org.slug}",
            err=True,
        )
    else:
        click.echo(document.text, nl=False)
