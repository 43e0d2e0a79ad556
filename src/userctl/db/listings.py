"""Reads for the everyday views (`users list/show`, `roles list`, `accounts list`) that the
planner's snapshot does not need: user ids (the lists are sorted by id, as in the dashboard),
timestamps, and counts. Set-based Core SELECTs inside the caller's (read-only) transaction.

Each view's command calls one function here (`users_listing`, `user_view`, `roles_listing`,
`accounts_listing`): what a view reads, and its "not found" refusals, are stated once, below the
CLI (tests/cli/test_thin_cli.py holds the commands to one read)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Generic, Iterator, TypeVar, Unpack

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection

from userctl import state
from userctl.db import models, tables
from userctl.db.driver import column_reader, driver_batches
from userctl.db.plan_read import user_from_row
from userctl.db.snapshot import (
    read_bank_accounts,
    read_case_duplicates,
    read_roles,
    read_users,
    user_query,
)
from userctl.errors import NotFound, did_you_mean
from userctl.policies import Violation, identity_clashes


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


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """What a listing shows, and the rows of one identity among them (DESIGN §8 invariant 6): each
    such row is listed by its email as stored, never merged into another or shown under a shared
    key, and the violation `policy check` blocks on is reported beside it."""

    rows: list[T]
    clashes: list[Violation]


def _clashing(conn: Connection, org_id: int) -> tuple[frozenset[str], list[Violation]]:
    """The stored emails of rows that share an identity with another row, and their violations
    (one cheap query: only the rows whose key is shared)."""
    groups = read_case_duplicates(conn, org_id)
    return frozenset(e for group in groups for e in group), identity_clashes(groups)


def list_users(
    conn: Connection,
    org_id: int,
    *,
    status: str | None = None,
    role: str | None = None,
    as_stored: frozenset[str] = frozenset(),
) -> list[ListedUser]:
    """Users of the organization sorted by id, filtered by status and exact role name; a row
    whose stored email is in `as_stored` keeps that spelling instead of its identity's key."""
    listed = []
    for row in conn.execute(_users_query(org_id, status, role)):
        user = user_from_row(row, frozenset())
        if row[1] in as_stored:
            user = replace(user, email=row[1])
        listed.append(ListedUser(int(row[0]), user, row[-1]))
    return listed


def _users_query(
    org_id: int, status: str | None, role: str | None
) -> Select[Unpack[tuple[Any, ...]]]:
    u, r = tables.users.c, tables.roles.c
    query = (
        user_query().add_columns(u.last_login_at).where(u.organization_id == org_id).order_by(u.id)
    )
    if status is not None:
        query = query.where(u.status == status)
    if role is not None:
        query = query.where(r.name == role)
    return query


# Users a fetch of `users list`: its memory is a batch, and the table's rows.
USERS_BATCH = 5000


def _listed_batches(
    conn: Connection, org_id: int, status: str | None, role: str | None, as_stored: frozenset[str]
) -> Iterator[list[ListedUser]]:
    """`list_users`, streamed from the driver's tuples (db/driver.driver_batches) in lists of at
    most USERS_BATCH (never an empty one): no SQLAlchemy Row per user. The dates and times are
    converted as SQLAlchemy converts them (SQLite stores them as text), once per distinct value
    a batch (a bulk import writes one instant, most users share an expiry)."""
    u = tables.users.c
    read_login = column_reader(conn, u.last_login_at)
    read_expires = column_reader(conn, u.expires)
    expires_at = 12  # user_query's position of `expires`
    for batch in driver_batches(conn, _users_query(org_id, status, role), USERS_BATCH):
        logins: dict[Any, Any] = {None: None}
        expiries: dict[Any, Any] = {None: None}
        listed = []
        for row in batch:
            login = row[-1]
            if read_login is not None:
                try:
                    login = logins[login]
                except KeyError:
                    login = logins[login] = read_login(login)
            if read_expires is not None:
                row = list(row)
                try:
                    row[expires_at] = expiries[row[expires_at]]
                except KeyError:
                    row[expires_at] = expiries[row[expires_at]] = read_expires(row[expires_at])
            user = user_from_row(row, frozenset())
            if row[1] in as_stored:
                user = replace(user, email=row[1])
            listed.append(ListedUser(int(row[0]), user, login))
        if listed:
            yield listed


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


def account_holders(
    conn: Connection, org_id: int, as_stored: frozenset[str] = frozenset()
) -> dict[str, list[str]]:
    """Bank-account key -> emails of the users it is assigned to, sorted; an email in
    `as_stored` keeps its stored spelling (see `list_users`)."""
    u, uba, ba = models.User, models.UserBankAccount, models.BankAccount
    rows = conn.execute(
        select(ba.key, u.email)
        .join(uba, uba.bank_account_id == ba.id)
        .join(u, u.id == uba.user_id)
        .where(ba.organization_id == org_id)
    )
    holders: defaultdict[str, list[str]] = defaultdict(list)
    for key, email in rows:
        holders[key].append(email if email in as_stored else email.lower())
    return {key: sorted(emails) for key, emails in holders.items()}


def users_listing(
    conn: Connection,
    org_id: int,
    org: state.Organization,
    *,
    status: str | None = None,
    role: str | None = None,
) -> Listing[ListedUser]:
    """`users list`: `list_users`, after refusing a role the organization does not have (an
    empty list would read as "nobody holds it"), with the rows of one identity (`Listing`)."""
    _known_role(conn, org_id, org, role)
    as_stored, clashes = _clashing(conn, org_id)
    return Listing(list_users(conn, org_id, status=status, role=role, as_stored=as_stored), clashes)


@dataclass(frozen=True, slots=True)
class StreamedListing:
    """`users list` in batches (`batches` reads as it is iterated), and the rows of one identity
    among them, found before the stream starts."""

    batches: Iterator[list[ListedUser]]
    clashes: list[Violation]


def users_listing_batches(
    conn: Connection,
    org_id: int,
    org: state.Organization,
    *,
    status: str | None = None,
    role: str | None = None,
) -> StreamedListing:
    """`users list` as `users_listing` reads it, in batches from the driver's tuples: the role
    is refused and the rows of one identity found here, before anything is streamed (MariaDB's
    streaming cursor allows no other statement on the connection until the iteration ends)."""
    _known_role(conn, org_id, org, role)
    as_stored, clashes = _clashing(conn, org_id)
    return StreamedListing(_listed_batches(conn, org_id, status, role, as_stored), clashes)


def _known_role(conn: Connection, org_id: int, org: state.Organization, role: str | None) -> None:
    if role is not None and role not in read_roles(conn, org_id, [role]):
        known = sorted(read_roles(conn, org_id))
        raise NotFound(
            f"organization {org.slug} has no role {role!r}{did_you_mean(role, known)}; "
            f"its roles: {', '.join(known) or 'none'}"
        )


@dataclass(frozen=True, slots=True)
class UserView:
    """`users show`: the user, their role, the organization's bank accounts, the timestamps."""

    user: state.User
    role: state.Role
    accounts: dict[str, state.BankAccount]
    stamps: Timestamps | None


def user_view(conn: Connection, org_id: int, org: state.Organization, email: str) -> UserView:
    """The user whose identity `email` names (VIEW1@HIDDEN.CO finds a stored View1@Hidden.co;
    refused when several rows hold it, rather than showing one of them); NotFound, with the
    closest email, when none does."""
    from userctl.db.identity import user_row

    key = state.email_key(email.strip())
    found = user_row(conn, org_id, key)
    user = read_users(conn, org_id, [key]).get(key) if found is not None else None
    if user is None:
        emails = [e.lower() for e in user_emails(conn, org_id)]
        raise NotFound(
            f"organization {org.slug} has no user {email!r}{did_you_mean(key, emails)} "
            "(see `userctl users list --search`)"
        )
    return UserView(
        user,
        read_roles(conn, org_id, [user.role])[user.role],
        read_bank_accounts(conn, org_id),
        user_timestamps(conn, org_id, key),
    )


def roles_listing(conn: Connection, org_id: int) -> list[tuple[state.Role, int]]:
    """`roles list`: every role by name, with how many users hold it."""
    roles = read_roles(conn, org_id)
    counts = role_user_counts(conn, org_id)
    return [(roles[name], counts.get(name, 0)) for name in sorted(roles)]


def accounts_listing(conn: Connection, org_id: int) -> Listing[tuple[state.BankAccount, list[str]]]:
    """`accounts list`: every bank account by key, with the emails it is assigned to, and the
    rows of one identity (`Listing`)."""
    registered = read_bank_accounts(conn, org_id)
    as_stored, clashes = _clashing(conn, org_id)
    holders = account_holders(conn, org_id, as_stored)
    return Listing([(registered[key], holders.get(key, [])) for key in sorted(registered)], clashes)
