"""The live state of one organization, read with a few set-based Core SELECTs into the plain
types of `userctl.state` (DESIGN §3, §6): one query per table, never one per user. The two big
ones (all users, all assignments) are Core SELECTs compiled for the backend and run on the
driver's own cursor: SQLAlchemy's result rows would add a layer per row for nothing, as every
column is read as the driver gives it. Callers provide the transaction
(`begin_read` for planning, `begin_write` for apply's precondition re-reads). Only `lock_rows`,
which apply calls first, locks anything: planning reads never do."""

from __future__ import annotations

from typing import Any, Collection, Iterable, Iterator, Mapping, Unpack

from sqlalchemy import DateTime, Select, bindparam, func, select
from sqlalchemy.engine import Connection

from userctl import state
from userctl.chain import SCANNED
from userctl.db import plan_read, tables
from userctl.db.batches import chunks
from userctl.db.driver import sql_batches, sql_rows
from userctl.db.thin import driver_args
from userctl.errors import NotFound, UsageError

# Keeps each IN (...) list well under every backend's bound-parameter limit.
_CHUNK = 500


def organization_slugs(conn: Connection) -> list[str]:
    return plan_read.organization_slugs(core_rows(conn))


def read_organization(conn: Connection, slug: str) -> tuple[int, state.Organization]:
    """The organization's id and row; NotFound naming the slug (and what exists) when absent."""
    return plan_read.organization(core_rows(conn), slug)


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
    to one of them is that User, not a new one (see `plan_read.users_keyed`)."""
    return plan_read.live_state(core_rows(conn), slug, like)


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
    if names is None:
        return plan_read.roles(core_rows(conn), org_id)
    r = tables.roles.c
    roles_q, perms_q = _roles_query(), _role_permissions_query()
    role_rows = _chunked_rows(conn, roles_q.where(r.organization_id == org_id), r.name, names)
    perm_rows = _chunked_rows(conn, perms_q.where(r.organization_id == org_id), r.name, names)
    return plan_read.roles_from(role_rows, perm_rows)


def read_users(
    conn: Connection, org_id: int, emails: Collection[str] | None = None
) -> dict[str, state.User]:
    """Users of the organization keyed by lower-case email (see `read_users_keyed`)."""
    return read_users_keyed(conn, org_id, emails)[0]


def read_users_keyed(
    conn: Connection, org_id: int, emails: Collection[str] | None = None
) -> tuple[dict[str, state.User], tuple[tuple[str, ...], ...]]:
    """Users of the organization keyed by lower-case email, with their role name and bank
    accounts: all of them, or just those whose identity is one of `emails`; and every group of
    stored emails that differ only by case (state.LiveState.users says how they are keyed)."""
    if emails is None:
        rows = core_rows(conn)
        return plan_read.users_keyed(
            rows("users", org_id=org_id), rows("user_bank_accounts", org_id=org_id)
        )
    u, uba = tables.users.c, tables.user_bank_accounts.c
    keys = [state.email_key(e) for e in emails]
    users_q = user_query().where(u.organization_id == org_id)
    accounts_q = _user_bank_accounts_query().join(tables.users, u.id == uba.user_id)
    return plan_read.users_keyed(
        _chunked_rows(conn, users_q, u.email_key, keys),
        _chunked_rows(
            conn,
            accounts_q.where(tables.bank_accounts.c.organization_id == org_id),
            u.email_key,
            keys,
        ),
    )


def read_case_duplicates(conn: Connection, org_id: int) -> tuple[tuple[str, ...], ...]:
    """Every group of stored emails of the organization that differ only by case, each sorted:
    what `read_live_state` finds, for readers that do not read every user."""
    return plan_read.case_duplicates(core_rows(conn), org_id)


def user_query() -> Select[Unpack[tuple[Any, ...]]]:
    """users.id, then the user's fields in `state.USER_FIELDS` order (the role by name; bank
    accounts are read apart), for `user_from_row`."""
    u, r = tables.users.c, tables.roles.c
    fields = [r.name if f == "role" else u[f] for f in state.USER_FIELDS if f != "bank_accounts"]
    return select(u.id, *fields).join(tables.roles, r.id == u.role_id)


def read_policies(conn: Connection, org_id: int) -> dict[state.PolicyKey, state.PolicyValue]:
    return plan_read.policies(core_rows(conn), org_id)


def read_bank_accounts(conn: Connection, org_id: int) -> dict[str, state.BankAccount]:
    return plan_read.bank_accounts(core_rows(conn), org_id)


# --- the plan's named queries (plan_read.QUERIES) -------------------------------------------------


def _roles_query() -> Select[Unpack[tuple[Any, ...]]]:
    r = tables.roles.c
    return select(r.id, r.name, r.description)


def _role_permissions_query() -> Select[Unpack[tuple[Any, ...]]]:
    r, rp = tables.roles.c, tables.role_permissions.c
    return select(rp.role_id, rp.permission).join(tables.roles, r.id == rp.role_id)


def _user_bank_accounts_query() -> Select[Unpack[tuple[Any, ...]]]:
    uba, ba = tables.user_bank_accounts.c, tables.bank_accounts.c
    return select(uba.user_id, ba.key).join(tables.bank_accounts, ba.id == uba.bank_account_id)


def plan_queries() -> dict[str, Select[Unpack[tuple[Any, ...]]]]:
    """The Core SELECT of each of plan_read.QUERIES, its parameters bound by name. Compiled here
    for the connection's backend (core_rows) and ahead, for each backend, into db/plan_sql.py
    (`python -m tests.db.plan_sql` writes it; a test fails while it differs)."""
    from userctl.db.hygiene import hygiene_queries

    o, r, u, ba, p = (
        t.c
        for t in (
            tables.organizations,
            tables.roles,
            tables.users,
            tables.bank_accounts,
            tables.policies,
        )
    )
    org_id: Any = bindparam("org_id", required=False)
    shared = (
        select(u.email_key)
        .where(u.organization_id == org_id)
        .group_by(u.email_key)
        .having(func.count() > 1)
    )
    return {
        "organization_slugs": select(o.slug).order_by(o.slug),
        "organization": select(
            o.id, o.slug, o.name, o.two_factor_policy, o.min_admins, o.four_eyes, o.serial
        ).where(o.slug == bindparam("slug", required=False)),
        "roles": _roles_query().where(r.organization_id == org_id),
        "role_permissions": _role_permissions_query().where(r.organization_id == org_id),
        "users": user_query().where(u.organization_id == org_id),
        "user_bank_accounts": _user_bank_accounts_query().where(ba.organization_id == org_id),
        "bank_accounts": select(
            ba.key, ba.bank, ba.account_type, ba.masked_number, ba.currency
        ).where(ba.organization_id == org_id),
        "policies": select(p.rule, p.name, p.value).where(p.organization_id == org_id),
        "case_duplicates": select(u.email).where(
            u.organization_id == org_id, u.email_key.in_(shared)
        ),
        **hygiene_queries(org_id, bindparam("cutoff", type_=DateTime, required=False)),
        "audit_chain": audit_chain_query(org_id),
    }


def audit_chain_query(org_id: Any) -> Select[Unpack[tuple[Any, ...]]]:
    """`audit verify`'s read of one organization's chain: chain.SCANNED's columns, in seq then
    id order (its scan runs on this, through SQLAlchemy's connection or, compiled ahead, on the
    raw driver)."""
    a = tables.audit_events.c
    return (
        select(*(a[name] for name in SCANNED))
        .where(a.organization_id == org_id)
        .order_by(a.seq, a.id)
    )


_COMPILED: dict[tuple[str, str], tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}


def compiled_plan_query(
    name: str, dialect: Any
) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
    """One of plan_queries() compiled for `dialect`: its SQL, the order of its parameters (None:
    the driver takes them by name) and the values of those the query itself fixes."""
    key = (f"{dialect.name} {dialect.paramstyle}", name)
    if key not in _COMPILED:
        compiled = plan_queries()[name].compile(dialect=dialect)
        fixed = {k: v for k, v in compiled.construct_params().items() if v is not None}
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        _COMPILED[key] = (compiled.string, order, fixed)
    return _COMPILED[key]


def core_rows(conn: Connection) -> "CoreRows":
    """plan_read's runner on a SQLAlchemy connection: each named query compiled for its backend,
    run inside its transaction on the driver's own cursor (as db/thin.py runs them)."""
    return CoreRows(conn)


class CoreRows:
    """plan_read.Rows on a SQLAlchemy connection (see `core_rows`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __call__(self, name: str, **params: Any) -> list[Any]:
        conn = self._conn
        compiled = compiled_plan_query(name, conn.dialect)
        return sql_rows(conn, compiled[0], driver_args(compiled, conn.dialect.name, params))

    def stream(self, name: str, size: int, **params: Any) -> Iterator[list[Any]]:
        conn = self._conn
        compiled = compiled_plan_query(name, conn.dialect)
        return sql_batches(
            conn, compiled[0], driver_args(compiled, conn.dialect.name, params), size
        )


def _chunked_rows(
    conn: Connection, query: Select[Unpack[tuple[Any, ...]]], column: Any, values: Iterable[str]
) -> list[Any]:
    rows: list[Any] = []
    for chunk in chunks(sorted(set(values)), _CHUNK):
        rows.extend(conn.execute(query.where(column.in_(chunk))).all())
    return rows
