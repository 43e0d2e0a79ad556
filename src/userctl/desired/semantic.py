"""The rules that span entries, run after the schema over every file of a desired state:
one organization; each role and user declared once (emails compared case-insensitively, role
names after NFC and case folding); roles referenced by users exist, spelt exactly as declared;
`id_type`+`id_number` unique; a bank account listed once per user (keys compared after NFC and
case folding); no bank accounts for a user declared inactive.

Names that fold equal are one name: "Admin" and "admin" read as the same role to a reviewer, who
would approve a grant of one believing it the other; two such roles are one too many.

The documents may hold schema errors (every problem is reported at once), so each rule looks
only at values of the type it expects and leaves the rest to the schema's messages.
"""

from __future__ import annotations

import datetime as dt
import itertools
import unicodedata
from collections.abc import Iterator, Mapping, Sequence, ValuesView
from dataclasses import MISSING, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, Protocol

from userctl.errors import Path, Problem, did_you_mean, first_few
from userctl.state import User, build_user


class Locator(Protocol):
    def __call__(self, file: str, path: Path, *, key: bool = False) -> tuple[int, int]: ...


Document = tuple[str, Mapping[str, Any]]  # (file as shown, parsed top-level mapping)

# What an absent optional user field means: User's own defaults, named once for the hot loop of
# _check_users (tests keep them equal to the schema's).
_USER_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclass_fields(User) if f.default is not MISSING
}
_DEFAULT_STATUS: str = _USER_DEFAULTS["status"]
_DEFAULT_TWO_FACTOR: str = _USER_DEFAULTS["two_factor"]
_DEFAULT_FORCE_PASSWORD_RESET: bool = _USER_DEFAULTS["force_password_reset"]
_NO_ACCOUNTS: frozenset[str] = _USER_DEFAULTS["bank_accounts"]


@dataclass(slots=True)
class TypedUsers:
    """Each declared user as its typed User (keyed by lower-case email), and the file declaring
    it: filled by the check's own loop over the users (`check(..., typed=...)`), which reads
    every field the build needs already, so that a valid desired state is visited once, not
    once to check and once more to build. Only for documents the schema passed: the build reads
    the required fields without asking whether they are there. Meaningless when the check
    finds a problem (the loader raises it)."""

    users: dict[str, User] = field(default_factory=dict)
    # The file declaring each user: the only file, or by lower-case email where there are several
    # (one (kind, name) tuple per user would be 100,000 tuples more; `Origins` answers for them).
    only_file: str = ""
    files: dict[str, str] = field(default_factory=dict)


class Origins(Mapping[tuple[str, str], str]):
    """DesiredState.origins of a loaded state: ("roles", name) and ("policies", "") from
    `declared`, ("users", email) from the check's own record of where each user is (TypedUsers)."""

    def __init__(self, declared: Mapping[tuple[str, str], str], typed: TypedUsers) -> None:
        self._declared = declared
        self._typed = typed

    def __getitem__(self, key: tuple[str, str]) -> str:
        if len(key) == 2 and key[0] == "users" and key[1] in self._typed.users:
            return self._typed.files.get(key[1], self._typed.only_file)
        return self._declared[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from self._declared
        for email in self._typed.users:
            yield ("users", email)

    def __len__(self) -> int:
        return len(self._declared) + len(self._typed.users)

    def values(self) -> ValuesView[str]:
        return _OriginValues(self)


class _OriginValues(ValuesView[str]):
    """Origins' values without a lookup per user (loader.locate takes the set of them)."""

    _mapping: Origins

    def __iter__(self) -> Iterator[str]:
        yield from self._mapping._declared.values()
        typed = self._mapping._typed
        yield from typed.files.values() or itertools.repeat(typed.only_file, len(typed.users))


class _Report:
    def __init__(self, at: Locator) -> None:
        self.at = at
        self.problems: list[Problem] = []

    def __call__(self, file: str, path: Path, message: str, *, key: bool = False) -> None:
        line, col = self.at(file, path, key=key)
        self.problems.append(Problem(message, path, file, line, col))

    def place(self, here: str, file: str, path: Path, *, key: bool = True) -> str:
        """Where the other declaration is, as seen from a problem in file `here`."""
        line, _ = self.at(file, path, key=key)
        return f"line {line}" if file == here else f"{file}:{line}"


def check(
    documents: Sequence[Document],
    at: Locator,
    *,
    roles_known: bool = True,
    typed: TypedUsers | None = None,
) -> list[Problem]:
    """`roles_known=False`: some file of the desired state could not be parsed, so the roles it
    declares are unknown and references to roles go unchecked. Duplicates are still reported:
    two declarations found are two declarations, whatever a broken file holds. `typed`: filled
    with the users as typed Users (see TypedUsers; only for documents the schema passed)."""
    report = _Report(at)
    # A `roles:` that is not a mapping (the schema says so) declares roles nobody can read either.
    roles_known = roles_known and all(
        isinstance(doc.get("roles", {}), dict) for _, doc in documents
    )
    _check_organization(documents, report)
    _check_policies(documents, report)
    roles = _check_roles(documents, report)
    _check_users(documents, roles if roles_known else None, report, typed)
    return report.problems


def _check_organization(documents: Sequence[Document], report: _Report) -> None:
    first: tuple[str, str] | None = None
    for file, doc in documents:
        org = doc.get("organization")
        if not isinstance(org, str):
            continue
        if first is None:
            first = (file, org)
        elif org != first[1]:
            where = report.place(file, first[0], ("organization",), key=False)
            report(
                file,
                ("organization",),
                f"organization '{org}' differs from '{first[1]}' declared at {where}; "
                "the files of a directory must all declare the same organization",
            )


def _check_policies(documents: Sequence[Document], report: _Report) -> None:
    """One `policies:` section per desired state: two would have to be merged by some rule a
    reviewer cannot see."""
    first: str | None = None
    for file, doc in documents:
        if "policies" not in doc:
            continue
        if first is None:
            first = file
            continue
        where = report.place(file, first, ("policies",))
        report(
            file,
            ("policies",),
            f"policies are declared twice (also at {where}); declare them in one file",
            key=True,
        )


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def fold(name: str) -> str:
    """The form in which names that look alike are one name: NFC, then case folding (and NFC
    again, as folding may decompose a letter, e.g. U+01F0 into j and a combining caron)."""
    if name.isascii():
        return name.lower()  # the same as casefold() for ASCII, and several times faster
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _check_roles(documents: Sequence[Document], report: _Report) -> dict[str, str]:
    """Role name -> the file declaring it first."""
    declared: dict[str, str] = {}
    folded: dict[str, tuple[str, str]] = {}  # folded name -> (the name as first declared, its file)
    for file, doc in documents:
        roles = doc.get("roles")
        if not isinstance(roles, dict):
            continue
        for name in roles:
            path: Path = ("roles", name)
            first = declared.setdefault(name, file)
            if first != file:
                where = report.place(file, first, path)
                report(file, path, f"role '{name}' is declared twice (also at {where})", key=True)
                continue
            if name.__class__ is not str:
                continue  # the schema says what is wrong with it
            other, other_file = folded.setdefault(fold(name), (name, file))
            if other != name:
                where = report.place(file, other_file, ("roles", other))
                report(
                    file,
                    path,
                    f"'{name}' and '{other}' (at {where}) are the same role: role "
                    "names are compared ignoring case (after Unicode NFC "
                    "normalisation); rename one or remove it",
                    key=True,
                )
    return declared


def _check_users(
    documents: Sequence[Document],
    roles: Mapping[str, str] | None,
    report: _Report,
    typed: TypedUsers | None,
) -> None:
    if typed is not None and len(documents) == 1:
        typed.only_file = documents[0][0]
    if _users_pass(documents, roles, typed):
        return
    # The typed users are meaningless now (the loader raises the problems): none are left.
    if typed is not None:
        typed.users.clear()
        typed.files.clear()
    _report_users(documents, roles, report)


def _report_users(
    documents: Sequence[Document], roles: Mapping[str, str] | None, report: _Report
) -> None:
    """What is wrong with the users and where, when _users_pass found something is."""
    several = len(documents) > 1
    emails: dict[str, str] = {}  # lower-case email -> the email as first written
    email_files: dict[str, str] = {}  # lower-case email -> its file (when there are several)
    identities: dict[str, dict[str, str]] = {}  # id_type -> id_number -> email
    folded_roles: dict[str, str] | None = (
        None  # folded name -> declared name, built at the first unknown role
    )
    for file, doc in documents:
        users = doc.get("users")
        if not isinstance(users, dict):
            continue
        first_email = emails.setdefault
        for email, user in users.items():
            key = email.lower()
            # setdefault hands back this very key object when the email is new: each key of a
            # parsed document is its own string object, so identity tells "first seen" apart.
            first = first_email(key, email)
            if first is not email:
                _duplicate_user(file, email, email_files.get(key, file), first, report)
            elif several:
                email_files[key] = file
            if user.__class__ is not dict:
                continue
            get = user.get
            role: Any = get("role")
            # The type first: `role in roles` raises for a list or a mapping (the schema reports
            # those).
            if roles is not None and role.__class__ is str and role not in roles:
                if folded_roles is None:
                    folded_roles = {fold(name): name for name in roles if name.__class__ is str}
                report(
                    file,
                    ("users", email, "role"),
                    f"unknown role '{role}'{_known(role, roles, folded_roles)}",
                )
            id_number: Any = get("id_number")
            id_type: Any = get("id_type")
            if id_number.__class__ is str:
                # Per type, not keyed by (type, number): 100,000 tuples would be 6 MB more.
                per_type = identities.get(id_type) if id_type.__class__ is str else None
                if per_type is None and id_type.__class__ is str:
                    per_type = identities[id_type] = {}
                if per_type is not None:
                    holder = per_type.setdefault(id_number, email)
                    if holder is not email:
                        _duplicate_identity(
                            file, email, email_files.get(holder.lower(), file), holder, user, report
                        )
            accounts = get("bank_accounts")
            # _check_accounts finds nothing in one account of an active user (nearly every one).
            if (
                accounts
                and accounts.__class__ is list
                and (len(accounts) > 1 or get("status") == "inactive")
            ):
                _check_accounts(file, email, user, accounts, report)
            expires = get("expires")
            if _not_a_day(expires):
                report(
                    file,
                    ("users", email, "expires"),
                    f"expires {expires} is not a day of the calendar",
                )


def _users_pass(
    documents: Sequence[Document], roles: Mapping[str, str] | None, typed: TypedUsers | None
) -> bool:
    """Whether nothing is wrong with the users, and then `typed` filled with them. The one loop
    over every user of a valid desired state, written for speed (every load and validate of
    100,000 users runs it): it answers False exactly when _report_users has something to say
    (tests/desired/test_semantic_users_pass.py holds the two together), and leaves the saying to
    it. `typed`: see TypedUsers (only for documents the schema passed)."""
    built = typed.users if typed is not None else None
    numbers: set[str] = set()  # every id_number: none repeated, no identity is either
    add_number = numbers.add
    declared = unnumbered = 0  # users, and those the identity rule skips (no id_number string)
    for file, doc in documents:
        users = doc.get("users")
        if not isinstance(users, dict):
            continue
        declared += len(users)
        if typed is not None and len(documents) > 1:
            typed.files.update(dict.fromkeys([email.lower() for email in users], file))
        for email, user in users.items():
            if user.__class__ is not dict:
                unnumbered += 1
                continue
            get = user.get
            role: Any = get("role")
            if roles is not None and role.__class__ is str and role not in roles:
                return False
            id_number: Any = get("id_number")
            if id_number.__class__ is str:
                add_number(id_number)
            else:
                unnumbered += 1
            accounts = get("bank_accounts")
            status = get("status", _DEFAULT_STATUS)
            if (
                accounts
                and accounts.__class__ is list
                and (status == "inactive" or len(accounts) > 1 and not _distinct(accounts))
            ):
                return False
            expires = get("expires")
            if expires is not None and _not_a_day(expires):
                return False
            if built is None:
                continue
            # The typed build, every field positional to state.build_user. The schema has
            # passed, so the required fields are present and nothing else is; absent optional
            # ones take User's own defaults (tests keep those equal to the schema's, and keep
            # this list of fields equal to the schema's properties).
            key = email.lower()
            built[key] = build_user(
                key,
                user["first_name"],
                user["last_name"],
                user["id_type"],
                id_number,
                user["phone"],
                role,
                status,
                get("two_factor", _DEFAULT_TWO_FACTOR),
                get("force_password_reset", _DEFAULT_FORCE_PASSWORD_RESET),
                frozenset(accounts) if accounts else _NO_ACCOUNTS,
                False,
                expires,
            )
    if not _emails_distinct(documents, declared, built):
        return False
    return len(numbers) == declared - unnumbered or _identities_unique(documents)


def _not_a_day(expires: Any) -> bool:
    """What the schema's pattern lets through but the calendar has not: 2026-02-30."""
    return expires.__class__ is str and len(expires) == 10 and not _is_date(expires)


def _distinct(accounts: list[Any]) -> bool:
    """Whether _check_accounts finds no key listed twice in `accounts` (two or more)."""
    try:
        ascii_keys = "".join(accounts).isascii()
    except TypeError:  # a key that is not a string (the schema says so)
        ascii_keys = False
    if ascii_keys:  # fold() is lower() for ASCII
        return len(set(map(str.lower, accounts))) == len(accounts)
    keys = [a for a in accounts if a.__class__ is str]
    return len({fold(k) for k in keys}) == len(keys)


def _emails_distinct(
    documents: Sequence[Document], declared: int, built: Mapping[str, User] | None
) -> bool:
    """Whether no two of the `declared` emails lower-case alike (they would be one user)."""
    if built is not None and len(built) == declared:
        return True  # every user built, keyed by lower-case email
    users = documents[0][1].get("users") if len(documents) == 1 else None
    try:
        emails = "".join(users) if isinstance(users, dict) else None
    except TypeError:  # a key that is not a string (the schema says so)
        emails = None
    # The keys of one mapping are distinct: lower-case already, they are their own lower-case.
    if emails is not None and emails.lower() == emails:
        return True
    lowered = {
        email.lower()
        for _, doc in documents
        if isinstance(users := doc.get("users"), dict)
        for email in users
    }
    return len(lowered) == declared


def _identities_unique(documents: Sequence[Document]) -> bool:
    """Whether no two users hold one identity document: for a desired state where two users share
    an id_number, under different id_types or not."""
    identities: set[tuple[str, str]] = set()
    count = 0
    for _, doc in documents:
        users = doc.get("users")
        for user in users.values() if isinstance(users, dict) else ():
            if user.__class__ is dict:
                id_type, id_number = user.get("id_type"), user.get("id_number")
                if id_type.__class__ is str and id_number.__class__ is str:
                    identities.add((id_type, id_number))
                    count += 1
    return len(identities) == count


def _duplicate_identity(
    file: str, email: str, holder_file: str, holder: str, user: Mapping[str, Any], report: _Report
) -> None:
    where = report.place(file, holder_file, ("users", holder, "id_number"), key=False)
    report(
        file,
        ("users", email, "id_number"),
        f"id_type {user['id_type']} with id_number {user['id_number']} is already used by "
        f"'{holder}' (at {where}); an identity document belongs to one user",
    )


def _duplicate_user(file: str, email: str, first_file: str, first: str, report: _Report) -> None:
    where = report.place(file, first_file, ("users", first))
    if first == email:
        message = f"user '{email}' is declared twice (also at {where})"
    else:
        message = (
            f"'{email}' and '{first}' (at {where}) are the same user: emails "
            "are compared case-insensitively"
        )
    report(file, ("users", email), message, key=True)


def _check_accounts(
    file: str, email: str, user: Mapping[str, Any], accounts: list[Any], report: _Report
) -> None:
    path: Path = ("users", email, "bank_accounts")
    if user.get("status") == "inactive":
        report(
            file,
            path,
            "bank accounts can only be assigned to active users: this user is declared inactive; "
            "remove its bank_accounts or make it active",
        )
    if len(accounts) < 2:
        return  # nearly every user: nothing to compare
    keys = [a for a in accounts if a.__class__ is str]
    if len({fold(k) for k in keys}) == len(keys):
        return
    first_index: dict[str, int] = {}
    for i, key in enumerate(accounts):
        if key.__class__ is not str:
            continue
        first = first_index.setdefault(fold(key), i)
        if first != i:
            where = report.place(file, file, path + (first,), key=False)
            if accounts[first] == key:
                message = f"bank account '{key}' is listed twice (first at {where})"
            else:
                message = (
                    f"bank accounts '{key}' and '{accounts[first]}' (at {where}) are the same "
                    "account: keys are compared ignoring case (after Unicode NFC "
                    "normalisation); list it once"
                )
            report(file, path + (i,), message)


def _known(role: str, roles: Mapping[str, str], folded: Mapping[str, str]) -> str:
    """What to say after "unknown role": the declared role it matches but for case or Unicode
    form (the reference must be exact, as apply looks the role up by name), a close spelling,
    or the roles declared."""
    same = folded.get(fold(role))
    if same is not None:
        return f" (did you mean '{same}'? a role is referenced exactly as declared)"
    names = sorted(roles)
    close = did_you_mean(role, names)
    if close:
        return close
    if not names:
        return "; the desired state declares no roles"
    shown = first_few(names, 10)
    return f"; declared roles: {shown}"
