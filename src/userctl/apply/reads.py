"""What the read-only commands that need the apply layer read (the audit chain, its signed
checkpoints, the reviews, the outbox): one function per command, run in the read-only
transaction the CLI opens (cli/context.reading). A command composes no reads of its own
(tests/cli/test_thin_cli.py): how a chain and its checkpoints are judged together, or what an
evidence pack holds, is stated here once."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy.engine import Connection

    from userctl.apply.checkpoints import Checkpoint, SignedResult
    from userctl.apply.signing import SigningKey
    from userctl.chain import VerifyResult
    from userctl.hygiene import ReviewSettings
    from userctl.review import ReviewStatus
    from userctl.state import Organization

# The read-only snapshot of the chosen organization the CLI opens (cli/context.reading), handed
# in so that what is checked before it opens (option files, keys) is checked first, as before.
Reading = Callable[[], AbstractContextManager["tuple[Connection, int, Organization]"]]


def verified_chain(
    conn: "Connection",
    org_id: int,
    expected: str | None,
    keys: "dict[str, Ed25519PublicKey] | None",
    kept: "Checkpoint | None",
) -> "tuple[VerifyResult, SignedResult | None]":
    """`audit verify`: the chain recomputed (with `expected`, a head recorded earlier), then,
    given `keys` and only on an intact chain, every signed checkpoint (and `kept`) against it."""
    from userctl.apply.audit import verify_chain
    from userctl.apply.checkpoints import verify_checkpoints

    result = verify_chain(conn, org_id, expected)
    if keys is None or not result.ok:
        return result, None
    return result, verify_checkpoints(conn, org_id, result.events, keys, kept)


def intact_chain(
    url: str, organization: str | None, expected: str | None, connect_timeout: int | None
) -> "tuple[str, VerifyResult] | None":
    """`audit verify` without keys, on the raw driver (db/thin.py): the organization's slug and
    the result when the chain is intact (and `expected`, given, is one of its events). None
    otherwise, or where that path declines: `verified_chain` then reads it through SQLAlchemy
    and words what is wrong, so that this path never imports SQLAlchemy and has no words of its
    own."""
    from userctl.chain import audit_key, verified
    from userctl.db.thin import scan_chain

    key = audit_key()
    wanted = None if expected is None else expected.strip().lower()
    found = scan_chain(url, organization, wanted, key, connect_timeout)
    if found is None or found[1].bad is not None:
        return None
    slug, scanned = found
    result = verified(scanned.events, scanned.last, key, wanted, scanned.head_seq)
    return (slug, result) if result.ok else None


def sealed_evidence(
    conn: "Connection",
    org_id: int,
    org: Organization,
    period: tuple[dt.datetime, dt.datetime],
    now: dt.datetime,
    key: "SigningKey | None",
    keys: "dict[str, Ed25519PublicKey]",
    kept: "Checkpoint | None",
) -> dict[str, Any]:
    """`evidence`: the period's evidence (`reviews.read_evidence`); with a signing `key`, also
    every checkpoint verified against the chain (by `keys` and the key's own public key) and the
    checkpoints written in the period. A broken chain is the first problem; the checkpoints are
    judged on an intact one."""
    from userctl.apply.checkpoints import evidence_seal, signed_data
    from userctl.apply.reviews import read_evidence

    start, end = period
    evidence = read_evidence(conn, org_id, org, start, end, now)
    if key is None:
        return evidence
    trusted = {**keys, key.key_id: key.private.public_key()}
    verification = evidence["verification"]
    signed, written = evidence_seal(conn, org_id, verification["events"], trusted, kept, start, end)
    if verification["ok"] and not signed.ok:
        verification.update(ok=False, problem=signed.problem)
    verification["signed"] = signed_data(signed) if verification["ok"] else None
    evidence["checkpoints"] = {
        "key_id": key.key_id,
        "public_key": key.public_line().strip(),
        "checkpoints": [c.as_data() for c in written],
    }
    return evidence


def review_status(
    conn: "Connection", org_id: int, now: dt.datetime
) -> "tuple[ReviewSettings, ReviewStatus]":
    """`review status`: the organization's review settings, and when the last attested review
    was, judged against them at `now`."""
    from userctl import review
    from userctl.apply.audit import list_events
    from userctl.db.hygiene import settings_for

    settings = settings_for(conn, org_id)
    return settings, review.review_status(list_events(conn, org_id), settings, now)


def outbox_listing(
    conn: "Connection", organization: str | None, status: str | None
) -> list[dict[str, Any]]:
    """`notifications list`: the outbox of `organization` (None: of every organization)."""
    from userctl.apply.outbox import list_notifications

    return list_notifications(conn, organization_id(conn, organization), status)


def organization_id(conn: "Connection", organization: str | None) -> int | None:
    """The id of `organization` (NotFound when absent); None, meaning every organization, when
    none is named (the outbox commands' default)."""
    from userctl.db.snapshot import read_organization

    return None if organization is None else read_organization(conn, organization)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Exported:
    """`userctl export`'s document and what to say about it: the desired-state text, the warnings
    about what it cannot carry, and how many roles and users it holds."""

    text: str
    warnings: tuple[str, ...]
    roles: int
    users: int


def exported(conn: "Connection", organization: str, schema: str | None) -> Exported:
    """The live `organization` as desired-state YAML whose modeline points at `schema` (default:
    the schema file beside it), refused as a whole (desired.export.checked_export) when it would
    not load: no partial file, no file that will not load."""
    from userctl.db.snapshot import read_live_state
    from userctl.desired.export import SCHEMA_PATH, checked_export, warnings

    live = read_live_state(conn, organization)
    return Exported(
        text=checked_export(live, schema or SCHEMA_PATH),
        warnings=tuple(warnings(live)),
        roles=len(live.roles),
        users=len(live.users),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainVerified:
    """What `audit verify` found: the organization, the chain recomputed, the signed checkpoints
    judged (None without keys, or on a broken chain), and the first problem of either."""

    organization: str  # its slug
    result: "VerifyResult"
    signed: "SignedResult | None"
    signed_data: dict[str, Any] | None
    problem: str | None


def audit_verify_command(
    reading: Reading,
    *,
    expected: str | None,
    public_keys: Sequence[str],
    kept_file: str | None,
    read_kept: "Callable[[str], Checkpoint]",
    database: tuple[str, str | None, int | None],
) -> ChainVerified:
    """`audit verify` as one call: the public keys loaded, the kept checkpoint read (the CLI's
    `read_kept`), then the chain and its checkpoints judged in one snapshot (verified_chain).
    Without keys, an intact chain is first read on the raw driver (`intact_chain`, from
    `database`: the URL, the organization asked for, the connect timeout); anything else, and
    whatever that path declines, through SQLAlchemy, which words what is wrong."""
    keys = None
    if public_keys:
        # Imported only here: cryptography is no part of verifying without keys.
        from userctl.apply.signing import load_public_keys

        keys = load_public_keys(list(public_keys))
    kept = read_kept(kept_file) if kept_file is not None else None
    quick = None if keys else intact_chain(*database[:2], expected, database[2])
    if quick is not None:
        slug, result = quick
        return ChainVerified(
            organization=slug, result=result, signed=None, signed_data=None, problem=None
        )
    # Imported only here: the checkpoints (and SQLAlchemy with them) are not the intact path's.
    from userctl.apply.checkpoints import signed_data

    with reading() as (conn, org_id, org):
        result, signed = verified_chain(conn, org_id, expected, keys, kept)
    problem = result.problem if not result.ok else (signed.problem if signed else None)
    return ChainVerified(
        organization=org.slug,
        result=result,
        signed=signed,
        signed_data=None if signed is None else signed_data(signed),
        problem=problem,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What `evidence` read: the organization, the period's evidence (sealed_evidence) and the
    signing key that seals the pack (None when USERCTL_AUDIT_SIGNING_KEY is unset)."""

    organization: Organization
    evidence: dict[str, Any]
    key: "SigningKey | None"


def evidence_command(
    reading: Reading,
    *,
    period: tuple[dt.datetime, dt.datetime],
    now: Callable[[], dt.datetime],
    public_keys: Sequence[str],
    kept_file: str | None,
    read_kept: "Callable[[str], Checkpoint]",
) -> Evidence:
    """`evidence` as one call: the signing key (extra keys or a kept checkpoint without it are a
    usage error), the public keys loaded, the kept checkpoint read, then sealed_evidence."""
    from userctl.apply.signing import load_public_keys, signing_key
    from userctl.errors import UsageError

    key = signing_key()
    if key is None and (public_keys or kept_file):
        raise UsageError(
            "--public-key and --checkpoint need USERCTL_AUDIT_SIGNING_KEY: the pack is signed "
            "with it"
        )
    keys = load_public_keys(list(public_keys)) if public_keys else {}
    kept = read_kept(kept_file) if kept_file is not None else None
    at = now()
    with reading() as (conn, org_id, org):
        evidence = sealed_evidence(conn, org_id, org, period, at, key, keys, kept)
    return Evidence(organization=org, evidence=evidence, key=key)


def review_report_command(
    reading: Reading, source: str | None, now: Callable[[], dt.datetime]
) -> Any:
    """`review`: the saved report `source` (refused when its digest or shape does not hold), or,
    without one, the access review read now from the database (reviews.read_report)."""
    from userctl import review as core
    from userctl.apply.reviews import read_report, read_report_file
    from userctl.errors import Refused

    if source is not None:
        data = read_report_file(source)
        problem = core.report_problem(
            data, str(data.get("organization")) if isinstance(data, dict) else ""
        )
        if problem is not None:
            raise Refused(f"{source}: {problem}")
        return data
    with reading() as (conn, org_id, org):
        return read_report(conn, org_id, org, now())
