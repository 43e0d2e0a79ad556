"""The reads a plan makes, from rows: the organization, its roles, users, bank accounts and
policies (the live state, DESIGN §3), and what its hygiene findings need. Each read is a named
query (`QUERIES`): `rows(name, **params)` runs it and gives the driver's own tuples.

Two runners give the same rows for the same query: `db/snapshot.py` compiles the Core SELECTs of
`snapshot.plan_queries()` on the command's SQLAlchemy connection (apply, reports), and
`db/thin.py` runs the very same statements compiled ahead (`db/plan_sql.py`, held to the Core
ones by a test) on the raw driver, so that `userctl plan` never imports SQLAlchemy. This module
imports neither: it only turns rows into `userctl.state` and `userctl.hygiene` types, once for
both. Rows come as the driver gives them: booleans as 0/1 on SQLite and MariaDB, dates and
instants as text on SQLite."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import replace
from itertools import chain
from typing import Any, Final, Iterable, Iterator, Mapping, Protocol, Sequence

from userctl import state
from userctl.clock import naive_utc
from userctl.errors import NotFound
from userctl.gcpause import gc_paused
from userctl.hygiene import (
    DORMANT,
    Account,
    HygieneFacts,
    Invitation,
    ReviewSettings,
    Unenrolled,
    dormant_cutoff,
    privileged,
)

# The named queries, and the parameters each takes.
QUERIES: Final[Mapping[str, tuple[str, ...]]] = {
    "organization_slugs": (),
    "organization": ("slug",),
    "roles": ("org_id",),
    "role_permissions": ("org_id",),
    "users": ("org_id",),
    "user_bank_accounts": ("org_id",),
    "bank_accounts": ("org_id",),
    "policies": ("org_id",),
    "case_duplicates": ("org_id",),
    "dormant": ("org_id", "cutoff"),
    "invitations": ("org_id",),
    # Not the plan's: `audit verify`'s chain (chain.SCANNED), which db/thin.py streams.
    "audit_chain": ("org_id",),
}

_NO_ACCOUNTS: frozenset[str] = frozenset()
# Statuses no collation compares equal to "invited" (the invitations query's filter).
_SETTLED: Final = frozenset({"active", "inactive"})


class Rows(Protocol):
    def __call__(self, name: str, **params: Any) -> Sequence[Sequence[Any]]:
        """The rows of the named query (one of QUERIES) with these parameters."""
        ...

    def stream(self, name: str, size: int, **params: Any) -> Iterator[Sequence[Sequence[Any]]]:
        """The same rows, `size` at a time: a reader that keeps little of each row (the users
        of a plan) never holds them all as Python objects at once."""
        ...


# Rows of the users and their assignments built at once (Rows.stream): at 100,000 users, all
# of them together were 75 MB that the plan kept until its end, for nothing.
STREAM_BATCH: Final = 2000


def organization_slugs(rows: Rows) -> list[str]:
    return [str(slug) for (slug,) in rows("organization_slugs")]


def organization(rows: Rows, slug: str) -> tuple[int, state.Organization]:
    """The organization's id and row; NotFound naming the slug (and what exists) when absent."""
    found = rows("organization", slug=slug)
    if not found:
        known = organization_slugs(rows)
        hint = (
            f"; it holds {', '.join(known)}" if known else "; it holds none yet: run `userctl init`"
        )
        raise NotFound(f"organization {slug!r} does not exist in this database{hint}")
    org_id, slug_, name, two_factor_policy, min_admins, four_eyes, serial = found[0]
    return int(org_id), state.Organization(
        slug=slug_,
        name=name,
        two_factor_policy=two_factor_policy,
        min_admins=int(min_admins),
        four_eyes=bool(four_eyes),
        serial=int(serial),
    )


def roles(rows: Rows, org_id: int) -> dict[str, state.Role]:
    """Every role of the organization by name."""
    return roles_from(rows("roles", org_id=org_id), rows("role_permissions", org_id=org_id))


def roles_from(
    role_rows: Sequence[Sequence[Any]], permission_rows: Sequence[Sequence[Any]]
) -> dict[str, state.Role]:
    """Roles from (id, name, description) rows and their (role_id, permission) rows."""
    permissions: defaultdict[int, set[str]] = defaultdict(set)
    for role_id, permission in permission_rows:
        permissions[role_id].add(permission)
    return {
        name: state.Role(
            name=name,
            description=description or "",
            permissions=frozenset(permissions.get(role_id, ())),
        )
        for role_id, name, description in role_rows
    }


def bank_accounts(rows: Rows, org_id: int) -> dict[str, state.BankAccount]:
    return {
        key: state.BankAccount(key, bank, account_type, masked, currency)
        for key, bank, account_type, masked, currency in rows("bank_accounts", org_id=org_id)
    }


def policies(rows: Rows, org_id: int) -> dict[state.PolicyKey, state.PolicyValue]:
    return {
        (rule, name): json.loads(value) for rule, name, value in rows("policies", org_id=org_id)
    }


def case_duplicates(rows: Rows, org_id: int) -> tuple[tuple[str, ...], ...]:
    """Every group of stored emails of the organization that differ only by case, each sorted."""
    groups: dict[str, list[str]] = {}
    for (email,) in rows("case_duplicates", org_id=org_id):
        groups.setdefault(state.email_key(email), []).append(str(email))
    return tuple(tuple(sorted(g)) for _, g in sorted(groups.items()))


def live_state(
    rows: Rows, slug: str, like: Mapping[str, state.User] | None = None
) -> state.LiveState:
    """The organization `slug` as the plan sees it; `like`: see `users_keyed`."""
    org_id, org = organization(rows, slug)
    with gc_paused():
        users, duplicates = users_keyed(
            chain.from_iterable(rows.stream("users", STREAM_BATCH, org_id=org_id)),
            chain.from_iterable(rows.stream("user_bank_accounts", STREAM_BATCH, org_id=org_id)),
            like,
        )
        return state.LiveState(
            organization=org,
            roles=roles(rows, org_id),
            users=users,
            bank_accounts=bank_accounts(rows, org_id),
            policies=policies(rows, org_id),
            case_duplicates=duplicates,
        )


def users_keyed(
    user_rows: Iterable[Sequence[Any]],
    account_rows: Iterable[Sequence[Any]],
    like: Mapping[str, state.User] | None = None,
) -> tuple[dict[str, state.User], tuple[tuple[str, ...], ...]]:
    """Users keyed by lower-case email, from rows of `snapshot.user_query` and their (user_id,
    bank account key) rows; and every group of stored emails that differ only by case
    (state.LiveState.users says how they are keyed). A row equal in every field to the User
    `like` holds under its key is that very object: a plan's file and database agree on nearly
    every user, which is then built once, not twice (and the planner sees the two are the same
    without comparing them)."""
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
        key = row[1].lower()
        held = same(key) if same is not None else None
        # Whether the row holds exactly `held`, field by field as user_from_row would build it
        # (inline: a call per row costs a tenth of the loop).
        expires = row[12]
        if (
            held is not None
            and key == held.email
            and row[2] == held.first_name
            and row[3] == held.last_name
            and row[4] == held.id_type
            and row[5] == held.id_number
            and row[6] == held.phone
            and row[7] == held.role
            and row[8] == held.status
            and row[9] == held.two_factor
            and bool(row[10]) == held.force_password_reset
            and bool(row[11]) == held.totp_enrolled
            and (keys_ or _NO_ACCOUNTS) == held.bank_accounts
            and (expires if expires is None or expires.__class__ is str else expires.isoformat())
            == held.expires
        ):
            user = held
        else:
            user = user_from_row(row, frozenset(keys_) if keys_ else _NO_ACCOUNTS)
        # The User's own string as the key, not `key`: 100,000 of those kept would be 7 MB.
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


def user_from_row(row: Sequence[Any], accounts: frozenset[str]) -> state.User:
    """A row of `snapshot.user_query` as a User. Positional, in `state.USER_FIELDS` order: this
    runs for every user, and a keyword call with a dict per user costs a third more."""
    expires = row[12]
    return state.build_user(
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


# --- hygiene ------------------------------------------------------------------------------------


def review_settings(found: Mapping[state.PolicyKey, state.PolicyValue]) -> ReviewSettings:
    """The organization's `max_inactive_days`, `review_every_days` and which hygiene findings
    block, from its stored policies: a declared `max_inactive_days` is a rule, so a dormant user
    left active blocks the plan; undeclared, the PCI defaults only inform."""
    inactive, review = (
        found.get(("max_inactive_days", "")),
        found.get(("review_every_days", "")),
    )
    defaults = ReviewSettings()
    return ReviewSettings(
        max_inactive_days=inactive
        if isinstance(inactive, int) and not isinstance(inactive, bool)
        else defaults.max_inactive_days,
        review_every_days=review
        if isinstance(review, int) and not isinstance(review, bool)
        else defaults.review_every_days,
        blocking=frozenset({DORMANT}) if inactive is not None else frozenset(),
    )


def instant(value: Any) -> dt.datetime:
    """A stored instant as a datetime: the raw SQLite driver gives the text SQLAlchemy wrote."""
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def account_from_row(
    row: Sequence[Any],
    keys: Mapping[str, str],
    role_names: Mapping[int, str],
    all_roles: Mapping[str, state.Role],
) -> Account:
    """A (email, status, role_id, totp_enrolled, created_at, last_login_at, two_factor) row as
    hygiene's Account, keyed as the live state keys it (`keys`: its case duplicates)."""
    email, status, role_id, enrolled, created_at, last_login_at, two_factor = row
    role = role_names[int(role_id)]
    return Account(
        keys.get(email) or state.email_key(email),
        status,
        role,
        all_roles[role].permissions,
        bool(enrolled),
        instant(created_at),
        None if last_login_at is None else instant(last_login_at),
        str(two_factor),
    )


def invitations(rows: Rows, org_id: int, keys: Mapping[str, str]) -> tuple[Invitation, ...]:
    """The latest invitation of every user still invited, sent and with an expiry."""
    return tuple(
        Invitation(keys.get(email) or state.email_key(email), instant(expires_at))
        for email, expires_at in rows("invitations", org_id=org_id)
    )


def identity_keys(duplicates: Sequence[Sequence[str]]) -> dict[str, str]:
    """Stored email -> its key in the live state, for the rows that share an identity."""
    keys: dict[str, str] = {}
    for group in duplicates:
        keys.update(state.identity_keys(group))
    return keys


def hygiene(
    rows: Rows, live: state.LiveState, now: dt.datetime
) -> tuple[HygieneFacts, ReviewSettings]:
    """What a plan's hygiene findings need, in the plan's read transaction. The planner's
    snapshot `live` already says who holds a privileged role without an authenticator; only the
    dormant candidates are read (filtered by the database: a plan of 100k users reads the few)."""
    org_id = organization(rows, live.organization.slug)[0]
    settings = review_settings(policies(rows, org_id))
    role_rows = rows("roles", org_id=org_id)
    all_roles = roles_from(role_rows, rows("role_permissions", org_id=org_id))
    role_names = {int(i): name for i, name, _ in role_rows}
    # Keyed as the live state keys them: rows of one identity stay apart, each seen. The groups
    # are the snapshot's own, read in this transaction (querying them again is an aggregate over
    # every user: a tenth of a second at 100k on SQLite).
    keys = identity_keys(live.case_duplicates)
    cutoff = dormant_cutoff(settings, now)
    dormant = tuple(
        account_from_row(row, keys, role_names, all_roles)
        for row in rows("dormant", org_id=org_id, cutoff=cutoff)
    )
    known = {a.email for a in dormant}
    moment = naive_utc(now)
    # Not dormant (they are not among the candidates): their creation is taken as now. Known by
    # email only: a plan shows ten of them, and only those become Accounts.
    privileged_roles = {name for name, role in live.roles.items() if privileged(role.permissions)}
    users = live.users

    def account(email: str) -> Account:
        u = users[email]
        permissions = live.roles[u.role].permissions
        return Account(email, u.status, u.role, permissions, False, moment, two_factor=u.two_factor)

    # Only a user still invited has an invitation to find, and the snapshot holds every user's
    # status: in an established organization nobody is, and the query (an aggregate over every
    # notification ever sent, one per user created) is skipped. Any status but the two settled
    # ones runs it, so that the database's own comparison still decides. One visit per user
    # for both.
    unenrolled: list[str] = []
    pending = False
    for email, u in users.items():
        status = u.status
        if status == "active":
            if u.role in privileged_roles and not u.totp_enrolled and email not in known:
                unenrolled.append(email)
        elif status not in _SETTLED:
            pending = True
    return (
        HygieneFacts(
            dormant,
            invitations(rows, org_id, keys) if pending else (),
            unenrolled=Unenrolled(unenrolled, account),
        ),
        settings,
    )
