"""`userctl evidence --since DATE --until DATE -o DIR`: the evidence pack of an audit period, as
files an auditor opens without userctl, with a manifest of SHA-256 sums."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import tempfile

import click

from userctl.cli.common import reading
from userctl.clock import parse_utc
from userctl.errors import AuditChainBroken, UsageError

MANIFEST = "SHA256SUMS"


def parse_bound(option: str, value: str, *, end: bool) -> dt.datetime:
    """A period bound as naive UTC: a date is the start of that day, or for --until the start of
    the next one (the day is included)."""
    try:
        return parse_utc(value, day_end=end)
    except ValueError as exc:
        raise UsageError(f"{option} {exc}, e.g. 2026-01-01 or 2026-06-30T18:00Z") from None


def manifest(files: dict[str, str]) -> str:
    """`sha256sum -c` format: one "HASH  NAME" line per file, by name."""
    return "".join(
        f"{hashlib.sha256(text.encode('utf-8')).hexdigest()}  {name}\n"
        for name, text in sorted(files.items())
    )


def write_directory(target: str, files: dict[str, str], force: bool) -> None:
    """Write `files` into `target` so that a reader never sees half a pack: everything goes to a
    new directory beside it, which then takes its place. A non-empty `target` is refused unless
    `force`."""
    target = os.path.abspath(target)
    if os.path.exists(target):
        if not os.path.isdir(target):
            raise UsageError(f"-o {target} exists and is not a directory")
        if os.listdir(target) and not force:
            raise UsageError(
                f"-o {target} is not empty: choose a new directory, or add "
                "--force to replace its contents"
            )
    parent = os.path.dirname(target)
    try:
        staging = tempfile.mkdtemp(dir=parent, prefix=".userctl-evidence-")
    except OSError as exc:
        raise UsageError(f"cannot write into {parent}: {exc.strerror or exc}") from None
    old = None
    try:
        for name, text in files.items():
            with open(os.path.join(staging, name), "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        os.chmod(staging, 0o755)
        if os.path.exists(target):
            old = tempfile.mkdtemp(dir=parent, prefix=".userctl-evidence-old-")
            os.rmdir(old)
            os.rename(target, old)
        os.rename(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not os.path.exists(target):
            os.rename(old, target)  # put the previous contents back
            old = None
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    help="Directory to write (must be empty or absent).",
)
@click.option("--force", is_flag=True, help="Replace the contents of a non-empty DIR.")
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
    write_directory(out, files, force)
    click.echo(
        f"{org.slug}: evidence for {since} to {until} written to {out} "
        f"({len(files)} files; open index.html)"
    )
    if not evidence["verification"]["ok"]:
        raise AuditChainBroken(
            f"the audit chain of {org.slug} does not verify: the pack records "
            "this (audit-log.json, index.html)"
        )
