"""Who may confirm a change (DESIGN §1 "Operator"): an active user of the same organization,
with an enrolled authenticator, whose role holds the permissions the change needs.

Shared by every command that takes `--operator` (apply, approve, mfa enroll) so the rule and
its messages exist once. Runs inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import Connection, select

from userctl.db.models import Role, RolePermission, TotpSecret, User
from userctl.errors import NotAuthorized


@dataclass(frozen=True, slots=True)
class Operator:
    id: int
    email: str
    role: str
    permissions: frozenset[str]


def load_operator(conn: Connection, org_id: int, email: str, needs: Iterable[str] = ()) -> Operator:
    """The operator `email` of organization `org_id`, or NotAuthorized saying why they may not
    confirm: unknown, not active, no authenticator, or a role lacking one of `needs`."""
    email = email.strip().lower()
    row = conn.execute(
        select(User.id, User.email, User.status, User.totp_enrolled, Role.name.label("role"))
        .join(Role, Role.id == User.role_id)
        .where(User.organization_id == org_id, User.email == email)
    ).first()
    if row is None:
        raise NotAuthorized(f"operator {email} is not a user of this organization")
    if row.status != "active":
        raise NotAuthorized(
            f"operator {email} is {row.status}: only active users can confirm changes"
        )
    has_secret = (
        conn.execute(select(TotpSecret.user_id).where(TotpSecret.user_id == row.id)).first()
        is not None
    )
    if not row.totp_enrolled or not has_secret:
        raise NotAuthorized(
            f"operator {email} has no authenticator enrolled with userctl: another admin must run "
            f"`userctl mfa enroll {email}` first"
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
    return Operator(
        id=int(row.id), email=str(row.email), role=str(row.role), permissions=permissions
    )
