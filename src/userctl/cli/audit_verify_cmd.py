"""`userctl audit verify`: the hash chain recomputed (with the HMACs, the signed checkpoints and a
head or checkpoint an auditor kept, when given); exit 4 when it is broken."""

from __future__ import annotations

import re

import click

from userctl.cli.audit_keys_cmd import read_checkpoint
from userctl.cli.context import app, reading
from userctl.cli.flags import result_format_option
from userctl.cli.messages import say
from userctl.errors import AuditChainBroken, UsageError


@click.command("verify")
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
    from userctl.apply.reads import audit_verify_command
    from userctl.chain import ENV_KEY
    from userctl.render import results

    ctx = app()
    expected = _parse_head(head) if head is not None else None
    if kept_file is not None and not public_keys:
        raise UsageError("--checkpoint needs --public-key: a checkpoint is checked by its key")
    found = audit_verify_command(
        reading,
        expected=expected,
        public_keys=public_keys,
        kept_file=kept_file,
        read_kept=read_checkpoint,
        database=(ctx.database_url, ctx.organization, ctx.connect_timeout),
    )
    slug, result, signed, problem = found.organization, found.result, found.signed, found.problem
    if fmt == "json":
        click.echo(
            results.document(
                results.chain_verification(
                    organization=slug,
                    events=result.events,
                    head=result.head,
                    expected_head=expected,
                    hmac_checked=result.hmac_checked,
                    problem=problem,
                    bad_seq=result.bad_seq,
                    bad_id=result.bad_id,
                    after_head=result.after_head if result.ok else None,
                    signed=found.signed_data,
                )
            ),
            nl=False,
        )
    if problem is not None:
        raise AuditChainBroken(f"audit chain of {slug} is broken: {problem}")
    if not result.hmac_checked and signed is None:
        say(
            f"note: HMACs not checked ({ENV_KEY} is not set); a rebuilt chain would pass",
            err=True,
        )
    if fmt == "text":
        say(f"audit chain intact: {result.events} events, head {result.head}")
        if expected is not None:
            say(
                f"recorded head {expected} is in the chain; "
                f"{result.after_head} event(s) were appended after it"
            )
        if signed is not None:
            say(
                f"signed: {signed.checkpoints} checkpoint(s) verified, events up to "
                f"#{signed.signed_seq} signed; {signed.unsigned} event(s) not yet signed"
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
