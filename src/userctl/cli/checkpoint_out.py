"""How a write shows the signed checkpoint it appended (docs/auditing.md "Signed checkpoints"),
read back by apply/checkpoint_shown.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def written(engine: "Engine", organization: str, head: str | None) -> dict[str, Any] | None:
    """The checkpoint signing `head`, or None (see apply.checkpoint_shown.written)."""
    from userctl.apply import checkpoint_shown

    return checkpoint_shown.written(engine, organization, head)


def show(checkpoint: dict[str, Any] | None) -> None:
    """Print the line of the signed checkpoint a write appended, if it appended one: how every
    command that appends audit events reports it (apply writes the same `line` in its report)."""
    if checkpoint is not None:
        import click

        click.echo(line(checkpoint))


def line(checkpoint: dict[str, Any]) -> str:
    return (
        f"Signed checkpoint: #{checkpoint['seq']} {checkpoint['head']} at {checkpoint['time']} "
        f"by {checkpoint['key_id']} (keep it: `userctl audit checkpoints --last --format json`)"
    )
