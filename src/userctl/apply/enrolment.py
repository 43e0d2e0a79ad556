"""Enrolling a user's authenticator (DESIGN §5 `mfa enroll`): a new TOTP secret for an active
user, confirmed by ANOTHER admin's own TOTP code, audited without the secret. Whoever can
replace an operator's authenticator can act as that operator, hence the second person."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, select

from userctl.apply import otp
from userctl.apply.audit import AuditRecord, append_events
from userctl.apply.operators import load_operator
from userctl.db.models import User
from userctl.errors import NotAuthorized, NotFound, UsageError
from userctl.plan import user_address

CONFIRMER_NEEDS = frozenset({"users.manage"})


@dataclass(frozen=True, slots=True)
class Enrolment:
    organization: str
    email: str
    secret: str = field(repr=False)  # shown once to the user, never logged
    otpauth_uri: str = field(repr=False)
    audit_head: str


def enroll_user(
    engine: Engine,
    organization: str,
    email: str,
    operator: str,
    code: str,
    *,
    now: dt.datetime,
    lock_timeout_s: float = 30.0,
) -> Enrolment:
    """Give `email` (an active user of `organization`) a new authenticator secret, confirmed by
    `operator` with `code`. The previous secret stops working. One transaction, under the
    organization lock; a wrong code is booked towards the operator's lockout."""
    email, operator = email.strip().lower(), operator.strip().lower()
    if email == operator:
        raise NotAuthorized(
            f"{operator} cannot confirm the enrolment of their own authenticator: "
            "another admin with users.manage must run `userctl mfa enroll` for them"
        )

    def enroll(conn: Connection, org_id: int) -> tuple[str, str]:
        confirmer = load_operator(conn, org_id, operator, CONFIRMER_NEEDS, now=now)
        target = conn.execute(
            select(User.id, User.status, User.totp_enrolled).where(
                User.organization_id == org_id, User.email == email
            )
        ).first()
        if target is None:
            raise NotFound(f"user {email} does not exist in organization {organization}")
        if target.status != "active":
            raise UsageError(
                f"user {email} is {target.status}: only active users are enrolled with "
                "userctl (invited users enrol when they finish registration; "
                "reactivate an inactive user first)"
            )
        otp.verify_operator_code(conn, confirmer.id, code, now)
        secret = otp.enroll(conn, int(target.id))
        head = append_events(
            conn,
            org_id,
            [
                AuditRecord(
                    operator=confirmer.email,
                    verified_by="totp",
                    operator_verified=True,
                    action="mfa.enroll",
                    address=user_address(email),
                    before={"totp_enrolled": bool(target.totp_enrolled)},
                    after={"totp_enrolled": True},
                )
            ],
            now,
        )
        return secret, head

    secret, head = otp.locked_write(
        engine, organization, enroll, now=now, lock_timeout_s=lock_timeout_s
    )
    return Enrolment(
        organization, email, secret, otp.provisioning_uri(secret, email, organization), head
    )
