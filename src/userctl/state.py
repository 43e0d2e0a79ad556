"""Plain, frozen types shared by the loader, the snapshot reader, the planner and apply.

The desired state (from YAML) and the live state (from the database) are expressed in the same
types so that the planner compares like with like. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final, Mapping

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
ID_TYPES: Final[tuple[str, ...]] = ("CC", "CE", "NIT", "PP", "TI", "DNI")
DESIRED_STATUSES: Final[tuple[str, ...]] = ("active", "inactive")
LIVE_STATUSES: Final[tuple[str, ...]] = ("invited", "active", "inactive")
TWO_FACTOR: Final[tuple[str, ...]] = ("required", "optional", "disabled")
TWO_FACTOR_POLICIES: Final[tuple[str, ...]] = ("destructive", "all")

# Fields fixed at creation: the platform treats them as the user's identity documents.
IMMUTABLE_USER_FIELDS: Final[tuple[str, ...]] = ("id_type", "id_number", "phone")


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


@dataclass(frozen=True, slots=True)
class DesiredState:
    """One organization's desired state, as declared in one file or a directory of files."""

    organization: str
    roles: Mapping[str, Role]
    users: Mapping[str, User]  # keyed by lower-case email
    # ("roles", name) / ("users", email) -> the file that declares it; lets errors found later
    # (by the planner) be traced back to FILE:LINE:COL without the planner doing any I/O.
    origins: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LiveState:
    """One organization as read from the database."""

    organization: Organization
    roles: Mapping[str, Role]
    users: Mapping[str, User]  # keyed by lower-case email
    bank_accounts: Mapping[str, BankAccount]


def role_record(role: Role) -> dict[str, Any]:
    return {
        "name": role.name,
        "description": role.description,
        "permissions": sorted(role.permissions),
    }


def user_record(user: User, *, live: bool = True) -> dict[str, Any]:
    """The user as plain data. `live=False` leaves out what only the platform sets."""
    record: dict[str, Any] = {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "id_type": user.id_type,
        "id_number": user.id_number,
        "phone": user.phone,
        "role": user.role,
        "status": user.status,
        "two_factor": user.two_factor,
        "force_password_reset": user.force_password_reset,
        "bank_accounts": sorted(user.bank_accounts),
    }
    if live:
        record["totp_enrolled"] = user.totp_enrolled
    return record


def canonical_json(data: Any) -> str:
    """The one canonical encoding used for hashes and digests: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any] | None) -> str:
    """Precondition token of a live row: a hash of its record, or "absent"."""
    if record is None:
        return "absent"
    return "sha256:" + hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()
