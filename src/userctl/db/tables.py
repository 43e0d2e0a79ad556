"""The database contract (DESIGN §1b) as SQLAlchemy Core tables. The platform shares these
tables: names are public.

They are Core `Table`s, not ORM classes, so that the read path (`userctl plan`, the revision
check) never imports `sqlalchemy.orm`, which alone costs about a fifth of planning 10k users
(DESIGN §6). `userctl.db.models` maps its classes onto these very tables for everything else.

Schema changes go through Alembic migrations in `migrations/versions/`, never `create_all`.
Times are naive UTC everywhere (SQLite and MariaDB keep no zone).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from userctl.clock import utcnow

# Deterministic constraint names so migrations are identical on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _org_fk(ondelete: str | None = "CASCADE") -> Column[int]:
    return Column("organization_id", ForeignKey("organizations.id", ondelete=ondelete), nullable=False, index=True)


# Columns are NOT NULL unless they say otherwise, as the ORM's `Mapped[T]` made them.
organizations = Table(
    "organizations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("two_factor_policy", String(20), nullable=False, default="destructive"),
    Column("min_admins", Integer, nullable=False, default=1),
    Column("four_eyes", Boolean, nullable=False, default=False),
    Column("serial", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False, default=utcnow),
)

roles = Table(
    "roles",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("name", String(100), nullable=False),
    Column("description", String(500), nullable=False, default=""),
    UniqueConstraint("organization_id", "name", name="uq_roles_org_name"),
)

role_permissions = Table(
    "role_permissions",
    metadata,
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("permission", String(64), primary_key=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("email", String(254), nullable=False),  # stored lower-case
    Column("id_type", String(8), nullable=False),
    Column("id_number", String(20), nullable=False),
    Column("phone", String(16), nullable=False),
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("role_id", ForeignKey("roles.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False, default="invited"),
    Column("two_factor", String(16), nullable=False, default="optional"),
    Column("totp_enrolled", Boolean, nullable=False, default=False),
    Column("force_password_reset", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("updated_at", DateTime, nullable=False, default=utcnow, onupdate=utcnow),
    UniqueConstraint("organization_id", "email", name="uq_users_org_email"),
    UniqueConstraint("organization_id", "id_type", "id_number", name="uq_users_org_identity"),
)

bank_accounts = Table(
    "bank_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("key", String(100), nullable=False),
    Column("bank", String(100), nullable=False),
    Column("account_type", String(32), nullable=False),
    Column("masked_number", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    UniqueConstraint("organization_id", "key", name="uq_bank_accounts_org_key"),
)

user_bank_accounts = Table(
    "user_bank_accounts",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("bank_account_id", ForeignKey("bank_accounts.id", ondelete="CASCADE"), primary_key=True, index=True),
)

# An operator's authenticator secret, kept apart from `users` (encrypted when USERCTL_SECRET_KEY
# is set), with the wrong-code counter that drives the lockout.
totp_secrets = Table(
    "totp_secrets",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("secret", String(512), nullable=False),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", DateTime, nullable=True),
)

# One row per (operator, TOTP time step) used: the unique key makes replay impossible even across
# two processes racing with the same code.
otp_uses = Table(
    "otp_uses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("time_step", BigInteger, nullable=False),
    Column("used_at", DateTime, nullable=False, default=utcnow),
    UniqueConstraint("user_id", "time_step", name="uq_otp_uses_user_step"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(ondelete=None),
    Column("seq", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("operator", String(254), nullable=False),
    # How the change was confirmed: totp / approval:EMAIL / none / init, or two proofs joined by
    # "+" under four eyes: wide enough for two approvals by the longest emails (254 each).
    Column("verified_by", String(600), nullable=False),
    # Whether the named operator proved who they are with a code (NULL: written before 0002).
    Column("operator_verified", Boolean, nullable=True),
    Column("plan_digest", String(80), nullable=True),
    Column("action", String(40), nullable=False),
    Column("address", String(400), nullable=False),
    Column("before", Text, nullable=True),  # canonical JSON
    Column("after", Text, nullable=True),  # canonical JSON
    Column("prev_hash", String(80), nullable=False),
    Column("hash", String(80), nullable=False),
    Column("hmac", String(80), nullable=True),
    UniqueConstraint("organization_id", "seq", name="uq_audit_events_org_seq"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("plan_digest", String(80), nullable=False, index=True),
    Column("approver_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("approver_email", String(254), nullable=False),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("expires_at", DateTime, nullable=False),
    Column("used_at", DateTime, nullable=True),
)

# The invitation outbox. The token is generated when the email is sent and only its hash is
# kept, so nobody reading this table can use an invitation.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("recipient", String(254), nullable=False),
    Column("kind", String(32), nullable=False, default="invitation"),
    Column("status", String(16), nullable=False, default="queued"),  # queued / sent / cancelled
    Column("token_hash", String(80), nullable=True),
    Column("expires_at", DateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(500), nullable=True),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("sent_at", DateTime, nullable=True),
)
