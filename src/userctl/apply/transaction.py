"""Apply a plan (DESIGN §4): lock → lock the rows it names → preconditions → re-derive (a forged
plan stops here) → authorise → 2FA → guards → execute → outbox → audit → serial → commit.
Everything happens in one transaction; any error rolls all of it back, the audit events included
(a wrong code leaves only its own booking, see `otp.locked_write`). Apply never runs DDL."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterator

from userctl import guards
from userctl.clock import iso_z
from userctl.errors import (
    GuardBlocked,
    LockTimeout,
    NotAuthorized,
    PolicyViolation,
    StalePlan,
    TwoFactorRequired,
    first_few,
)
from userctl.plan import Plan, organization_address, parse_address, required_permissions
from userctl.planner import PlanOptions, policy_findings
from userctl.replan import HeldPlan, check_rederived
from userctl.simulate import apply_changes
from userctl.state import LiveState, fingerprint, given_email

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from userctl.apply import approvals
    from userctl.apply.operators import Operator

from userctl.verification import (
    NOTHING_NEEDED,
    OWN_CODE,
    Confirmed,
    Verification,
)

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyResult:
    applied: int
    verification: Verification
    audit_head: str | None
    serial: int
    organization_id: int
    at: dt.datetime  # the clock's now the apply ran at
    audit_seqs: tuple[int, int] | None = None  # first and last seq of the events it appended
    invited: tuple[str, ...] = ()  # the emails whose invitations it queued

    @property
    def verified_by(self) -> str:
        return self.verification.to_text()

    @property
    def operator_verified(self) -> bool:
        """The applier gave a code of their own."""
        return self.verification.operator_verified

    @property
    def approvers(self) -> tuple[str, ...]:
        """Whose approvals this apply used up."""
        return self.verification.approvers

    @property
    def invitations_queued(self) -> int:
        return len(self.invited)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApproveResult:
    approval_id: int
    approver: str
    expires_at: dt.datetime
    audit_head: str
    at: dt.datetime  # the clock's now the approval was recorded at


def check_preconditions(plan: Plan, live: LiveState) -> None:
    if plan.organization != live.organization.slug:
        raise StalePlan(
            f"the plan is for organization {plan.organization!r}, not {live.organization.slug!r}"
        )
    stale = sorted(
        a for a, expected in plan.preconditions.items() if _fingerprint_of(live, a) != expected
    )
    if stale:
        shown = first_few(stale, 10)
        raise StalePlan(
            f"the plan is stale: {len(stale)} row(s) it touches changed since it was made: "
            f"{shown}. Nothing was written; plan again."
        )


def _fingerprint_of(live: LiveState, address: str) -> str:
    """The hash `address` has in `live`, by the planner's own function; an address that names
    nothing a plan can depend on is "absent"."""
    parsed = parse_address(address)
    return fingerprint(live, *parsed) if parsed is not None else "absent"


def apply_plan(
    engine: "Engine",
    plan: Plan | HeldPlan,
    operator: str,
    *,
    otp_code: str | None,
    allow_mass_removal: bool = False,
    lock_timeout_s: float = 30.0,
    now: dt.datetime,
    code_read_at: dt.datetime | None = None,
    progress: Progress | None = None,
) -> ApplyResult:
    """`code_read_at`: when the command read `otp_code` (default `now`); it is judged then.
    A HeldPlan holds the plan applied once it is (see replan.HeldPlan)."""
    from userctl.apply import otp

    operator = given_email(operator)
    held = plan if isinstance(plan, HeldPlan) else HeldPlan.kept(plan)
    del plan  # the holder's is the one reference kept: re-deriving lets go of its changes
    refuse_blocked(held.plan)
    return otp.locked_write(
        engine,
        held.plan.organization,
        lambda conn, org_id: _apply_locked(
            conn,
            org_id,
            held,
            operator,
            otp_code,
            allow_mass_removal,
            now,
            progress,
            code_read_at or now,
        ),
        now=now,
        lock_timeout_s=lock_timeout_s,
    )


def refuse_blocked(plan: Plan) -> None:
    if plan.blocked:
        raise GuardBlocked(
            "the plan has blocking findings and cannot be applied: "
            + "; ".join(f.message for f in plan.findings if f.blocking)
        )


def approve_plan(
    engine: "Engine",
    plan: Plan | HeldPlan,
    operator: str,
    otp_code: str,
    *,
    now: dt.datetime,
    valid_for: dt.timedelta,
    lock_timeout_s: float = 30.0,
    code_read_at: dt.datetime | None = None,
) -> ApproveResult:
    """Record the operator's TOTP confirmation of this exact plan digest (DESIGN §4), the code
    judged at `code_read_at` (default `now`), when the command read it."""
    from userctl.apply import approvals, audit, otp
    from userctl.apply.operators import load_operator
    from userctl.db.snapshot import read_live_state

    held = plan if isinstance(plan, HeldPlan) else HeldPlan.kept(plan)
    del plan  # the holder's is the one reference kept: re-deriving lets go of its changes
    refuse_blocked(held.plan)
    organization = held.plan.organization

    def approve(conn: "Connection", org_id: int) -> ApproveResult:
        live = read_live_state(conn, organization)
        check_preconditions(held.plan, live)
        check_rederived(held, live, now.date())
        plan = held.plan
        me = load_operator(
            conn, org_id, operator, required_permissions(plan.active_changes), now=now
        )
        otp.verify_operator_code(conn, me.id, otp_code, now, read_at=code_read_at or now)
        row = approvals.record(conn, org_id, plan.digest, me.id, me.email, now, valid_for)
        head = audit.append_events(
            conn,
            org_id,
            [
                audit.AuditRecord(
                    operator=me.email,
                    verified_by=OWN_CODE.to_text(),
                    operator_verified=True,
                    plan_digest=plan.digest,
                    action="plan.approve",
                    address=organization_address(plan.organization),
                    before=None,
                    after={"expires_at": iso_z(row.expires_at)},
                    reason=plan.options.get("reason"),
                )
            ],
            now,
        )
        return ApproveResult(
            approval_id=row.id,
            approver=me.email,
            expires_at=row.expires_at,
            audit_head=head,
            at=now,
        )

    return otp.locked_write(engine, organization, approve, now=now, lock_timeout_s=lock_timeout_s)


def _refuse_blocking_hygiene(
    conn: "Connection", org_id: int, plan: Plan, live: LiveState, now: dt.datetime
) -> None:
    """The hygiene findings a policy makes blocking (a dormant user left active under a declared
    max_inactive_days), judged again on the live rows: a saved plan's findings are outside its
    digest, so a plan whose blocking finding was deleted from the file must not pass here."""
    from userctl import hygiene
    from userctl.db.hygiene import read_hygiene, settings_for

    if not settings_for(conn, org_id).blocking:
        return
    facts, settings = read_hygiene(conn, live, now)
    found = hygiene.with_findings(replace(plan, findings=()), facts, settings, now).findings
    blocking = [f for f in found if f.blocking]
    if blocking:
        raise GuardBlocked(
            f"refused by {plan.organization}'s policies on the current state: "
            + "; ".join(f.message for f in blocking)
            + ". Nothing was written."
        )


def _apply_locked(
    conn: "Connection",
    org_id: int,
    held: HeldPlan,
    operator: str,
    otp_code: str | None,
    allow_mass_removal: bool,
    now: dt.datetime,
    progress: Progress | None,
    code_read_at: dt.datetime,
) -> ApplyResult:
    """Steps 2-4 of DESIGN §4, in the transaction `otp.locked_write` opened with the lock taken."""
    from userctl.apply import audit, outbox
    from userctl.apply.operators import load_operator
    from userctl.db.executor import Executor
    from userctl.db.snapshot import lock_rows, read_live_state

    plan = held.plan
    digest = plan.digest  # a hash over the whole plan: computed once, not once per audit event
    # The rows the preconditions name are locked before they are read: a row the platform
    # is changing is waited for (within --lock-timeout), and its committed value is what the
    # check sees, so apply refuses as stale instead of writing over it, and every audit
    # event's `before` is the row as it was written over.
    with _refusing_held_rows(plan.organization):
        lock_rows(conn, org_id, _touched(plan))
    live = read_live_state(conn, plan.organization)
    check_preconditions(plan, live)
    del plan  # re-deriving lets go of the saved changes; the holder then holds the planner's
    check_rederived(held, live, now.date())
    plan = held.plan
    changes = plan.active_changes
    if not changes:
        return ApplyResult(
            applied=0,
            verification=NOTHING_NEEDED,
            audit_head=None,
            serial=live.organization.serial,
            organization_id=org_id,
            at=now,
        )
    me = load_operator(conn, org_id, operator, required_permissions(changes), now=now)
    confirmed = NOTHING_NEEDED
    if plan.requires_2fa:
        confirmed = _confirm(conn, org_id, plan, me, live, otp_code, now, code_read_at)
    elif otp_code is not None:
        # A code given is checked even where none is needed: dropping it would let a wrong code
        # pass unnoticed, and the audit would say the operator gave none.
        from userctl.apply import otp

        otp.verify_operator_code(conn, me.id, otp_code, now, read_at=code_read_at or now)
        confirmed = OWN_CODE
    executor = Executor(conn, org_id, now)
    options = PlanOptions(
        allow_mass_removal=allow_mass_removal or bool(plan.options.get("allow_mass_removal")),
        operator=operator,
    )
    # The state this plan leaves on the live rows as they are now, judged by the guards and the
    # policies: a change made since planning (a role given a permission, a user added) can make
    # it break one.
    after = apply_changes(live, changes)
    blocking = [f for f in guards.check(live, changes, options, after) if f.blocking]
    if blocking:
        raise GuardBlocked(
            "refused by the guards on the current state: " + "; ".join(f.message for f in blocking)
        )
    reason = plan.options.get("reason")
    violations = [f for f in policy_findings(live, after, reason) if f.blocking]
    if violations:
        raise PolicyViolation(
            f"refused: the result of this plan on the current state of {plan.organization} "
            "would break its policies: "
            + "; ".join(f.message for f in violations)
            + ". Nothing was written."
        )
    _refuse_blocking_hygiene(conn, org_id, plan, live, now)
    refers = {
        c.key[0]: audit.expiry_set_by(conn, org_id, c.key[0])
        for c in changes
        if c.action == "expire"
    }
    with _refusing_held_rows(plan.organization):
        created = executor.run(changes, progress)
    outbox.queue_invitations(conn, org_id, created, now)
    # The states judged above are not needed any more: the audit step's memory is the changes'.
    del live, after
    head = audit.append_events(
        conn,
        org_id,
        (
            audit.AuditRecord(
                operator=operator,
                verified_by=confirmed.to_text(),
                operator_verified=confirmed.operator_verified,
                plan_digest=digest,
                action=f"{c.kind}.{c.action}",
                address=c.address,
                before=c.before,
                after=c.after,
                reason=reason,
                refers_to=refers.get(c.key[0]) if c.action == "expire" else None,
            )
            for c in changes
        ),
        now,
    )
    serial = executor.bump_serial()
    last_seq = audit.tail(conn, org_id)[0]
    return ApplyResult(
        applied=len(changes),
        verification=confirmed,
        audit_head=head,
        serial=serial,
        organization_id=org_id,
        at=now,
        audit_seqs=(last_seq - len(changes) + 1, last_seq),
        invited=tuple(email for email, _ in created),
    )


@contextlib.contextmanager
def _refusing_held_rows(organization: str) -> Iterator[None]:
    """The organization lock keeps other applies out, but the platform may hold a row this plan
    writes; waiting for it longer than --lock-timeout (the backend's lock timeout, set by
    `lock_organization`, covers every statement of the transaction) is the same "locked"
    refusal as the organization lock, not a database error."""
    from sqlalchemy.exc import DBAPIError

    from userctl.db.engine import _is_lock_timeout

    try:
        yield
    except DBAPIError as exc:
        if _is_lock_timeout(exc):
            raise LockTimeout(
                f"a row this plan writes in organization {organization} is locked by another "
                "transaction; nothing was written: retry later or raise --lock-timeout"
            ) from None
        raise


def _touched(plan: Plan) -> dict[str, set[str]]:
    """The keys of the rows the plan's preconditions name, by kind (user, role, bank_account);
    the organization's own row is locked already."""
    touched: dict[str, set[str]] = {"user": set(), "role": set(), "bank_account": set()}
    for address in plan.preconditions:
        parsed = parse_address(address)
        if parsed is not None and parsed[0] in touched:
            touched[parsed[0]].add(parsed[1])
    return touched


def _confirm(
    conn: "Connection",
    org_id: int,
    plan: Plan,
    me: "Operator",
    live: LiveState,
    otp_code: str | None,
    now: dt.datetime,
    code_read_at: dt.datetime,
) -> Verification:
    """2FA for this plan (DESIGN §4). Without four eyes: the applier's own TOTP code, or one
    unexpired approval of this exact digest. Under four eyes, proofs of two people who cannot
    stand in for each other, as `four_eyes.two_people` decides: the applier's code and an
    approval, or two approvals. A named operator without a code proves nothing."""
    from userctl.apply import approvals, otp
    from userctl.apply.four_eyes import Proof, two_people

    four_eyes = live.organization.four_eyes
    own = otp_code is not None
    if otp_code is not None:
        otp.verify_operator_code(conn, me.id, otp_code, now, read_at=code_read_at)
        if not four_eyes:
            return OWN_CODE
    found, void = eligible_approvals(conn, org_id, plan, None, now)
    if not four_eyes and found:
        approvals.mark_used(conn, found[0].id, now)
        return Verification(confirmed=(Confirmed("approval", found[0].approver_email),))
    proofs = ([Proof(me.id, me.email)] if own else []) + [
        Proof(a.approver_id, a.approver_email, a) for a in found
    ]
    pair, passed_over = two_people(conn, org_id, proofs) if four_eyes else (None, [])
    if pair is not None:
        used = [p.approval for p in pair if p.approval is not None]
        for approval in used:
            approvals.mark_used(conn, approval.id, now)
        return Verification(
            confirmed=tuple(
                Confirmed("totp") if p.approval is None else Confirmed("approval", p.email)
                for p in pair
            ),
            operator_verified=own,
        )
    steps = plan.summary()["requires_2fa"]
    if void and not found:
        raise NotAuthorized("the approval of this plan no longer counts: " + "; ".join(void))
    if four_eyes:
        have = ["your own code" if p.approval is None else p.describe() for p in proofs]
        raise TwoFactorRequired(
            f"{steps} step(s) of this plan need 2FA and organization {plan.organization} requires "
            "four eyes: two different people must confirm this exact plan (neither able to act "
            f"as the other), and there is {' and '.join(have) or 'no confirmation'}"
            + (f" ({'; '.join(passed_over)})" if passed_over else "")
            + ". "
            + (
                "Someone else must approve it"
                if own
                else "Give your own --otp-code as well as another operator's approval, or "
                "have two operators approve it"
            )
            + " with `userctl approve PLAN --operator THEIR-EMAIL --otp-code THEIR-CODE`, "
            "then apply it again"
        )
    raise TwoFactorRequired(
        f"{steps} step(s) of this plan need 2FA: give --otp-code (or USERCTL_OTP_CODE), or have "
        "this exact plan approved with `userctl approve PLAN --operator EMAIL --otp-code CODE`"
    )


def eligible_approvals(
    conn: "Connection", org_id: int, plan: Plan, exclude_approver: int | None, now: dt.datetime
) -> "tuple[list[approvals.ApprovalRow], list[str]]":
    """The approvals that still confirm `plan`, oldest first, one per approver (and none by
    `exclude_approver`), and why each approval passed over no longer counts. The one rule used
    both by apply itself and by the CLI when deciding whether to ask for a code."""
    from userctl.apply import approvals
    from userctl.apply.operators import load_operator

    found: list[approvals.ApprovalRow] = []
    void: list[str] = []
    for approval in approvals.candidates(
        conn, org_id, plan.digest, now, exclude_approver=exclude_approver
    ):
        if any(a.approver_id == approval.approver_id for a in found):
            continue
        # An approval counts only while its approver could still confirm this plan themselves:
        # deactivating or demoting someone must also withdraw what they approved.
        try:
            approver = load_operator(
                conn,
                org_id,
                approval.approver_email,
                required_permissions(plan.active_changes),
                now=now,
            )
        except NotAuthorized as exc:
            void.append(str(exc))
            continue
        if approver.id != approval.approver_id:
            void.append(f"{approval.approver_email} was deleted and re-created since approving")
            continue
        found.append(approval)
    return found, void


def code_can_confirm(engine: "Engine", plan: Plan, operator: str, now: dt.datetime) -> bool:
    """Whether asking `operator` for a TOTP code could confirm `plan`: not when approvals already
    confirm it, not under four eyes unless someone else has approved, and not when apply will
    refuse the operator anyway. A read-only look: apply decides again under its lock."""
    from sqlalchemy import select

    from userctl.apply.four_eyes import Proof, two_people
    from userctl.apply.operators import load_operator
    from userctl.db.engine import begin_read
    from userctl.db.models import Organization

    with begin_read(engine) as conn:
        org = conn.execute(
            select(Organization.id, Organization.four_eyes).where(
                Organization.slug == plan.organization
            )
        ).first()
        if org is None:
            return False
        try:
            me = load_operator(
                conn, int(org.id), operator, required_permissions(plan.active_changes), now=now
            )
        except NotAuthorized:
            return False
        found, _ = eligible_approvals(conn, int(org.id), plan, None, now)
        if not org.four_eyes:
            return not found
        # Under four eyes a code helps only when it pairs with someone's approval, and is not
        # needed when the approvals already pair up: the same rule apply uses.
        approved = [Proof(a.approver_id, a.approver_email, a) for a in found]
        if two_people(conn, int(org.id), approved)[0] is not None:
            return False
        return two_people(conn, int(org.id), [Proof(me.id, me.email), *approved])[0] is not None
