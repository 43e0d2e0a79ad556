"""The database contract (DESIGN §1b) as SQLAlchemy Core tables. The platform shares these
tables: names are public.

They are Core `Table`s, not ORM classes, so that the read path (`userctl plan`, the revision
check) never imports `sqlalchemy.orm`, whose import weighs on every plan (DESIGN §6).
`userctl.db.models` maps its classes onto these very tables for everything else.

Schema changes go through Alembic migrations in `migrations/versions/`, never `create_all`.
Times are naive UTC everywhere (SQLite and MariaDB keep no zone).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from userctl.clock import utcnow
from userctl.plan import (
    assignment_address,
    bank_account_address,
    organization_address,
    role_address,
    user_address,
)
from userctl.state import LIMITS

# Deterministic constraint names so migrations are identical on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _org_fk(ondelete: str | None = "CASCADE") -> Column[int]:
    return Column(
        "organization_id",
        ForeignKey("organizations.id", ondelete=ondelete),
        nullable=False,
        index=True,
    )


def _width(column: str) -> int:
    """The declared width of `column` ("table.column"): state.LIMITS, which the desired-state
    schema is held to as well."""
    return LIMITS[column].max_length


def _declared(table: str, name: str, **options: Any) -> Column[str]:
    """A string column as wide as its declaration in state.LIMITS."""
    return Column(name, String(_width(f"{table}.{name}")), **options)


# MariaDB compares strings in the database's collation, and its defaults (utf8mb4_general_ci,
# utf8mb4_unicode_ci) take "Admin" and "admin", "Émile" and "Emile", "ops" and "ops " and any two
# emoji for one string: two roles the file declares apart would collide on their unique key, and
# a lookup by name could find the other. Names that identify a row are compared as the loader,
# PostgreSQL and SQLite compare them: code point by code point, trailing spaces included
# (utf8mb4_nopad_bin; migration 0003 picks MySQL's equivalent there).
EXACT_COLLATION: Final = "utf8mb4_nopad_bin"


def _exact(table: str, name: str, **options: Any) -> Column[str]:
    """A declared string column that identifies a row, compared exactly on every backend."""
    width = _width(f"{table}.{name}")
    # A generic String with a collation, not mysql.VARCHAR: `userctl plan` on the other backends
    # would otherwise import the MySQL dialect for nothing.
    return Column(
        name,
        String(width).with_variant(String(width, collation=EXACT_COLLATION), "mysql", "mariadb"),
        **options,
    )


EMAIL_WIDTH: Final = _width("users.email")
# The character JSON quoting writes widest: a C0 control, as \u0000 (tests check every code point).
_WIDEST_CHARACTER: Final = "\x00"


def widest_address() -> int:
    """The longest address an audit event can name (the plan's role["…"], user["…"],
    assignment["…" -> "…"], the import's bank_account["…"], organization["…"]): every name as long
    as its column allows, made of the character its quoting writes widest. Not only what a valid
    file can hold (quotes and backslashes, which double: 474 characters for an assignment of the
    longest email and a key of 100 quotes): an unassignment or a deletion names a row the platform
    wrote, which the column alone bounds."""

    def worst(column: str) -> str:
        return _WIDEST_CHARACTER * _width(column)

    email, key = worst("users.email"), worst("bank_accounts.key")
    return max(
        len(address)
        for address in (
            organization_address(worst("organizations.slug")),
            role_address(worst("roles.name")),
            user_address(email),
            assignment_address(email, key),
            bank_account_address(key),
        )
    )


ADDRESS_WIDTH: Final = widest_address()


# Columns are NOT NULL unless they say otherwise, as the ORM's `Mapped[T]` made them.
organizations = Table(
    "organizations",
    metadata,
    Column("id", Integer, primary_key=True),
    _declared("organizations", "slug", nullable=False, unique=True),
    _declared("organizations", "name", nullable=False),
    _declared("organizations", "two_factor_policy", nullable=False, default="destructive"),
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
    _exact("roles", "name", nullable=False),
    _declared("roles", "description", nullable=False, default=""),
    UniqueConstraint("organization_id", "name", name="uq_roles_org_name"),
)

role_permissions = Table(
    "role_permissions",
    metadata,
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    _declared("role_permissions", "permission", primary_key=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    _declared("users", "email", nullable=False),  # stored lower-case
    _declared("users", "id_type", nullable=False),
    _declared("users", "id_number", nullable=False),
    _declared("users", "phone", nullable=False),
    _declared("users", "first_name", nullable=False),
    _declared("users", "last_name", nullable=False),
    Column("role_id", ForeignKey("roles.id"), nullable=False, index=True),
    _declared("users", "status", nullable=False, default="invited"),
    _declared("users", "two_factor", nullable=False, default="optional"),
    Column("totp_enrolled", Boolean, nullable=False, default=False),
    Column("force_password_reset", Boolean, nullable=False, default=False),
    # The user's last day of access (DESIGN §1b names the column expires_at); the field is
    # `expires`.
    Column("expires_at", Date, key="expires", nullable=True),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("updated_at", DateTime, nullable=False, default=utcnow, onupdate=utcnow),
    Column("last_login_at", DateTime, nullable=True),  # written by the platform (migration 0005)
    # The email's identity (DESIGN §8 invariant 6), derived by the database and never written: the
    # platform may store `View1@Hidden.co`, and two rows differing only by case would be two
    # holders of one identity. Every lookup by email compares this column (state.email_key on the
    # Python side), which the unique index below makes cheap on every backend (migration 0007).
    Column(
        "email_key",
        String(EMAIL_WIDTH).with_variant(
            String(EMAIL_WIDTH, collation=EXACT_COLLATION), "mysql", "mariadb"
        ),
        Computed("lower(email)"),
        nullable=True,
    ),
    UniqueConstraint("organization_id", "email", name="uq_users_org_email"),
    UniqueConstraint("organization_id", "id_type", "id_number", name="uq_users_org_identity"),
    Index("uq_users_org_email_key", "organization_id", "email_key", unique=True),
)

bank_accounts = Table(
    "bank_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    _exact("bank_accounts", "key", nullable=False),
    _declared("bank_accounts", "bank", nullable=False),
    _declared("bank_accounts", "account_type", nullable=False),
    _declared("bank_accounts", "masked_number", nullable=False),
    _declared("bank_accounts", "currency", nullable=False),
    UniqueConstraint("organization_id", "key", name="uq_bank_accounts_org_key"),
)

user_bank_accounts = Table(
    "user_bank_accounts",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "bank_account_id",
        ForeignKey("bank_accounts.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

# An organization's access policies (state.POLICY_RULES), one row per rule or rule entry; `name` is
# "" for the rules that hold one value. `value` is canonical JSON: a list, a number or a boolean.
policies = Table(
    "policies",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("rule", String(40), nullable=False),
    Column(
        "name",
        String(100).with_variant(String(100, collation=EXACT_COLLATION), "mysql", "mariadb"),
        nullable=False,
    ),
    Column("value", Text, nullable=False),
    UniqueConstraint("organization_id", "rule", "name", name="uq_policies_org_rule_name"),
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
    Column("operator", String(EMAIL_WIDTH), nullable=False),
    # How the change was confirmed: totp / approval:EMAIL / none / init, or two proofs joined by
    # "+" under four eyes: wide enough for two approvals by the longest emails (254 each).
    Column("verified_by", String(600), nullable=False),
    # Whether the named operator proved who they are with a code (NULL: written before 0002).
    Column("operator_verified", Boolean, nullable=True),
    Column("plan_digest", String(80), nullable=True),
    Column("action", String(40), nullable=False),
    Column("address", String(ADDRESS_WIDTH), nullable=False),  # computed by widest_address()
    Column("before", Text, nullable=True),  # canonical JSON
    Column("after", Text, nullable=True),  # canonical JSON
    Column("prev_hash", String(80), nullable=False),
    Column("hash", String(80), nullable=False),
    Column("hmac", String(80), nullable=True),
    # The plan's --reason (NULL: none given, or written before 0004), and the seq of the earlier
    # event this one follows from (an expiry's deactivation names the event that set the expiry).
    Column("reason", Text, nullable=True),
    Column("refers_to", Integer, nullable=True),
    UniqueConstraint("organization_id", "seq", name="uq_audit_events_org_seq"),
)

# Signed checkpoints (migration 0008): a signature over (organization, seq, chain head, time, key
# id) appended by every write when USERCTL_AUDIT_SIGNING_KEY is set. No unique key on seq: a
# replayed row must reach `audit verify --public-key` to be reported, not vanish in an error.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(ondelete=None),
    Column("seq", Integer, nullable=False),
    Column("head", String(80), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("key_id", String(80), nullable=False),
    Column("signature", Text, nullable=False),
    Index("ix_audit_checkpoints_org_seq", "organization_id", "seq"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("plan_digest", String(80), nullable=False, index=True),
    Column("approver_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("approver_email", String(EMAIL_WIDTH), nullable=False),
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
    Column("recipient", String(EMAIL_WIDTH), nullable=False),
    Column("kind", String(32), nullable=False, default="invitation"),
    Column("status", String(16), nullable=False, default="queued"),  # queued / sent / cancelled
    Column("token_hash", String(80), nullable=True),
    Column("expires_at", DateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(500), nullable=True),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("sent_at", DateTime, nullable=True),
    # Deleting a user sets its invitations' user_id to NULL: without this index each deleted
    # user's foreign-key action scans the whole outbox, and deleting many users is quadratic.
    Index("ix_notifications_user_id", "user_id"),
)
