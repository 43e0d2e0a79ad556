"""The live state of one organization, read with a few set-based Core SELECTs into the plain
types of `userctl.state` (DESIGN §3, §6): one query per table, never one per user. The two big
ones (all users, all assignments) are Core SELECTs compiled for the backend and run on the
driver's own cursor: SQLAlchemy's result rows would add a layer per row for nothing, as every
column is read as the driver gives it. Callers provide the transaction
(`begin_read` for planning, `begin_write` for apply's precondition re-reads). Only `lock_rows`,
which apply calls first, locks anything: planning reads never do."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from typing import Any, Collection, Iterable, Mapping, Sequence, Unpack

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from userctl import state
from userctl.db import tables
from userctl.db.batches import chunks
from userctl.errors import NotFound, UsageError
from userctl.gcpause import gc_paused

# Keeps each IN (...) list well under every backend's bound-parameter limit.
_CHUNK = 500
_NO_ACCOUNTS: frozenset[str] = frozenset()


def organization_slugs(conn: Connection) -> list[str]:
    return list(
        conn.execute(
            select(tables.organizations.c.slug).order_by(tables.organizations.c.slug)
        ).scalars()
    )


def read_organization(conn: Connection, slug: str) -> tuple[int, state.Organization]:
    """The organization's id and row; NotFound naming the slug (and what exists) when absent."""
    o = tables.organizations.c
    row = conn.execute(
        select(
            o.id, o.slug, o.name, o.two_factor_policy, o.min_admins, o.four_eyes, o.serial
        ).where(o.slug == slug)
    ).one_or_none()
    if row is None:
        known = organization_slugs(conn)
        hint = (
            f"; it holds {', '.join(known)}" if known else "; it holds none yet: run `userctl init`"
        )
        raise NotFound(f"organization {slug!r} does not exist in this database{hint}")
    return int(row.id), state.Organization(
        slug=row.slug,
        name=row.name,
        two_factor_policy=row.two_factor_policy,
        min_admins=int(row.min_admins),
        four_eyes=bool(row.four_eyes),
        serial=int(row.serial),
    )


def resolve_organization(conn: Connection, slug: str | None) -> tuple[int, state.Organization]:
    """The organization a command without a desired-state file works on: `slug` (the global
    `--organization`), or the only one in the database."""
    if slug is None:
        slugs = organization_slugs(conn)
        if not slugs:
            raise NotFound(
                "this database holds no organization yet: run `userctl init -f FILE --admin EMAIL`"
            )
        if len(slugs) > 1:
            raise UsageError(
                f"this database holds {len(slugs)} organizations ({', '.join(slugs)}): "
                "choose one with --organization"
            )
        slug = slugs[0]
    return read_organization(conn, slug)


def read_live_state(
    conn: Connection, slug: str, like: Mapping[str, state.User] | None = None
) -> state.LiveState:
    """`like`: users the caller holds already (the desired state's, by email key): a row equal
    to one of them is that User, not a new one (see `read_users_keyed`)."""
    org_id, organization = read_organization(conn, slug)
    with gc_paused():
        users, case_duplicates = read_users_keyed(conn, org_id, like=like)
        return state.LiveState(
            organization=organization,
            roles=read_roles(conn, org_id),
            users=users,
            bank_accounts=read_bank_accounts(conn, org_id),
            policies=read_policies(conn, org_id),
            case_duplicates=case_duplicates,
        )


def lock_rows(conn: Connection, org_id: int, keys: Mapping[str, Collection[str]]) -> None:
    """Lock (SELECT ... FOR UPDATE, in chunks) every row that makes up the records of the users,
    roles and bank accounts named in `keys` ({"user": emails, "role": names, "bank_account":
    keys}): the user rows and their bank-account assignments, the role rows and their
    permissions, the bank-account rows. Apply calls it before reading the state its
    preconditions are checked on, so that nothing changes those rows between the check and the
    writes; a row another transaction holds is waited for, within the lock timeout. Absent rows
    lock nothing. On SQLite BEGIN IMMEDIATE already holds the whole database."""
    if conn.dialect.name == "sqlite":
        return
    r, rp, u, uba, ba = (
        t.c
        for t in (
            tables.roles,
            tables.role_permissions,
            tables.users,
            tables.user_bank_accounts,
            tables.bank_accounts,
        )
    )
    role_ids = _lock(
        conn, select(r.id).where(r.organization_id == org_id), r.name, keys.get("role", ())
    )
    _lock(conn, select(rp.role_id, rp.permission), rp.role_id, role_ids)
    # By identity: the file's `view1@hidden.co` is the stored `View1@Hidden.co` (and any row
    # differing from it only by case is locked with it). One locking read, never a plain read
    # first: InnoDB's snapshot starts at a transaction's first plain read, and one taken before
    # waiting for a row would hide the platform's committed change from the precondition check.
    # MariaDB's optimizer may scan the primary key for a small table instead of the identity
    # index, and InnoDB then locks every row it scanned (the platform could not write another
    # user while an apply runs): the index is named.
    by_identity = select(u.id).where(u.organization_id == org_id)
    for dialect in ("mysql", "mariadb"):
        by_identity = by_identity.with_hint(
            tables.users, "FORCE INDEX (uq_users_org_email_key)", dialect
        )
    user_ids = _lock(
        conn,
        by_identity,
        u.email_key,
        (state.email_key(e) for e in keys.get("user", ())),
    )
    _lock(conn, select(uba.user_id, uba.bank_account_id), uba.user_id, user_ids)
    _lock(
        conn,
        select(ba.id).where(ba.organization_id == org_id),
        ba.key,
        keys.get("bank_account", ()),
    )


def _lock(
    conn: Connection, query: Select[Unpack[tuple[Any, ...]]], column: Any, values: Iterable[Any]
) -> list[int]:
    """The first column of the rows of `query` whose `column` is one of `values`, those rows
    locked FOR UPDATE chunk by chunk, each chunk in the order of the selected columns (a fixed
    order: two transactions locking the same rows wait for each other rather than deadlock)."""
    found: list[int] = []
    for chunk in chunks(sorted(set(values)), _CHUNK):
        locking = query.where(column.in_(chunk)).order_by(*query.selected_columns).with_for_update()
        found.extend(int(v) for v in conn.execute(locking).scalars())
    return found


def read_roles(
    conn: Connection, org_id: int, names: Collection[str] | None = None
) -> dict[str, state.Role]:
    """Roles of the organization by name: all of them, or just `names` (absent
    ones are left out)."""
    r, rp = tables.roles.c, tables.role_permissions.c
    roles_q = select(r.id, r.name, r.description).where(r.organization_id == org_id)
    perms_q = (
        select(rp.role_id, rp.permission)
        .join(tables.roles, r.id == rp.role_id)
        .where(r.organization_id == org_id)
    )
    if names is None:
        role_rows = conn.execute(roles_q).all()
        perm_rows = conn.execute(perms_q).all()
    else:
        role_rows = _chunked_rows(conn, roles_q, r.name, names)
        perm_rows = _chunked_rows(conn, perms_q, r.name, names)
    permissions: defaultdict[int, set[str]] = defaultdict(set)
    for role_id, permission in perm_rows:
        permissions[role_id].add(permission)
    return {
        name: state.Role(
            name=name,
            description=description or "",
            permissions=frozenset(permissions.get(role_id, ())),
        )
        for role_id, name, description in role_rows
    }


def read_users(
    conn: Connection, org_id: int, emails: Collection[str] | None = None
) -> dict[str, state.User]:
    """Users of the organization keyed by lower-case email (see `read_users_keyed`)."""
    return read_users_keyed(conn, org_id, emails)[0]


def read_users_keyed(
    conn: Connection,
    org_id: int,
    emails: Collection[str] | None = None,
    *,
    like: Mapping[str, state.User] | None = None,
) -> tuple[dict[str, state.User], tuple[tuple[str, ...], ...]]:
    """Users of the organization keyed by lower-case email, with their role name and bank
    accounts: all of them, or just those whose identity is one of `emails`; and every group of
    stored emails that differ only by case (state.LiveState.users says how they are keyed).
    A row equal in every field to the User `like` holds under its key is that very object: a
    plan's file and database agree on nearly every user, which is then built once, not twice
    (and the planner sees the two are the same without comparing them)."""
    u, uba, ba = tables.users.c, tables.user_bank_accounts.c, tables.bank_accounts.c
    users_q = user_query().where(u.organization_id == org_id)
    accounts_q = (
        select(uba.user_id, ba.key)
        .join(tables.bank_accounts, ba.id == uba.bank_account_id)
        .where(ba.organization_id == org_id)
    )
    if emails is None:
        user_rows = _driver_rows(conn, users_q)
        account_rows = _driver_rows(conn, accounts_q)
    else:
        keys = [state.email_key(e) for e in emails]
        user_rows = _chunked_rows(conn, users_q, u.email_key, keys)
        account_rows = _chunked_rows(
            conn, accounts_q.join(tables.users, u.id == uba.user_id), u.email_key, keys
        )
    accounts: defaultdict[int, set[str]] = defaultdict(set)
    for user_id, key in account_rows:
        accounts[user_id].add(key)
    users: dict[str, state.User] = {}
    # key -> the stored email of the row holding it, where that is not the key itself (rare: the
    # platform wrote it so), for naming the rows of a clash as they are stored.
    stored: dict[str, str] = {}
    clashes: dict[str, list[tuple[str, state.User]]] = {}
    same = like.get if like else None
    for row in user_rows:
        keys_ = accounts.get(row[0])
        held = same(row[1].lower()) if same is not None else None
        if held is not None and _row_is(row, held, keys_):
            user = held
        else:
            user = user_from_row(row, frozenset(keys_) if keys_ else _NO_ACCOUNTS)
        email = user.email
        if email in users:
            first = (stored.get(email, email), users[email])
            clashes.setdefault(email, [first]).append((row[1], user))
        else:
            users[email] = user
            if row[1] != email:
                stored[email] = row[1]
    return users, tuple(_separate(users, group) for _, group in sorted(clashes.items()))


def _separate(users: dict[str, state.User], group: list[tuple[str, state.User]]) -> tuple[str, ...]:
    """Key one identity's rows apart in `users` (in place), by state.identity_keys; returns
    their stored emails, sorted."""
    keys = state.identity_keys(email for email, _ in group)
    for email, user in group:
        users[keys[email]] = replace(user, email=keys[email])
    return tuple(sorted(keys))


def read_case_duplicates(conn: Connection, org_id: int) -> tuple[tuple[str, ...], ...]:
    """Every group of stored emails of the organization that differ only by case, each sorted:
    what `read_live_state` finds, for readers that do not read every user."""
    u = tables.users.c
    shared = (
        select(u.email_key)
        .where(u.organization_id == org_id)
        .group_by(u.email_key)
        .having(func.count() > 1)
    )
    groups: dict[str, list[str]] = {}
    for (email,) in conn.execute(
        select(u.email).where(u.organization_id == org_id, u.email_key.in_(shared))
    ):
        groups.setdefault(state.email_key(email), []).append(str(email))
    return tuple(tuple(sorted(g)) for _, g in sorted(groups.items()))


def user_query() -> Select[Unpack[tuple[Any, ...]]]:
    """users.id, then the user's fields in `state.USER_FIELDS` order (the role by name; bank
    accounts are read apart), for `user_from_row`."""
    u, r = tables.users.c, tables.roles.c
    fields = [r.name if f == "role" else u[f] for f in state.USER_FIELDS if f != "bank_accounts"]
    return select(u.id, *fields).join(tables.roles, r.id == u.role_id)


def user_from_row(row: Sequence[Any], accounts: frozenset[str]) -> state.User:
    """A row of `user_query` as a User. Positional, in `state.USER_FIELDS` order: this runs for
    every user, and a keyword call with a dict per user costs a third more."""
    expires = row[12]
    return state.User(
        row[1].lower(),  # state.email_key, inlined: this runs for every user
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        bool(row[10]),
        accounts,
        bool(row[11]),
        # The raw SQLite driver gives the stored text, the others a date.
        expires if expires is None or expires.__class__ is str else expires.isoformat(),
    )


def _row_is(row: Sequence[Any], user: state.User, accounts: set[str] | None) -> bool:
    """Whether a row of `user_query` (with its bank-account keys) holds exactly `user`, field by
    field as `user_from_row` would build it."""
    expires = row[12]
    return (
        row[1].lower() == user.email
        and row[2] == user.first_name
        and row[3] == user.last_name
        and row[4] == user.id_type
        and row[5] == user.id_number
        and row[6] == user.phone
        and row[7] == user.role
        and row[8] == user.status
        and row[9] == user.two_factor
        and bool(row[10]) == user.force_password_reset
        and bool(row[11]) == user.totp_enrolled
        and (accounts or _NO_ACCOUNTS) == user.bank_accounts
        and (expires if expires is None or expires.__class__ is str else expires.isoformat())
        == user.expires
    )


def read_policies(conn: Connection, org_id: int) -> dict[state.PolicyKey, state.PolicyValue]:
    p = tables.policies.c
    rows = conn.execute(select(p.rule, p.name, p.value).where(p.organization_id == org_id))
    return {(rule, name): json.loads(value) for rule, name, value in rows}


def read_bank_accounts(conn: Connection, org_id: int) -> dict[str, state.BankAccount]:
    ba = tables.bank_accounts.c
    rows = conn.execute(
        select(ba.key, ba.bank, ba.account_type, ba.masked_number, ba.currency).where(
            ba.organization_id == org_id
        )
    )
    return {
        key: state.BankAccount(key, bank, account_type, masked, currency)
        for key, bank, account_type, masked, currency in rows
    }


def _driver_rows(conn: Connection, query: Select[Unpack[tuple[Any, ...]]]) -> list[Any]:
    """All rows of `query` as the driver's own tuples, inside the connection's transaction.
    Booleans arrive as the backend stores them (0/1 on SQLite and MariaDB): callers convert."""
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else params
    )
    dbapi = conn.connection.driver_connection
    assert dbapi is not None, "a connection inside a transaction has its driver connection"
    cursor = dbapi.cursor()
    try:
        cursor.execute(compiled.string, args)
        return list(cursor.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:
        # The same exception a Core execute raises, so callers and the CLI treat it alike.
        raise DBAPIError.instance(
            compiled.string, args, exc, conn.dialect.loaded_dbapi.Error
        ) from exc
    finally:
        cursor.close()


def _chunked_rows(
    conn: Connection, query: Select[Unpack[tuple[Any, ...]]], column: Any, values: Iterable[str]
) -> list[Any]:
    rows: list[Any] = []
    for chunk in chunks(sorted(set(values)), _CHUNK):
        rows.extend(conn.execute(query.where(column.in_(chunk))).all())
    return rows
