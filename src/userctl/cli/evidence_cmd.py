"""`userctl evidence --since DATE --until DATE -o DIR`: the evidence pack of an audit period, as
files an auditor opens without userctl, with a manifest of SHA-256 sums."""

from __future__ import annotations

import datetime as dt

import click

from userctl.cli.context import reading
from userctl.cli.outputs import MANIFEST, manifest, write_pack
from userctl.clock import parse_utc
from userctl.errors import AuditChainBroken, UsageError


def parse_bound(option: str, value: str, *, end: bool) -> dt.datetime:
    """A period bound as naive UTC: a date is the start of that day, or for --until the start of
    the next one (the day is included)."""
    try:
        return parse_utc(value, day_end=end)
    except ValueError as exc:
        raise UsageError(f"{option} {exc}, e.g. 2026-01-01 or 2026-06-30T18:00Z") from None


@click.command()
@click.option(
    "--since", required=True, metavar="DATE", help="First day of the period (UTC), e.g. 2026-01-01."
)
@click.option(
    "--until",
    required=True,
    metavar="DATE",
    help="Last day of the period, included (or an exact end instant).",
)
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Directory to write: new, empty, or an earlier evidence pack (with --force).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an earlier evidence pack in DIR (never anything else).",
)
def evidence(since: str, until: str, out: str, force: bool) -> None:
    """The evidence pack of an audit period: the verified audit log with its chain head, every
    plan applied with approvals and reasons, joiners/movers/leavers, review attestations, the
    current policy results and hygiene findings, an index.html linking them, and SHA256SUMS.
    Exits 1 (after writing the pack, which says so) when the audit chain does not verify."""
    from userctl.apply.reviews import read_evidence
    from userctl.clock import utcnow
    from userctl.render.review import evidence_files

    start, end = parse_bound("--since", since, end=False), parse_bound("--until", until, end=True)
    if end <= start:
        raise UsageError(f"--until {until} is not after --since {since}")
    with reading() as (conn, org_id, org):
        evidence = read_evidence(conn, org_id, org, start, end, utcnow().replace(microsecond=0))
    files = evidence_files(evidence)
    files[MANIFEST] = manifest(files)
    write_pack("-o", out, files, force=force)
    click.echo(
        f"{org.slug}: evidence for {since} to {until} written to {out} "
        f"({len(files)} files; open index.html)"
    )
    if not evidence["verification"]["ok"]:
        raise AuditChainBroken(
            f"the audit chain of {org.slug} does not verify: the pack records "
            "this (audit-log.json, index.html)"
        )
