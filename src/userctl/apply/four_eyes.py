"""Four eyes (DESIGN §4, §8 invariant 2): two proofs count as two people only when neither
person can stand in for the other.

Whoever enrols or re-keys an authenticator is shown its secret, so they can produce that
operator's codes. "Who enrolled X's current authenticator" is derived from the audit log (the
latest `mfa.enroll` of X, unless X was deleted, replaced or had 2FA disabled since), which is
hash-chained and append-only: no column of its own that a platform write could leave behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from sqlalchemy import select

from userctl.db import tables
from userctl.plan import user_address

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from userctl.apply.approvals import ApprovalRow

ENROL_ACTION = "mfa.enroll"
# Events after which the last `mfa.enroll` of an address no longer describes its authenticator:
# a new person at that address, or the authenticator removed.
_ENDS_ENROLMENT = ("user.create", "user.replace", "user.delete", "user.disable_two_factor")


@dataclass(frozen=True, slots=True)
class Proof:
    """One confirmation of a plan or an enrolment: a person's own code given now (approval None)
    or an unused approval they recorded earlier with their code."""

    user_id: int
    email: str
    approval: "ApprovalRow | None" = None

    def describe(self) -> str:
        return f"an approval by {self.email}" if self.approval else f"the code of {self.email}"


def enrolled_by(conn: "Connection", org_id: int, email: str) -> str | None:
    """Who enrolled `email`'s current authenticator (themselves at init: their own email), or None
    when no userctl enrolment of this person is on record."""
    t = tables.audit_events
    rows = conn.execute(
        select(t.c.action, t.c.operator, t.c.after)
        .where(
            t.c.organization_id == org_id,
            t.c.address == user_address(email),
            t.c.action.in_((ENROL_ACTION, *_ENDS_ENROLMENT)),
        )
        .order_by(t.c.seq.desc())
        .limit(1)
    ).first()
    if rows is None or rows.action != ENROL_ACTION:
        return None
    after = json.loads(rows.after) if rows.after else {}
    by = after.get("enrolled_by") if isinstance(after, dict) else None
    return str(by) if by else str(rows.operator)


def stand_in(conn: "Connection", org_id: int, a: Proof, b: Proof) -> str | None:
    """Why `a` and `b` are not proofs of two people, or None when they are: one person; one
    enrolled the other's current authenticator (and saw its secret); or one person enrolled both
    (and knows both secrets).

    Only the enrolments themselves count, not chains of them (X enrolled Y, who enrolled Z): every
    operator's authenticator goes back to the admin `init` enrolled, so a rule over whole chains
    would leave no two people able to confirm anything under four eyes — not even the plan that
    turns it off. What a chain leaves open (X typing Y's codes while Y enrols Z) is written in
    the audit log as Y's enrolment of Z."""
    if a.user_id == b.user_id or a.email == b.email:
        return f"{a.describe()} and {b.describe()} are one person's"
    by_a, by_b = enrolled_by(conn, org_id, a.email), enrolled_by(conn, org_id, b.email)
    if by_b == a.email:
        return f"{a.email} enrolled the authenticator of {b.email} and can act as them"
    if by_a == b.email:
        return f"{b.email} enrolled the authenticator of {a.email} and can act as them"
    if by_a is not None and by_a == by_b:
        return (
            f"{by_a} enrolled the authenticators of both {a.email} and {b.email} "
            "and can act as either"
        )
    return None


def two_people(
    conn: "Connection", org_id: int, proofs: Sequence[Proof]
) -> tuple[tuple[Proof, Proof] | None, list[str]]:
    """THE four-eyes rule: the first pair of `proofs` (in their order) that comes from two people
    who cannot stand in for each other, and why each pair passed over does not count."""
    passed_over: list[str] = []
    for i, first in enumerate(proofs):
        for second in proofs[i + 1 :]:
            why = stand_in(conn, org_id, first, second)
            if why is None:
                return (first, second), passed_over
            if why not in passed_over:
                passed_over.append(why)
    return None, passed_over
