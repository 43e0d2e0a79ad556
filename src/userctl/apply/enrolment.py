"""Enrolling a user's authenticator (DESIGN §5 `mfa enroll`): a new TOTP secret for an active
user, confirmed by ANOTHER admin's own TOTP code, audited without the secret. Whoever can
replace an operator's authenticator can act as that operator, hence:

- the confirmer is recorded as who enrolled the user (`enrolled_by` in the audit event), which
  `four_eyes.two_people` reads: the two can never be each other's second proof;
- a re-key voids the re-keyed operator's unused approvals (made with the old authenticator);
- under four eyes, re-keying an operator already enrolled with userctl needs a second confirmer
  who is a different person from the first (the same rule as a plan's two proofs). Enrolling
  someone never enrolled stays a one-person step: there is no authenticator to take over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, select, update

from userctl.apply import otp
from userctl.apply.audit import AuditRecord, append_events
from userctl.apply.four_eyes import ENROL_ACTION, Proof, two_people
from userctl.apply.operators import Operator, load_operator
from userctl.clock import naive_utc
from userctl.db.identity import user_row
from userctl.db.models import Approval, Organization, TotpSecret, User
from userctl.errors import NotAuthorized, NotFound, TwoFactorRequired, UsageError
from userctl.plan import user_address
from userctl.state import given_email
from userctl.verification import Confirmed, Verification

CONFIRMER_NEEDS = frozenset({"users.manage"})


@dataclass(frozen=True, slots=True)
class Enrolment:
    organization: str
    email: str
    secret: str = field(repr=False)  # shown once to the user, never logged
    otpauth_uri: str = field(repr=False)
    audit_head: str
    second_confirmer: str | None = None


@dataclass(frozen=True, slots=True)
class SecondConfirmer:
    """The second person of a re-key under four eyes, with their own code."""

    email: str
    code: str = field(repr=False)
    read_at: dt.datetime | None = None  # when the command read `code`; None: at the check


def enrolment_record(enrolled_by: str, **extra: object) -> dict[str, object]:
    """The `after` of every enrolment's audit event (init, mfa enroll): who enrolled whom."""
    return {"totp_enrolled": True, "enrolled_by": enrolled_by, **extra}


def enroll_user(
    engine: Engine,
    organization: str,
    email: str,
    operator: str,
    code: str,
    *,
    now: dt.datetime,
    lock_timeout_s: float = 30.0,
    second: SecondConfirmer | None = None,
    code_read_at: dt.datetime | None = None,
) -> Enrolment:
    """Give `email` (an active user of `organization`) a new authenticator secret, confirmed by
    `operator` with `code` (and by `second` when four eyes requires it). The previous secret
    stops working. One transaction, under the organization lock; a wrong code is booked towards
    its operator's lockout. `code` is judged at `code_read_at` (default `now`), when the command
    read it; the second code at its own `read_at`."""
    email, operator = given_email(email), given_email(operator)
    second_email = given_email(second.email) if second else None
    for who in (operator, second_email):
        if who == email:
            raise NotAuthorized(
                f"{who} cannot confirm the enrolment of their own authenticator: "
                "another admin with users.manage must run `userctl mfa enroll` for them"
            )

    def enroll(conn: Connection, org_id: int) -> tuple[str, str]:
        confirmer = load_operator(conn, org_id, operator, CONFIRMER_NEEDS, now=now)
        target = user_row(conn, org_id, email, User.id, User.status, User.totp_enrolled)
        if target is None:
            raise NotFound(f"user {email} does not exist in organization {organization}")
        if target.status != "active":
            raise UsageError(
                f"user {email} is {target.status}: only active users are enrolled with "
                "userctl (invited users enrol when they finish registration; "
                "reactivate an inactive user first)"
            )
        rekey = (
            conn.execute(select(TotpSecret.user_id).where(TotpSecret.user_id == target.id)).first()
            is not None
        )
        other = _second_confirmer(conn, org_id, confirmer, second, rekey, email, now)
        otp.verify_operator_code(conn, confirmer.id, code, now, read_at=code_read_at or now)
        if other is not None and second is not None:
            otp.verify_operator_code(
                conn, other.id, second.code, now, read_at=second.read_at or now
            )
        voided = _void_approvals(conn, int(target.id), now) if rekey else 0
        secret = otp.enroll(conn, int(target.id))
        extra: dict[str, object] = {}
        if other is not None:
            extra["second_confirmer"] = other.email
        if voided:
            extra["approvals_voided"] = voided
        head = append_events(
            conn,
            org_id,
            [
                AuditRecord(
                    operator=confirmer.email,
                    verified_by=Verification(
                        confirmed=(Confirmed("totp"),)
                        + (() if other is None else (Confirmed("totp", other.email),)),
                        operator_verified=True,
                    ).to_text(),
                    operator_verified=True,
                    action=ENROL_ACTION,
                    address=user_address(email),
                    before={"totp_enrolled": bool(target.totp_enrolled)},
                    after=enrolment_record(confirmer.email, **extra),
                )
            ],
            now,
        )
        return secret, head

    secret, head = otp.locked_write(
        engine, organization, enroll, now=now, lock_timeout_s=lock_timeout_s
    )
    return Enrolment(
        organization,
        email,
        secret,
        otp.provisioning_uri(secret, email, organization),
        head,
        second_email,
    )


def _second_confirmer(
    conn: Connection,
    org_id: int,
    confirmer: Operator,
    second: SecondConfirmer | None,
    rekey: bool,
    email: str,
    now: dt.datetime,
) -> Operator | None:
    """The second confirmer a re-key under four eyes needs (checked by the one four-eyes rule
    against the first), None when one person suffices; a second confirmer given where none is
    needed is still checked, never ignored."""
    four_eyes = bool(
        conn.execute(select(Organization.four_eyes).where(Organization.id == org_id)).scalar_one()
    )
    needed = four_eyes and rekey
    if second is None:
        if needed:
            raise TwoFactorRequired(
                f"{email} already has an authenticator and this organization requires four "
                "eyes: whoever re-keys it can act as them, so a second operator must confirm "
                "too: add --second-operator EMAIL --second-otp-code CODE"
            )
        return None
    other = load_operator(conn, org_id, second.email, CONFIRMER_NEEDS, now=now)
    pair, why = two_people(
        conn, org_id, [Proof(confirmer.id, confirmer.email), Proof(other.id, other.email)]
    )
    if pair is None:
        raise NotAuthorized(
            f"confirming the enrolment of {email} takes two different people: {'; '.join(why)}. "
            "Nothing was written"
        )
    return other


def _void_approvals(conn: Connection, user_id: int, now: dt.datetime) -> int:
    """End the unused approvals `user_id` made with the authenticator being replaced: whoever
    held the old one may have made them. Returns how many."""
    moment = naive_utc(now)
    result = conn.execute(
        update(Approval)
        .where(
            Approval.approver_id == user_id,
            Approval.used_at.is_(None),
            Approval.expires_at > moment,
        )
        .values(expires_at=moment)
    )
    return int(result.rowcount or 0)
