"""`apply` and `approve` as one call each for the CLI: plan -> check -> confirm -> code -> write
-> checkpoint (-> invitations), built from the steps of apply/run.py. What only a terminal can do
(show the plan and ask to go on, read a code at a hidden prompt, draw a progress bar) is handed in
as plain callables, so the order of the steps, and what is read and written between the asking,
lives here once and the command module only parses and renders (tests/cli/test_thin_cli.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

from userctl import clock
from userctl.apply import run
from userctl.apply.given import GivenCode
from userctl.apply.transaction import ApplyResult, ApproveResult
from userctl.plan import Plan

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from userctl.apply.bootstrap import InitResult
    from userctl.apply.outbox import Letterhead, SendReport
    from userctl.state import DesiredState

T = TypeVar("T")


class CodeRunner(Protocol):
    """How the terminal supplies the TOTP code (cli/code_prompt.with_code): calls `attempt` with
    a GivenCode, which holds the moment the code was read, once or again after a typo.
    `could_confirm` says whether prompting for a code could confirm the write at all (looked up
    only when the runner would prompt: it reads the database)."""

    def __call__(self, attempt: Callable[[GivenCode], T], could_confirm: Callable[[], bool]) -> T:
        """The result of the attempt that was not rejected."""
        ...


# A context manager yielding the progress callback (or None) for this many changes.
ProgressFactory = Callable[[int], AbstractContextManager[Callable[[int], None] | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """What `apply` did: the plan, when it started, and, when it had changes (`result` not None),
    the ApplyResult, the signed checkpoint appended and what became of the invitations."""

    plan: Plan
    started: dt.datetime
    result: ApplyResult | None
    checkpoint: dict[str, Any] | None = None
    delivery: run.Delivery | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Approved:
    """What `approve` recorded: the plan approved, the approval, the signed checkpoint."""

    plan: Plan
    approval: ApproveResult
    checkpoint: dict[str, Any] | None


def invited(plan: Plan) -> int:
    """How many invitations applying `plan` queues: every user the executor creates (a replace
    too) is invited."""
    return sum(
        1 for c in plan.active_changes if c.kind == "user" and c.action in ("create", "replace")
    )


def apply_command(
    engine: Callable[[], "Engine"],
    source: run.Source,
    *,
    lock_timeout_s: float,
    letterhead: Callable[[str | None], "Letterhead"],
    confirm: Callable[[Plan], None],
    with_code: CodeRunner,
    progress: ProgressFactory,
) -> Applied:
    """`userctl apply`: the plan `source` names; nothing more when it has no changes; else the
    letterhead (`letterhead(note)`, `note` naming the invitations to send, refused before anything
    is written when they could not be), `confirm(plan)` (which aborts by raising), one apply per
    code `with_code` supplies, the checkpoint, and the invitations delivered after commit."""
    from userctl.apply import checkpoint_shown
    from userctl.apply.transaction import code_can_confirm

    smtp = run.smtp_target()
    db = engine()
    started = clock.utcnow()
    # Held, not kept in a variable here: applying lets go of the saved changes while it
    # re-derives them, and the holder then holds the plan applied (replan.HeldPlan).
    held = run.held(run.plan_to_apply(db, source, started), source.plan_file)
    if not held.plan.active_changes:
        return Applied(plan=held.plan, started=started, result=None)
    count = invited(held.plan)
    letter = letterhead(f"{count} invitation(s)" if smtp and count else None)
    confirm(held.plan)
    operator = source.operator or ""

    def attempt(given: GivenCode) -> ApplyResult:
        with progress(len(held.plan.active_changes)) as bar:
            return run.apply_now(
                db,
                held,
                operator,
                given,
                allow_mass_removal=source.allow_mass_removal,
                lock_timeout_s=lock_timeout_s,
                progress=bar,
            )

    result = with_code(
        attempt,
        lambda: (
            held.plan.requires_2fa and code_can_confirm(db, held.plan, operator, clock.utcnow())
        ),
    )
    signed = checkpoint_shown.written(db, held.plan.organization, result.audit_head)
    return Applied(
        plan=held.plan,
        started=started,
        result=result,
        checkpoint=signed,
        delivery=run.deliver_invitations(db, smtp, letter, result),
    )


def approve_command(
    engine: "Engine",
    plan_file: str,
    *,
    organization: str | None,
    max_age_days: float,
    operator: str,
    valid_for: dt.timedelta,
    lock_timeout_s: float,
    show: Callable[[Plan], None],
    confirm: Callable[[Plan], None],
    with_code: CodeRunner,
) -> Approved:
    """`userctl approve`: the saved plan read and checked, `show(plan)` (an approver never signs
    blind), `confirm(plan)` (which aborts by raising), the approval recorded with the code
    `with_code` supplies, and the checkpoint it appended."""
    from userctl.apply import checkpoint_shown
    from userctl.db.migrate import require_current

    require_current(engine)
    # Held, as by apply_command: approving re-derives the plan too.
    held = run.held(
        run.read_saved_plan(plan_file, organization, clock.utcnow(), max_age_days), plan_file
    )
    show(held.plan)
    confirm(held.plan)
    done = with_code(
        lambda given: run.approve_now(
            engine, held, operator, given, valid_for=valid_for, lock_timeout_s=lock_timeout_s
        ),
        lambda: True,
    )
    signed = checkpoint_shown.written(engine, held.plan.organization, done.audit_head)
    return Approved(plan=held.plan, approval=done, checkpoint=signed)


def send_invitations(
    engine: "Engine", smtp_url: str, organization: str | None, letter: "Letterhead"
) -> "SendReport":
    """`userctl notifications send`: the queued invitations of `organization` (its slug; None:
    every organization's) delivered to `smtp_url`."""
    from userctl.apply import outbox
    from userctl.apply.reads import organization_id
    from userctl.db.reading import reading_database

    with reading_database(engine) as conn:
        org_id = organization_id(conn, organization)
    return outbox.send_queued(engine, smtp_url, clock.utcnow(), org_id, letterhead=letter)


def resend_command(
    engine: Callable[[], "Engine"],
    organization: str | None,
    email: str,
    operator: str,
    *,
    lock_timeout_s: float,
    letter: "Letterhead",
    code_given: Callable[[], None],
    with_code: CodeRunner,
    queued: Callable[[str, dict[str, Any] | None], None],
) -> "SendReport | None":
    """`userctl notifications resend`: the SMTP URL parsed and `code_given()` (which raises when
    no code can be had) before anything is read, the invitation re-queued with the code
    `with_code` supplies, `queued(slug, checkpoint)` told (the signed checkpoint the write
    appended, None without a signing key), and, when an SMTP server is set, the outbox sent (its
    report; None without a server)."""
    from userctl.apply import checkpoint_shown, outbox
    from userctl.apply.resend import resend_invitation
    from userctl.db.reading import reading

    smtp_url = os.environ.get(outbox.ENV_SMTP_URL)
    target = outbox.parse_smtp_url(smtp_url) if smtp_url else None
    code_given()
    db = engine()  # made only now: a refusal above is said first, as before any database
    with reading(db, organization) as (_conn, org_id, org):
        slug = org.slug
    head = with_code(
        lambda given: resend_invitation(
            db,
            slug,
            email,
            operator,
            given.code or "",
            now=clock.utcnow(),
            lock_timeout_s=lock_timeout_s,
            code_read_at=given.read_at,
        ),
        lambda: True,
    )
    queued(slug, checkpoint_shown.written(db, slug, head))
    if target is None:
        return None
    return outbox.send_queued(db, target, clock.utcnow(), org_id, letterhead=letter)


class SecretSlot(Protocol):
    """Where init's --secret-file puts the admin's secret (cli/outputs.SecretFile): reserved,
    empty and private, before anything is created; filled once, or discarded when nothing was."""

    def fill(self, text: str) -> None:
        """Write the secret document."""
        ...

    def discard(self) -> None:
        """Remove the still empty file."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Initialised:
    """What `init` did: the desired state loaded, and the new organization (None when it already
    existed with this admin and `exist_ok`: nothing changed) with its --json document."""

    desired: "DesiredState"
    result: "InitResult | None"
    document: str | None
    # The signed checkpoint init's write appended (None without a signing key, or when nothing
    # was created).
    checkpoint: dict[str, Any] | None = None


def init_command(
    engine: Callable[[], "Engine"],
    path: str,
    *,
    organization: str | None,
    admin_email: str,
    with_demo: bool,
    exist_ok: bool,
    secret_file: str | None,
    reserve: Callable[[], SecretSlot | None],
) -> Initialised:
    """`userctl init`: the desired file loaded and checked against `organization` (--organization),
    the secret file reserved (`reserve`, None without --secret-file, or when an existing one is
    kept under --exist-ok), the organization initialised, and the reserved file filled with the
    --json document, or discarded when nothing was created or initialising failed."""
    from userctl.apply import checkpoint_shown
    from userctl.apply.bootstrap import initialise
    from userctl.desired.loader import load_desired
    from userctl.errors import UsageError

    desired = load_desired(path)
    if organization is not None and organization != desired.organization:
        raise UsageError(
            f"--organization {organization} does not match {path}, which "
            f"declares {desired.organization!r}"
        )
    reserved = reserve()
    try:
        db = engine()
        result = initialise(
            db,
            desired,
            admin_email,
            source=path,
            with_demo=with_demo,
            exist_ok=exist_ok,
            kept_secret_file=secret_file if reserved is None else None,
        )
    except BaseException:
        if reserved is not None:
            reserved.discard()
        raise
    if result is None:
        if reserved is not None:
            reserved.discard()
        return Initialised(desired=desired, result=None, document=None)
    try:
        signed = checkpoint_shown.written(db, result.organization, result.audit_head)
    except BaseException:
        # The organization exists now: its admin's secret must not be lost to a failed read-back.
        if reserved is not None:
            reserved.fill(json.dumps(result.to_data() | {"checkpoint": None}, indent=2) + "\n")
        raise
    document = json.dumps(result.to_data() | {"checkpoint": signed}, indent=2)
    if reserved is not None:
        reserved.fill(document + "\n")
    return Initialised(desired=desired, result=result, document=document, checkpoint=signed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attested:
    """What `review attest` recorded: the organization's slug, the report attested, the audit
    chain head of the attestation, and the signed checkpoint appended (None without one)."""

    organization: str
    report: Any
    head: str
    checkpoint: dict[str, Any] | None


def attest_command(
    engine: Callable[[], "Engine"],
    organization: str | None,
    path: str,
    *,
    reviewer: str,
    note: str | None,
    lock_timeout_s: float,
    with_code: CodeRunner,
    recorded: Callable[[str, Any, str], None],
) -> Attested:
    """`userctl review attest`: the saved report read, the organization chosen, the attestation
    recorded with the code `with_code` supplies (reviews.attest), `recorded(slug, report, head)`
    told, then the signed checkpoint appended by the write read back."""
    from userctl.apply import checkpoint_shown
    from userctl.apply.reviews import attest, read_report_file
    from userctl.db.reading import reading

    data = read_report_file(path)
    db = engine()
    with reading(db, organization) as (_conn, _org_id, org):
        slug = org.slug
    head = with_code(
        lambda given: attest(
            db,
            slug,
            data,
            reviewer,
            given.code or "",
            note,
            now=clock.utcnow(),
            lock_timeout_s=lock_timeout_s,
            code_read_at=given.read_at,
        ),
        lambda: True,
    )
    recorded(slug, data, head)
    signed = checkpoint_shown.written(db, slug, head)
    return Attested(organization=slug, report=data, head=head, checkpoint=signed)
