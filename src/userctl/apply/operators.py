"""Who may act (DESIGN §1 "Operator", §8 invariant 1): an active user of the same organization,
not past their `expires`, with an enrolled authenticator, whose role holds the permissions the
action needs.

The one rule for every command that acts or records who acted, so that the rule and its
messages exist once. Runs inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import Connection, select

from userctl.db.identity import user_row
from userctl.db.models import Role, RolePermission, TotpSecret, User
from userctl.errors import NotAuthorized
from userctl.printable import shell_command
from userctl.state import given_email


@dataclass(frozen=True, slots=True)
class Operator:
    id: int
    email: str
    role: str
    permissions: frozenset[str]


def load_operator(
    conn: Connection, org_id: int, email: str, needs: Iterable[str] = (), *, now: dt.datetime
) -> Operator:
    """The operator `email` of organization `org_id` at `now`, or NotAuthorized saying why they
    may not act: unknown, not active, past their expiry, no authenticator, or a role lacking one
    of `needs`."""
    email = given_email(email)
    # By identity: a stored `Root@Acme.CO` is the operator `root@acme.co`, and an identity two
    # rows hold is no operator at all (IdentityClash).
    found = user_row(conn, org_id, email, User.id)
    row = (
        None
        if found is None
        else conn.execute(
            select(
                User.id,
                User.status,
                User.totp_enrolled,
                User.expires,
                Role.name.label("role"),
            )
            .join(Role, Role.id == User.role_id)
            .where(User.id == found.id)
        ).first()
    )
    if row is None:
        raise NotAuthorized(f"operator {email} is not a user of this organization")
    if row.status != "active":
        raise NotAuthorized(
            f"operator {email} is {row.status}: only active users can confirm changes"
        )
    # `expires` is the last day of access: from the day after, the user is no operator, even
    # before a plan has deactivated them (or they would confirm the plan that keeps them).
    if row.expires is not None and row.expires < now.date():
        raise NotAuthorized(
            f"operator {email} expired on {row.expires.isoformat()}: "
            "an operator past their expiry cannot act"
        )
    has_secret = (
        conn.execute(select(TotpSecret.user_id).where(TotpSecret.user_id == row.id)).first()
        is not None
    )
    if not row.totp_enrolled or not has_secret:
        raise NotAuthorized(
            f"operator {email} has no authenticator enrolled with userctl: another admin must run "
            f"`{shell_command('userctl', 'mfa', 'enroll', email)}` first"
        )
    permissions = frozenset(
        conn.execute(
            select(RolePermission.permission)
            .join(User, User.role_id == RolePermission.role_id)
            .where(User.id == row.id)
        ).scalars()
    )
    missing = sorted(set(needs) - permissions)
    if missing:
        raise NotAuthorized(f"operator {email} (role {row.role}) lacks {', '.join(missing)}")
    return Operator(id=int(row.id), email=email, role=str(row.role), permissions=permissions)
