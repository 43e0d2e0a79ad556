"""`userctl audit log` / `audit verify`: who changed what, when, confirmed how; and evidence
that the trail was not altered (DESIGN §4 "Audit")."""

from __future__ import annotations

import click

from userctl.cli.audit_keys_cmd import checkpoints, keygen, parse_since
from userctl.cli.audit_verify_cmd import verify
from userctl.cli.context import reading


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
    from userctl.apply.audit_log import event_batches
    from userctl.render.streamed import audit_log_text, json_array

    since_at = parse_since(since) if since is not None else None
    # Streamed: each batch of events is written as it is read, so the log's size never sits in
    # memory.
    with reading() as (conn, org_id, _org):
        batches = event_batches(conn, org_id, since=since_at, user=user, records=fmt == "json")
        for piece in json_array(batches) if fmt == "json" else audit_log_text(batches):
            click.echo(piece, nl=False)


# Defined apart (verifying the chain, the signed checkpoints), shown under the same group.
audit.add_command(verify)
audit.add_command(checkpoints)
audit.add_command(keygen)
