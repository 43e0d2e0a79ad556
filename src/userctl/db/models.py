"""The database contract (DESIGN §1b) as ORM classes, for the code that writes: each class is
mapped onto the Core table of the same name in `userctl.db.tables`, which holds the one
definition (columns, constraints, defaults). Read paths that must start fast import `tables`
instead and never pay for `sqlalchemy.orm`.

Attributes carry `Mapped[...]` annotations for type checkers only: the columns come from the table.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import DeclarativeBase, Mapped

from userctl.db import tables
from userctl.db.tables import NAMING

__all__ = [
    "NAMING",
    "Base",
    "Organization",
    "Role",
    "RolePermission",
    "User",
    "Policy",
    "BankAccount",
    "UserBankAccount",
    "TotpSecret",
    "OtpUse",
    "AuditEvent",
    "Approval",
    "Notification",
]


class Base(DeclarativeBase):
    metadata = tables.metadata


class Organization(Base):
    __table__ = tables.organizations
    id: Mapped[int]
    slug: Mapped[str]
    name: Mapped[str]
    two_factor_policy: Mapped[str]
    min_admins: Mapped[int]
    four_eyes: Mapped[bool]
    serial: Mapped[int]
    created_at: Mapped[dt.datetime]


class Role(Base):
    __table__ = tables.roles
    id: Mapped[int]
    organization_id: Mapped[int]
    name: Mapped[str]
    description: Mapped[str]


class RolePermission(Base):
    __table__ = tables.role_permissions
    role_id: Mapped[int]
    permission: Mapped[str]


class User(Base):
    __table__ = tables.users
    id: Mapped[int]
    organization_id: Mapped[int]
    email: Mapped[str]  # stored lower-case
    id_type: Mapped[str]
    id_number: Mapped[str]
    phone: Mapped[str]
    first_name: Mapped[str]
    last_name: Mapped[str]
    role_id: Mapped[int]
    status: Mapped[str]
    two_factor: Mapped[str]
    totp_enrolled: Mapped[bool]
    force_password_reset: Mapped[bool]
    expires: Mapped[dt.date | None]  # column expires_at
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    last_login_at: Mapped[dt.datetime | None]
    email_key: Mapped[str]  # lower(email), derived by the database (migration 0007)


class Policy(Base):
    __table__ = tables.policies
    id: Mapped[int]
    organization_id: Mapped[int]
    rule: Mapped[str]
    name: Mapped[str]
    value: Mapped[str]  # canonical JSON


class BankAccount(Base):
    __table__ = tables.bank_accounts
    id: Mapped[int]
    organization_id: Mapped[int]
    key: Mapped[str]
    bank: Mapped[str]
    account_type: Mapped[str]
    masked_number: Mapped[str]
    currency: Mapped[str]


class UserBankAccount(Base):
    __table__ = tables.user_bank_accounts
    user_id: Mapped[int]
    bank_account_id: Mapped[int]


class TotpSecret(Base):
    """An operator's authenticator secret, kept apart from `users` (encrypted when
    USERCTL_SECRET_KEY is set), with the wrong-code counter that drives the lockout."""

    __table__ = tables.totp_secrets
    user_id: Mapped[int]
    secret: Mapped[str]
    created_at: Mapped[dt.datetime]
    failed_attempts: Mapped[int]
    locked_until: Mapped[dt.datetime | None]


class OtpUse(Base):
    """One row per (operator, TOTP time step) used: the unique key makes replay impossible even
    across two processes racing with the same code."""

    __table__ = tables.otp_uses
    id: Mapped[int]
    user_id: Mapped[int]
    time_step: Mapped[int]
    used_at: Mapped[dt.datetime]


class AuditEvent(Base):
    __table__ = tables.audit_events
    id: Mapped[int]
    organization_id: Mapped[int]
    seq: Mapped[int]
    created_at: Mapped[dt.datetime]
    operator: Mapped[str]
    verified_by: Mapped[str]  # totp / approval:EMAIL / none / init, or two proofs joined by "+"
    operator_verified: Mapped[bool | None]
    plan_digest: Mapped[str | None]
    action: Mapped[str]
    address: Mapped[str]
    before: Mapped[str | None]  # canonical JSON
    after: Mapped[str | None]  # canonical JSON
    prev_hash: Mapped[str]
    hash: Mapped[str]
    hmac: Mapped[str | None]
    reason: Mapped[str | None]
    refers_to: Mapped[int | None]


class Approval(Base):
    __table__ = tables.approvals
    id: Mapped[int]
    organization_id: Mapped[int]
    plan_digest: Mapped[str]
    approver_id: Mapped[int]
    approver_email: Mapped[str]
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class Notification(Base):
    """The invitation outbox. The token is generated when the email is sent and only its hash
    is kept, so nobody reading this table can use an invitation."""

    __table__ = tables.notifications
    id: Mapped[int]
    organization_id: Mapped[int]
    user_id: Mapped[int | None]
    recipient: Mapped[str]
    kind: Mapped[str]
    status: Mapped[str]  # queued / sent / cancelled
    token_hash: Mapped[str | None]
    expires_at: Mapped[dt.datetime | None]
    attempts: Mapped[int]
    last_error: Mapped[str | None]
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
