"""`userctl evidence --since DATE --until DATE -o DIR`: the evidence pack of an audit period, as
files an auditor opens without userctl, with a manifest of SHA-256 sums."""

from __future__ import annotations

import datetime as dt

import click

from userctl.cli.context import reading
from userctl.cli.messages import say
from userctl.cli.outputs import MANIFEST, SIGNATURE, manifest, write_pack
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
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    metavar="FILE",
    help="Also trust checkpoints signed by this key (a rotated one); the signing key's own public "
    "key is always trusted.",
)
@click.option(
    "--checkpoint",
    "kept_file",
    metavar="FILE",
    help="A checkpoint kept outside the database (as for `audit verify --checkpoint`).",
)
def evidence(
    since: str,
    until: str,
    out: str,
    force: bool,
    public_keys: tuple[str, ...],
    kept_file: str | None,
) -> None:
    """The evidence pack of an audit period: the verified audit log with its chain head, every
    plan applied with approvals and reasons, joiners/movers/leavers, review attestations, the
    current policy results and hygiene findings, an index.html linking them, and SHA256SUMS.
    With USERCTL_AUDIT_SIGNING_KEY set, also the period's signed checkpoints (checkpoints.json,
    every checkpoint verified) and SHA256SUMS.sig, the key's SSH signature over SHA256SUMS.
    Exits 4 (after writing the pack, which says so) when the audit chain does not verify."""
    from userctl.apply.reads import evidence_command
    from userctl.apply.signing import EVIDENCE_NAMESPACE
    from userctl.cli.audit_keys_cmd import read_checkpoint
    from userctl.clock import utcnow
    from userctl.render.review import evidence_files

    start, end = parse_bound("--since", since, end=False), parse_bound("--until", until, end=True)
    if end <= start:
        raise UsageError(f"--until {until} is not after --since {since}")
    found = evidence_command(
        reading,
        period=(start, end),
        now=lambda: utcnow().replace(microsecond=0),
        public_keys=public_keys,
        kept_file=kept_file,
        read_kept=read_checkpoint,
    )
    org, evidence, key = found.organization, found.evidence, found.key
    files = evidence_files(evidence)
    files[MANIFEST] = manifest(files)
    if key is not None:
        # Over the manifest, which lists every other file's sum: one signature seals the pack.
        files[SIGNATURE] = key.sign(files[MANIFEST].encode("utf-8"), EVIDENCE_NAMESPACE)
    write_pack("-o", out, files, force=force)
    say(
        f"{org.slug}: evidence for {since} to {until} written to {out} "
        f"({len(files)} files; open index.html)"
    )
    if not evidence["verification"]["ok"]:
        raise AuditChainBroken(
            f"the audit chain of {org.slug} does not verify: the pack records "
            "this (audit-log.json, index.html)"
        )
