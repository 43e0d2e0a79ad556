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
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    metavar="FILE",
    help="An OpenSSH Ed25519 public key (FILE.pub of `audit keygen`); repeat it for rotated keys. "
    "Every signed checkpoint is then checked against the chain.",
)
@click.option(
    "--checkpoint",
    "kept_file",
    metavar="FILE",
    help="A checkpoint kept outside the database (`audit checkpoints --format json`, its last "
    "one is used): it must still be in the database and match the chain. Needs --public-key.",
)
@result_format_option("audit-verify.schema.json")
def verify(head: str | None, public_keys: tuple[str, ...], kept_file: str | None, fmt: str) -> None:
    """Recompute the hash chain (and HMACs when USERCTL_AUDIT_KEY is set). Exits 0 when it is
    intact (with --head: and the recorded head is one of its events, saying how many came
    after it; with --public-key: and every signed checkpoint matches it, counting the events
    not yet signed), 4 naming the first altered, missing or reordered event (or a --head that
    is no event of the chain, or a checkpoint that is forged, replayed, missing or no longer
    matches), 1 when it could not be checked (no database, unknown organization, bad --head,
    unreadable key or checkpoint file)."""
    from userctl.apply import audit as trail
    from userctl.apply import checkpoints as signed_heads
    from userctl.apply.signing import load_public_keys
    from userctl.render import results

    expected = _parse_head(head) if head is not None else None
    if kept_file is not None and not public_keys:
        raise UsageError("--checkpoint needs --public-key: a checkpoint is checked by its key")
    keys = load_public_keys(list(public_keys)) if public_keys else None
    kept = read_checkpoint(kept_file) if kept_file is not None else None
    signed = None
    with reading() as (conn, org_id, org):
        result = trail.verify_chain(conn, org_id, expected)
        if keys is not None and result.ok:
            signed = signed_heads.verify_checkpoints(conn, org_id, result.events, keys, kept)
    problem = result.problem if not result.ok else (signed.problem if signed else None)
    if fmt == "json":
        click.echo(
            results.document(
                results.chain_verification(
                    organization=org.slug,
                    events=result.events,
                    head=result.head,
                    expected_head=expected,
                    hmac_checked=result.hmac_checked,
                    problem=problem,
                    bad_seq=result.bad_seq,
                    bad_id=result.bad_id,
                    after_head=result.after_head if result.ok else None,
                    signed=None if signed is None else signed_heads.signed_data(signed),
                )
            ),
            nl=False,
        )
    if problem is not None:
        raise AuditChainBroken(f"audit chain of {org.slug} is broken: {problem}")
    if not result.hmac_checked and signed is None:
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
        if signed is not None:
            click.echo(
                f"signed: {signed.checkpoints} checkpoint(s) verified, events up to "
                f"#{signed.signed_seq} signed; {signed.unsigned} event(s) not yet signed"
            )


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


@audit.command("checkpoints")
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

    since_at = _parse_since(since) if since is not None else None
    with reading() as (conn, org_id, _org):
        found = list_checkpoints(conn, org_id, since=since_at)
    if last:
        found = found[-1:]
    if fmt == "json":
        click.echo(json_text([c.as_data() for c in found]), nl=False)
        return
    for c in found:
        click.echo(f"{c.time}  #{c.seq}  {c.head}  {c.key_id}")


@audit.command("keygen")
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
    click.echo(f"private key: {out} (keep it secret; USERCTL_AUDIT_SIGNING_KEY={out})")
    click.echo(f"public key: {public_path} ({fingerprint}): give it to the auditors")


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
