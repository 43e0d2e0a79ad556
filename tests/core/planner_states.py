"""Hand-made desired and live states for the pure planner tests (no database)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from userctl.state import BankAccount, DesiredState, LiveState, Organization, Role, User

ADMIN = Role(
    "Admin", "Full access", frozenset({"users.view", "users.add", "users.manage", "roles.manage"})
)
OPS = Role("Ops", "Payouts", frozenset({"payouts.view", "payouts.create"}))
ACCOUNTS = {
    k: BankAccount(k, "Bancolombia", "savings", f"****{i:04d}", "COP")
    for i, k in enumerate(("ops-main", "ops-backup", "payroll"))
}


def user(email: str, n: int, **kw: Any) -> User:
    base: dict[str, Any] = dict(
        email=email,
        first_name="First",
        last_name="Last",
        id_type="CC",
        id_number=f"{1000 + n}",
        phone=f"+5730000{n:05d}",
        role="Ops",
        status="active",
        two_factor="optional",
    )
    base.update(kw)
    return User(**base)


ROOT = user("root@acme.co", 0, role="Admin", totp_enrolled=True, two_factor="required")


def live(users: list[User] | None = None, roles: list[Role] | None = None, **org: Any) -> LiveState:
    users = [ROOT] + (users or [])
    roles = roles if roles is not None else [ADMIN, OPS]
    return LiveState(
        Organization("acme", "Acme", **org),
        {r.name: r for r in roles},
        {u.email: u for u in users},
        dict(ACCOUNTS),
    )


def desired_from(state: LiveState, **changes: Any) -> DesiredState:
    """The desired state that matches `state` exactly (what `export` would write)."""
    users = {
        e: replace(u, totp_enrolled=False, status="active" if u.status == "invited" else u.status)
        for e, u in state.users.items()
    }
    return DesiredState(state.organization.slug, dict(state.roles), users, **changes)


def desired(users: list[User] | None = None, roles: list[Role] | None = None) -> DesiredState:
    users = [replace(ROOT, totp_enrolled=False)] + (users or [])
    roles = roles if roles is not None else [ADMIN, OPS]
    return DesiredState("acme", {r.name: r for r in roles}, {u.email: u for u in users})
