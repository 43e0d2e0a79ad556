"""Core inserts of the domain rows from the plain types of `userctl.state`: shared by `init`,
`init --demo`, the executor and the test factories, so that every writer fills the same columns
the same way."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from userctl import state
from userctl.clock import utcnow
from userctl.db import models


def insert_organization(conn: Connection, org: state.Organization) -> int:
    result = conn.execute(
        insert(models.Organization).values(
            slug=org.slug,
            name=org.name,
            two_factor_policy=org.two_factor_policy,
            min_admins=org.min_admins,
            four_eyes=org.four_eyes,
            serial=org.serial,
            created_at=utcnow(),
        )
    )
    return _new_id(result.inserted_primary_key)


def insert_role(conn: Connection, organization_id: int, role: state.Role) -> int:
    result = conn.execute(
        insert(models.Role).values(
            organization_id=organization_id, name=role.name, description=role.description
        )
    )
    role_id = _new_id(result.inserted_primary_key)
    if role.permissions:
        conn.execute(
            insert(models.RolePermission),
            [{"role_id": role_id, "permission": p} for p in sorted(role.permissions)],
        )
    return role_id


def stored(name: str, value: Any) -> Any:
    """A user field as its column takes it: an expiry is a DATE (SQLite's Date type
    takes only dates)."""
    return dt.date.fromisoformat(value) if name == "expires" and value is not None else value


def insert_user(conn: Connection, organization_id: int, user: state.User, role_id: int) -> int:
    """Insert the user row only; `user.role` and `user.bank_accounts` are the
    caller's to resolve."""
    now = utcnow()
    columns = {name: stored(name, getattr(user, name)) for name in state.USER_COLUMNS}
    columns["email"] = user.email.lower()
    result = conn.execute(
        insert(models.User).values(
            organization_id=organization_id,
            **columns,
            role_id=role_id,
            created_at=now,
            updated_at=now,
        )
    )
    return _new_id(result.inserted_primary_key)


def insert_bank_account(conn: Connection, organization_id: int, account: state.BankAccount) -> int:
    result = conn.execute(
        insert(models.BankAccount).values(
            organization_id=organization_id,
            key=account.key,
            bank=account.bank,
            account_type=account.account_type,
            masked_number=account.masked_number,
            currency=account.currency,
        )
    )
    return _new_id(result.inserted_primary_key)


def insert_assignments(conn: Connection, pairs: Iterable[tuple[int, int]]) -> None:
    """Assign bank accounts: (user_id, bank_account_id) pairs."""
    rows = [{"user_id": u, "bank_account_id": b} for u, b in pairs]
    if rows:
        conn.execute(insert(models.UserBankAccount), rows)


def _new_id(primary_key: object) -> int:
    assert primary_key is not None
    return int(primary_key[0])  # type: ignore[index]
