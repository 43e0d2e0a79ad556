"""Plain, frozen types shared by the loader, the snapshot reader, the planner and apply.

The desired state (from YAML) and the live state (from the database) are expressed in the same
types so that the planner compares like with like. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Final, Iterable, Literal, Mapping, TypedDict, cast

from userctl.canonical import canonical_bytes

# Imported from here across the code (and by the benchmark): the one encoder, re-exported.
from userctl.canonical import canonical_json as canonical_json
from userctl.names import email_problem, mixed_scripts, text_problem

PERMISSIONS: Final[tuple[str, ...]] = (
    "users.view",
    "users.add",
    "users.manage",
    "roles.manage",
    "payouts.view",
    "payouts.create",
    "payouts.approve",
    "bank_accounts.view",
    "bank_accounts.manage",
    "customers.view",
    "calls.access",
    "company_settings.manage",
    "travel_rule.view",
    "biopay.attempts.view",
    "biopay.settings.view",
    "audit.view",
)
# Permissions that move money, manage people or configure the account (DESIGN §3): granting one,
# to a user or to a role everyone holding it, needs 2FA like a destructive change.
PRIVILEGED_PERMISSIONS: Final[frozenset[str]] = frozenset(
    {
        "users.add",
        "users.manage",
        "roles.manage",
        "payouts.create",
        "payouts.approve",
        "bank_accounts.manage",
        "company_settings.manage",
    }
)
ID_TYPES: Final[tuple[str, ...]] = ("CC", "CE", "NIT", "PP", "TI", "DNI")
DESIRED_STATUSES: Final[tuple[str, ...]] = ("active", "inactive")
LIVE_STATUSES: Final[tuple[str, ...]] = ("invited", "active", "inactive")
TWO_FACTOR: Final[tuple[str, ...]] = ("required", "optional", "disabled")
TWO_FACTOR_POLICIES: Final[tuple[str, ...]] = ("destructive", "all")

# Fields fixed at creation: the platform treats them as the user's identity documents.
IMMUTABLE_USER_FIELDS: Final[tuple[str, ...]] = ("id_type", "id_number", "phone")

# What the platform's stored strings may hold (DESIGN §2: every value fits the database column it
# goes to, one declared limit per field). A value the loader accepts must never be refused by the
# database: the desired-state schema and the columns were two lists of numbers kept equal by hand,
# and nothing bounded what the database derives from them (an audit address quotes a name).
Charset = Literal["text", "ascii"]


@dataclass(frozen=True, slots=True)
class Limit:
    """The one declaration of a string column: db/tables.py sizes the column VARCHAR(max_length)
    from it, and userctl.schema.json bounds the value the file gives it (tests hold the schema's
    maxLength, pattern and enum to it), so the loader refuses a longer value at FILE:LINE:COL
    rather than the database at apply. Lengths count characters (code points), as JSON Schema's
    maxLength and VARCHAR(n) on PostgreSQL and on MariaDB in utf8mb4 all do."""

    # The column's width. The schema's maxLength equals it; a pattern or a closed set of values
    # may admit only shorter values (the column keeps room for the platform's).
    max_length: int
    # "text": any character but control and format ones, in NFC (desired/characters.py refuses
    # the rest in every string of a file); "ascii": ASCII only (an email: a look-alike address is
    # a second identity).
    charset: Charset = "text"
    # What the whole value must match, spelt as the schema spells it (ECMA-262, which Python reads
    # the same for these).
    pattern: str | None = None
    # The values a closed field may take (what the platform may write, when it writes more than a
    # file may declare: users.status).
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        too_long = [v for v in self.values if len(v) > self.max_length]
        if too_long:
            raise ValueError(
                f"values wider than their column ({self.max_length} characters): {too_long}"
            )


SLUG_PATTERN: Final = "^[a-z0-9][a-z0-9-]{1,62}$"  # a DNS label: 63 characters at most
EMAIL_PATTERN: Final = (
    "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    "@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}$"
)
ID_NUMBER_PATTERN: Final = "^[A-Za-z0-9]{4,20}$"
PHONE_PATTERN: Final = "^\\+[0-9]{8,15}$"  # E.164
NAME_PATTERN: Final = "\\S"  # not only spaces

# "table.column" -> its limit, for every string column of the tables the platform shares (DESIGN
# §1b). The bookkeeping tables take theirs from these where they hold the same thing (an email).
LIMITS: Final[Mapping[str, Limit]] = {
    "organizations.slug": Limit(100, "ascii", SLUG_PATTERN),
    "organizations.name": Limit(200),
    "organizations.two_factor_policy": Limit(20, "ascii", values=TWO_FACTOR_POLICIES),
    "roles.name": Limit(100),
    "roles.description": Limit(500),
    "role_permissions.permission": Limit(64, "ascii", values=PERMISSIONS),
    "users.email": Limit(254, "ascii", EMAIL_PATTERN),  # RFC 5321's longest path, less its brackets
    "users.id_type": Limit(8, "ascii", values=ID_TYPES),
    "users.id_number": Limit(20, "ascii", ID_NUMBER_PATTERN),
    "users.phone": Limit(16, "ascii", PHONE_PATTERN),
    "users.first_name": Limit(100, pattern=NAME_PATTERN),
    "users.last_name": Limit(100, pattern=NAME_PATTERN),
    "users.status": Limit(16, "ascii", values=LIVE_STATUSES),
    "users.two_factor": Limit(16, "ascii", values=TWO_FACTOR),
    "bank_accounts.key": Limit(100),
    "bank_accounts.bank": Limit(100),
    "bank_accounts.account_type": Limit(32),
    "bank_accounts.masked_number": Limit(32),
    "bank_accounts.currency": Limit(3, "ascii"),  # ISO 4217
}


# The names a reviewer compares by eye: refused when they mix look-alike scripts (as the loader
# does).
NAME_COLUMNS: Final = frozenset(
    {"roles.name", "users.first_name", "users.last_name", "bank_accounts.key"}
)


def limit_problem(column: str, value: object) -> str | None:
    """Why `value` cannot be stored in `column` ("table.column" of LIMITS), or None. The loader
    enforces the same rules through the schema and desired/characters.py; this is for values that
    come from anywhere else (a saved plan, which apply never trusts)."""
    limit = LIMITS[column]
    if not isinstance(value, str):
        return f"{column} must be text, not {type(value).__name__}"
    problem = character_problem(column, value)
    if problem is not None:
        return f"{column} {problem}"
    if limit.pattern is not None and re.search(limit.pattern, value) is None:
        return f"{column} does not match {limit.pattern}"
    if limit.values and value not in limit.values:
        return f"{column} is not one of {', '.join(limit.values)}"
    return None


def character_problem(column: str, value: str) -> str | None:
    """Why the text `value` cannot be stored in `column` for its length or its characters, or
    None: the part of limit_problem that holds for any text given to userctl (a CSV field too,
    whose own command judges its format)."""
    limit = LIMITS[column]
    if len(value) > limit.max_length:
        return f"is {len(value)} characters, more than the {limit.max_length} it holds"
    # The loader's own character rules (userctl.names), so a value is judged alike wherever it came
    # from.
    if column == "users.email":
        return email_problem(value)
    return (
        text_problem(value)
        or ("must be ASCII" if limit.charset == "ascii" and not value.isascii() else None)
        or (mixed_scripts(value) if column in NAME_COLUMNS and not value.isascii() else None)
    )


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    description: str = ""
    permissions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class User:
    email: str  # always lower-case: the identity, compared case-insensitively
    first_name: str
    last_name: str
    id_type: str
    id_number: str
    phone: str
    role: str
    status: str = "active"
    two_factor: str = "optional"
    force_password_reset: bool = False
    bank_accounts: frozenset[str] = frozenset()
    # Live only: set by the platform when the user enrols an authenticator.
    totp_enrolled: bool = False
    # The last day the user may log in (ISO YYYY-MM-DD, UTC); the plan deactivates them after it.
    expires: str | None = None


class _UserBeingBuilt:
    """A User's very slots, set by plain stores: a frozen dataclass sets each field through
    object.__setattr__, and at 100,000 users (the loader, the snapshot) that is six times the cost
    of building one. Once set, the object becomes a User (`__class__` assignment, allowed between
    classes of one slot layout): from then on it is frozen, equal and hashed as any other User.
    tests/core/test_state_build.py holds the slots and the order of arguments to User's."""

    __slots__ = User.__slots__

    def __init__(
        self,
        email: str,
        first_name: str,
        last_name: str,
        id_type: str,
        id_number: str,
        phone: str,
        role: str,
        status: str,
        two_factor: str,
        force_password_reset: bool,
        bank_accounts: frozenset[str],
        totp_enrolled: bool,
        expires: str | None,
    ) -> None:
        self.email = email
        self.first_name = first_name
        self.last_name = last_name
        self.id_type = id_type
        self.id_number = id_number
        self.phone = phone
        self.role = role
        self.status = status
        self.two_factor = two_factor
        self.force_password_reset = force_password_reset
        self.bank_accounts = bank_accounts
        self.totp_enrolled = totp_enrolled
        self.expires = expires
        self.__class__ = User  # type: ignore[assignment]


# User(...) with every field given, in field order, for the loops that build one per user.
build_user: Final = cast(
    "Callable[[str, str, str, str, str, str, str, str, str, bool, frozenset[str], bool, "
    "str | None], User]",
    _UserBeingBuilt,
)


@dataclass(frozen=True, slots=True)
class BankAccount:
    key: str
    bank: str
    account_type: str
    masked_number: str
    currency: str


@dataclass(frozen=True, slots=True)
class Organization:
    slug: str
    name: str
    two_factor_policy: str = "destructive"
    min_admins: int = 1
    four_eyes: bool = False
    serial: int = 0


# The gate's own settings (DESIGN §3): policies of the file like the others, stored in the
# organization's columns of the same names. Each always has a value in force, so a file that omits
# one keeps it (it is never removed).
GATE_RULES: Final[tuple[str, ...]] = ("two_factor_policy", "four_eyes", "min_admins")
# What is in force where a rule is not declared (DESIGN §1 "Policies": a default is a value). The
# dormancy limit (PCI DSS 8.2.6) and the review interval (PCI DSS 7.2.4: six months).
POLICY_DEFAULTS: Final[Mapping[str, int]] = {"max_inactive_days": 90, "review_every_days": 182}
# Rules whose declaration enforces what their default only reports: a declared max_inactive_days
# makes a dormant user block a plan, so removing the declaration loosens it whatever its value.
ENFORCED_WHEN_DECLARED: Final[frozenset[str]] = frozenset({"max_inactive_days"})

# The access policies an organization may declare (its `policies:` section), each stored as rows
# keyed (rule, name): `name` is a rule's entry (a separation-of-duties set, a permission of
# max_holders) or "" for the rules that hold one value.
POLICY_RULES: Final[tuple[str, ...]] = (
    "separation_of_duties",
    "require_two_factor",
    "max_holders",
    "forbid_shared_mailboxes",
    "require_reason",
    "max_inactive_days",
    "review_every_days",
    *GATE_RULES,
)
# The rules whose value is one mapping from an entry's name to its value.
KEYED_POLICY_RULES: Final[frozenset[str]] = frozenset({"separation_of_duties", "max_holders"})
PolicyKey = tuple[str, str]
# A policy's value: a sorted list of permissions, a number, whether a rule is on, or the 2FA policy.
PolicyValue = list[str] | int | bool | str
Policies = Mapping[PolicyKey, PolicyValue]


@dataclass(frozen=True, slots=True)
class DesiredState:
    """One organization's desired state, as declared in one file or a directory of files."""

    organization: str
    roles: Mapping[str, Role]
    users: Mapping[str, User]  # keyed by lower-case email
    # ("roles", name) / ("users", email) -> the file that declares it; lets errors found later
    # (by the planner) be traced back to FILE:LINE:COL without the planner doing any I/O.
    origins: Mapping[tuple[str, str], str] = field(default_factory=dict)
    policies: Policies = field(default_factory=dict)
    # Each file as messages name it -> "sha256:..." of the bytes loaded: a plan's provenance, not
    # part of what is declared (two files that declare the same state are equal).
    files: Mapping[str, str] = field(default_factory=dict, compare=False)


def email_key(email: str) -> str:
    """The identity an email names (DESIGN §8 invariant 6): its lower-cased form. Wherever an
    email from the database meets one from input, both sides are compared through this (in SQL,
    through users.email_key, which the database derives as lower(email))."""
    return email.lower()


def given_email(text: str) -> str:
    """The identity an email given on a command line or in a CSV names: surrounding blanks are
    not part of it (one rule for every option that names a person)."""
    return email_key(text.strip())


def identity_keys(group: Iterable[str]) -> dict[str, str]:
    """Stored email -> the key a live state holds it under, for rows whose emails differ only by
    case (one identity): the row stored exactly as the identity keeps it, else the first in sort
    order, and each other one keeps its stored email. A rule of the emails alone, so every reader
    keys the same rows alike, whatever order the database returned them in."""
    ordered = sorted(group, key=lambda e: (e != email_key(e), e))
    return {e: (email_key(e) if i == 0 else e) for i, e in enumerate(ordered)}


@dataclass(frozen=True, slots=True)
class LiveState:
    """One organization as read from the database."""

    organization: Organization
    roles: Mapping[str, Role]
    # Keyed by lower-case email. Where the platform wrote several rows of one identity (emails
    # differing only by case, possible on a database without migration 0007's index), one of
    # them holds the key and each other one is kept under its stored email, so that nothing that
    # counts users (policies, guards, reports) misses it; `case_duplicates` names them.
    users: Mapping[str, User]
    bank_accounts: Mapping[str, BankAccount]
    policies: Policies = field(default_factory=dict)
    # Each group of stored emails sharing one identity, sorted; a blocking finding while any.
    case_duplicates: tuple[tuple[str, ...], ...] = ()


# The user's fields, in record order: declared once, by the dataclass. The loader, the snapshot,
# the executor, export and the views derive theirs from it (the hot loops build users
# positionally, in this order; tests hold them to it).
USER_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(User))
# Columns of the `users` table with the same name as the field: `role` is stored as role_id,
# `bank_accounts` in a table of its own.
USER_COLUMNS: Final[tuple[str, ...]] = tuple(
    f for f in USER_FIELDS if f not in ("role", "bank_accounts")
)
# What the platform sets, never the file.
PLATFORM_USER_FIELDS: Final[tuple[str, ...]] = ("totp_enrolled",)
# What a desired-state file declares under a user's email, in the order export writes it.
DECLARED_USER_FIELDS: Final[tuple[str, ...]] = tuple(
    f for f in USER_FIELDS if f != "email" and f not in PLATFORM_USER_FIELDS
)


# The records a plan's changes carry as `before`/`after`, and audit events store: one TypedDict
# per kind, so that every reader (the executor, the simulation, risk) is checked by mypy on the
# field names it reads. They are plain dicts at run time: the saved plan's JSON and the audit text
# are these dicts as they are, each written by one function below and read back by its inverse.


class RoleFields(TypedDict):
    """A role change's record (`role_record` / `role_from_record`)."""

    name: str
    description: str
    permissions: list[str]  # sorted


class UserFields(TypedDict):
    """A user change's record (`user_fields` / `user_from_record`): the user without their bank
    accounts, which are assignment changes of their own. Keys: USER_FIELDS but bank_accounts."""

    email: str
    first_name: str
    last_name: str
    id_type: str
    id_number: str
    phone: str
    role: str
    status: str
    two_factor: str
    force_password_reset: bool
    totp_enrolled: bool
    expires: str | None


class AssignmentFields(TypedDict):
    """An assignment change's record (`assignment_record`)."""

    user: str  # the user's email (identity)
    bank_account: str  # the bank account's key


class PolicyFields(TypedDict):
    """A policy change's record (`policy_record`)."""

    rule: str
    name: str  # the rule's entry, "" for a rule of one value
    value: PolicyValue


class BankAccountFields(TypedDict):
    """A bank account as a precondition hashes it and `accounts import` audits it."""

    key: str
    bank: str
    account_type: str
    masked_number: str
    currency: str


# What a change's `before`/`after` holds, by its kind (plan.Change reads it as its kind's record).
ChangeRecord = RoleFields | UserFields | AssignmentFields | PolicyFields


def role_record(role: Role) -> RoleFields:
    return {
        "name": role.name,
        "description": role.description,
        "permissions": sorted(role.permissions),
    }


def role_from_record(record: RoleFields) -> Role:
    return Role(record["name"], record["description"], frozenset(record["permissions"]))


def user_fields(user: User) -> UserFields:
    """A user as user changes hold it: assignments are changes of their own."""
    # Built positionally from USER_FIELDS (the dataclass's order); a test holds UserFields' keys to
    # it.
    record = {name: getattr(user, name) for name in USER_FIELDS}
    del record["bank_accounts"]
    return cast(UserFields, record)


def user_record(user: User, *, live: bool = True) -> dict[str, Any]:
    """The whole user as plain data (what a precondition hashes). `live=False` leaves out what only
    the platform sets (the form `init` audits)."""
    record: dict[str, Any] = {name: getattr(user, name) for name in USER_FIELDS}
    record["bank_accounts"] = sorted(user.bank_accounts)
    if not live:
        for name in PLATFORM_USER_FIELDS:
            del record[name]
    return record


def user_from_record(record: UserFields) -> User:
    """The inverse of `user_fields` (and of `user_record`, whose bank accounts it keeps); a record
    without bank accounts takes User's default for them."""
    # By name through USER_FIELDS, as the record was built (a TypedDict is read by literal keys).
    fields_: Mapping[str, Any] = record
    values = {name: fields_[name] for name in USER_FIELDS if name in fields_}
    values["bank_accounts"] = frozenset(fields_.get("bank_accounts", ()))
    return User(**values)


def assignment_record(email: str, key: str) -> AssignmentFields:
    return {"user": email, "bank_account": key}


def policy_text(key: PolicyKey) -> str:
    """How a policy is named in addresses and messages: `rule`, or `rule.name` for an entry
    (rules hold no dot, so the first one splits them back)."""
    return f"{key[0]}.{key[1]}" if key[1] else key[0]


def policy_record(key: PolicyKey, value: PolicyValue) -> PolicyFields:
    return {
        "rule": key[0],
        "name": key[1],
        "value": sorted(value) if isinstance(value, list) else value,
    }


def gate_policies(org: Organization) -> dict[PolicyKey, PolicyValue]:
    """The gate settings in force in `org`, as the policies a file declares them."""
    return {
        ("two_factor_policy", ""): org.two_factor_policy,
        ("four_eyes", ""): org.four_eyes,
        ("min_admins", ""): org.min_admins,
    }


def with_gate(org: Organization, rule: str, value: PolicyValue) -> Organization:
    """`org` with the gate setting `rule` set to `value`."""
    if rule == "two_factor_policy" and isinstance(value, str):
        return replace(org, two_factor_policy=value)
    if rule == "four_eyes" and isinstance(value, bool):
        return replace(org, four_eyes=value)
    if rule == "min_admins" and isinstance(value, int) and not isinstance(value, bool):
        return replace(org, min_admins=value)
    raise ValueError(f"{rule} cannot hold {value!r}")


def bank_account_record(account: BankAccount) -> BankAccountFields:
    return cast(
        BankAccountFields, {name.name: getattr(account, name.name) for name in fields(BankAccount)}
    )


def organization_settings(org: Organization) -> dict[str, Any]:
    """What of the organization row a plan relies on (its serial moves with every apply)."""
    return {
        "two_factor_policy": org.two_factor_policy,
        "min_admins": org.min_admins,
        "four_eyes": org.four_eyes,
    }


def record_hash(record: Mapping[str, Any] | None) -> str:
    """Precondition token of a live row: a hash of its record, or "absent"."""
    if record is None:
        return "absent"
    return "sha256:" + hashlib.sha256(canonical_bytes(record)).hexdigest()


# What a plan can depend on: the rows it writes, the roles and bank accounts it relies on, and
# the organization's settings.
FingerprintKind = Literal["user", "role", "bank_account", "organization", "policy"]


def live_record(live: LiveState, kind: FingerprintKind, key: str) -> Mapping[str, Any] | None:
    """The record of one row of `live`, or None when it is absent."""
    if kind == "user":
        user = live.users.get(key)
        return user_record(user) if user is not None else None
    if kind == "role":
        role = live.roles.get(key)
        return role_record(role) if role is not None else None
    if kind == "bank_account":
        account = live.bank_accounts.get(key)
        return bank_account_record(account) if account is not None else None
    if kind == "policy":
        rule, _, name = key.partition(".")  # policy_text's inverse
        value = (
            gate_policies(live.organization).get((rule, name))
            if rule in GATE_RULES
            else live.policies.get((rule, name))
        )
        return policy_record((rule, name), value) if value is not None else None
    return organization_settings(live.organization) if key == live.organization.slug else None


def fingerprint(live: LiveState, kind: FingerprintKind, key: str) -> str:
    """The one precondition hash: the planner records it, apply compares it on the locked rows.
    Both call this, so they cannot drift apart and make every plan stale."""
    return record_hash(live_record(live, kind, key))
