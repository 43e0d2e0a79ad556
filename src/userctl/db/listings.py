"""Reads for the everyday views (`users list/show`, `roles list`, `accounts list`) that the
planner's snapshot does not need: user ids (the lists are sorted by id, as in the dashboard),
timestamps, and counts. Set-based Core SELECTs inside the caller's (read-only) transaction."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from userctl import state
from userctl.db import models, tables
from userctl.db.plan_read import user_from_row
from userctl.db.snapshot import user_query


@dataclass(frozen=True, slots=True)
class ListedUser:
    id: int
    user: state.User  # bank_accounts left empty: the list does not show them
    last_login_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Timestamps:
    created_at: dt.datetime
    updated_at: dt.datetime
    last_login_at: dt.datetime | None = None


def list_users(
    conn: Connection, org_id: int, *, status: str | None = None, role: str | None = None
) -> list[ListedUser]:
    """Users of the organization sorted by id, filtered by status and exact role name."""
    u, r = tables.users.c, tables.roles.c
    query = (
        user_query().add_columns(u.last_login_at).where(u.organization_id == org_id).order_by(u.id)
    )
    if status is not None:
        query = query.where(u.status == status)
    if role is not None:
        query = query.where(r.name == role)
    return [
        ListedUser(int(row[0]), user_from_row(row, frozenset()), row[-1])
        for row in conn.execute(query)
    ]


def user_emails(conn: Connection, org_id: int) -> list[str]:
    """Every user's email as stored, for suggesting the one a mistyped name meant."""
    u = tables.users.c
    return [
        str(e) for e in conn.execute(select(u.email).where(u.organization_id == org_id)).scalars()
    ]


def user_timestamps(conn: Connection, org_id: int, email: str) -> Timestamps | None:
    u = models.User
    row = conn.execute(
        select(u.created_at, u.updated_at, u.last_login_at).where(
            u.organization_id == org_id, u.email_key == state.email_key(email)
        )
    ).one_or_none()
    return None if row is None else Timestamps(row.created_at, row.updated_at, row.last_login_at)


def role_user_counts(conn: Connection, org_id: int) -> dict[str, int]:
    """Role name -> how many users hold it (roles nobody holds are absent)."""
    u, r = models.User, models.Role
    rows = conn.execute(
        select(r.name, func.count(u.id))
        .join(u, u.role_id == r.id)
        .where(r.organization_id == org_id)
        .group_by(r.name)
    )
    return {name: int(count) for name, count in rows}


def account_holders(conn: Connection, org_id: int) -> dict[str, list[str]]:
    """Bank-account key -> emails of the users it is assigned to, sorted."""
    u, uba, ba = models.User, models.UserBankAccount, models.BankAccount
    rows = conn.execute(
        select(ba.key, u.email)
        .join(uba, uba.bank_account_id == ba.id)
        .join(u, u.id == uba.user_id)
        .where(ba.organization_id == org_id)
    )
    holders: defaultdict[str, list[str]] = defaultdict(list)
    for key, email in rows:
        holders[key].append(email.lower())
    return {key: sorted(emails) for key, emails in holders.items()}
