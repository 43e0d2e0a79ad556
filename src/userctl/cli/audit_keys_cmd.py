"""`userctl audit checkpoints` and `audit keygen`: the signed checkpoints of the audit chain and
the key pair that signs them; and reading a checkpoint an auditor kept (`audit verify
--checkpoint`, `evidence`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from userctl.cli.context import reading
from userctl.cli.messages import say
from userctl.clock import parse_utc
from userctl.errors import UsageError
from userctl.printable import json_text


def read_checkpoint(path: str) -> Any:
    """The checkpoint an auditor kept (--checkpoint FILE); a bad file is a usage error."""
    import json

    from userctl.apply.checkpoints import from_data
    from userctl.desired.reader import read_bounded

    text = read_bounded(
        path,
        1 << 20,
        what="checkpoint file",
        advice="pass the output of `audit checkpoints --last --format json`",
    )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    try:
        return from_data(data)
    except ValueError as exc:
        raise UsageError(f"--checkpoint {path}: {exc}") from None


@click.command("checkpoints")
@click.option(
    "--since",
    metavar="ISO-DATE",
    help="Only checkpoints written at or after this UTC date/time.",
)
@click.option("--last", is_flag=True, help="Only the last checkpoint (what an auditor keeps).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: schemas/audit-checkpoints.schema.json.",
)
def checkpoints(since: str | None, last: bool, fmt: str) -> None:
    """The signed checkpoints, oldest first: keep them outside the database (verify them with
    `audit verify --public-key --checkpoint FILE`)."""
    from userctl.apply.checkpoints import list_checkpoints

    since_at = parse_since(since) if since is not None else None
    with reading() as (conn, org_id, _org):
        found = list_checkpoints(conn, org_id, since=since_at)
    if last:
        found = found[-1:]
    if fmt == "json":
        click.echo(json_text([c.as_data() for c in found]), nl=False)
        return
    for c in found:
        say(f"{c.time}  #{c.seq}  {c.head}  {c.key_id}")


@click.command("keygen")
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    metavar="FILE",
    help="The private key file to create (0600); the public key goes to FILE.pub.",
)
def keygen(out: str) -> None:
    """Make an Ed25519 key pair for signed checkpoints: FILE is the private key (OpenSSH format,
    readable by its owner only; point USERCTL_AUDIT_SIGNING_KEY at it), FILE.pub the public key
    auditors keep. Neither file may exist already."""
    import os

    from userctl.apply.signing import generate
    from userctl.cli.outputs import SecretFile, write_file

    public_path = out + ".pub"
    if os.path.lexists(public_path):
        raise UsageError(f"-o {out}: {public_path} exists: name a new file (nothing was written)")
    private = SecretFile.reserve(
        "-o", out, exist_ok=False, command="audit keygen", advice="or name a new file"
    )
    assert private is not None  # exist_ok=False: it raises instead
    secret, public, fingerprint = generate()
    try:
        write_file("-o", public_path, public)
        os.chmod(public_path, 0o644)  # what auditors are given, as ssh-keygen leaves a .pub
    except BaseException:
        private.discard()
        raise
    private.fill(secret)
    say(f"private key: {out} (keep it secret; USERCTL_AUDIT_SIGNING_KEY={out})")
    say(f"public key: {public_path} ({fingerprint}): give it to the auditors")


def parse_since(value: str) -> dt.datetime:
    try:
        return parse_utc(value)
    except ValueError as exc:
        raise UsageError(f"--since {exc}, e.g. 2026-03-01 or 2026-03-01T12:00Z") from None
