"""`userctl audit log` / `audit verify`: who changed what, when, confirmed how; and evidence
that the trail was not altered (DESIGN §4 "Audit")."""

from __future__ import annotations

import textwrap
from typing import Any, Iterator

import click

from userctl.cli.audit_keys_cmd import checkpoints, keygen, parse_since
from userctl.cli.audit_verify_cmd import verify
from userctl.cli.context import reading
from userctl.printable import json_text, printable

# What each column of the text log is (the JSON names every field itself).
LOG_HEADER = "TIME  OPERATOR  VERIFIED BY  ACTION  ADDRESS  [FOLLOWS #EVENT]  [REASON]"


@click.group()
def audit() -> None:
    """The organization's audit trail."""


@audit.command("log")
@click.option(
    "--since",
    metavar="ISO-DATE",
    help="Only events at or after this UTC date/time, e.g. 2026-03-01 or 2026-03-01T12:00Z.",
)
@click.option("--user", metavar="EMAIL", help="Only events performed by this user or about them.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def log(since: str | None, user: str | None, fmt: str) -> None:
    """Show the events, oldest first."""
    from userctl.apply import audit as trail

    since_at = parse_since(since) if since is not None else None
    # Streamed: each event is written as it is read, so the log's size never sits in memory.
    with reading() as (conn, org_id, _org):
        events = trail.iter_events(conn, org_id, since=since_at, user=user)
        if fmt == "json":
            _echo_json_array(events)
            return
        click.echo(LOG_HEADER)
        for e in events:
            extra = ([f"(follows #{e['refers_to']})"] if e["refers_to"] is not None else []) + (
                [f"reason: {e['reason']}"] if e["reason"] else []
            )
            click.echo(
                printable(
                    "  ".join(
                        (
                            e["time"],
                            e["operator"],
                            e["verified_by"],
                            e["action"],
                            e["address"],
                            *extra,
                        )
                    )
                )
            )


def _echo_json_array(items: Iterator[Any]) -> None:
    """`json.dumps(list(items), indent=2)`, byte for byte, written one item at a time."""
    first = True
    for item in items:
        body = textwrap.indent(json_text(item).removesuffix("\n"), "  ")
        click.echo(("[\n" if first else ",\n") + body, nl=False)
        first = False
    click.echo("[]" if first else "\n]")


# Defined apart (verifying the chain, the signed checkpoints), shown under the same group.
audit.add_command(verify)
audit.add_command(checkpoints)
audit.add_command(keygen)
