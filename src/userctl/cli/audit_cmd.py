"""`userctl audit log` / `audit verify`: who changed what, when, confirmed how; and evidence
that the trail was not altered (DESIGN §4 "Audit")."""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from typing import Any, Iterator

import click

from userctl.cli.common import reading, result_format_option
from userctl.clock import parse_utc
from userctl.errors import AuditChainBroken, UsageError
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

    since_at = _parse_since(since) if since is not None else None
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


@audit.command("verify")
@click.option(
    "--head",
    metavar="HASH",
    help="A chain head recorded earlier (printed by apply): it must be an intact event of the "
    "chain; events appended after it are counted.",
)
@result_format_option("audit-verify.schema.json")
def verify(head: str | None, fmt: str) -> None:
    """Recompute the hash chain (and HMACs when USERCTL_AUDIT_KEY is set). Exits 0 when it is
    intact (with --head: and the recorded head is one of its events, saying how many came
    after it), 4 naming the first altered, missing or reordered event (or a --head that is no
    event of the chain), 1 when it could not be checked (no database, unknown organization,
    bad --head)."""
    from userctl.apply import audit as trail
    from userctl.render import results

    expected = _parse_head(head) if head is not None else None
    with reading() as (conn, org_id, org):
        result = trail.verify_chain(conn, org_id, expected)
    if fmt == "json":
        click.echo(
            results.document(
                results.chain_verification(
                    organization=org.slug,
                    events=result.events,
                    head=result.head,
                    expected_head=expected,
                    hmac_checked=result.hmac_checked,
                    problem=result.problem,
                    bad_seq=result.bad_seq,
                    bad_id=result.bad_id,
                    after_head=result.after_head,
                )
            ),
            nl=False,
        )
    if not result.ok:
        raise AuditChainBroken(f"audit chain of {org.slug} is broken: {result.problem}")
    if not result.hmac_checked:
        click.echo(
            f"note: HMACs not checked ({trail.ENV_KEY} is not set); a rebuilt chain would pass",
            err=True,
        )
    if fmt == "text":
        click.echo(f"audit chain intact: {result.events} events, head {result.head}")
        if expected is not None:
            click.echo(
                f"recorded head {expected} is in the chain; "
                f"{result.after_head} event(s) were appended after it"
            )


_HASH = re.compile(r"[0-9a-f]{64}")


def _parse_head(value: str) -> str:
    """--head as a chain hash; anything else is a mistake in the command, not a broken chain."""
    wanted = value.strip().lower()
    if not _HASH.fullmatch(wanted):
        raise UsageError(
            f"--head {value!r} is not a chain head: 64 hexadecimal digits, as `apply` prints it"
        )
    return wanted


def _parse_since(value: str) -> dt.datetime:
    try:
        return parse_utc(value)
    except ValueError as exc:
        raise UsageError(f"--since {exc}, e.g. 2026-03-01 or 2026-03-01T12:00Z") from None
