"""Identity is case-blind in the database too (DESIGN §8 invariant 6): users.email_key, derived
by the database as lower(email), unique per organization. The platform may store
`VIEW1@hidden.co` beside `view1@hidden.co`; the exact unique key on `email` let both in, and the
two rows were one identity with two sets of access.

One schema on every backend: MariaDB 10.11 has no expression index, so the lower-cased email is
a generated column everywhere (virtual on SQLite and MariaDB, stored on PostgreSQL, which has no
virtual ones before 18), and the unique index is on it. Lookups compare that column, which the
index serves on every backend.

Where rows already differ only by case the migration refuses before changing anything (MariaDB
commits DDL implicitly, so checking first is the only way to leave nothing half-done), naming
the organization and the emails: which account is the person's is for a human to decide.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

from userctl.errors import DatabaseError, first_few

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here, as a migration must be.
EMAIL_WIDTH = 254
INDEX = "uq_users_org_email_key"
# How many clashing identities the refusal names before it counts the rest.
SHOWN = 10


def _case_duplicates(conn: sa.Connection) -> list[tuple[str, list[str]]]:
    """(organization slug, its emails sharing one lower-cased form) for every such group."""
    rows = conn.execute(
        sa.text(
            "SELECT o.slug, u.email FROM users u "
            "JOIN organizations o ON o.id = u.organization_id "
            "JOIN (SELECT organization_id, lower(email) AS k FROM users "
            "GROUP BY organization_id, lower(email) HAVING count(*) > 1) d "
            "ON d.organization_id = u.organization_id AND d.k = lower(u.email) "
            "ORDER BY o.slug, lower(u.email), u.email"
        )
    ).all()
    groups: dict[tuple[str, str], list[str]] = {}
    for slug, email in rows:
        groups.setdefault((str(slug), str(email).lower()), []).append(str(email))
    return [(slug, emails) for (slug, _), emails in groups.items()]


def upgrade() -> None:
    conn = op.get_bind()
    clashes = _case_duplicates(conn)
    if clashes:
        named = [f"{' and '.join(emails)} in organization {slug}" for slug, emails in clashes]
        raise DatabaseError(
            "cannot upgrade to revision 0007 (emails unique regardless of case): "
            f"{len(clashes)} identit{'y is' if len(clashes) == 1 else 'ies are'} held by "
            f"several users whose emails differ only by case: {first_few(named, SHOWN)}; "
            "delete or deactivate and rename all but one of each, then run `userctl db upgrade` "
            "again. Nothing was changed"
        )
    if conn.dialect.name == "mysql":
        # Exact, as 0003 made names: the key is compared as lower() wrote it. One ALTER: the
        # column and its index come together or not at all.
        exact = (
            "utf8mb4_nopad_bin"
            if getattr(conn.dialect, "is_mariadb", False)
            else "utf8mb4_0900_bin"
        )
        op.execute(
            f"ALTER TABLE users ADD COLUMN email_key VARCHAR({EMAIL_WIDTH}) "
            f"COLLATE {exact} "
            "GENERATED ALWAYS AS (lower(email)) VIRTUAL, "
            f"ADD UNIQUE INDEX {INDEX} (organization_id, email_key)"
        )
        return
    op.add_column(
        "users",
        sa.Column(
            "email_key",
            sa.String(EMAIL_WIDTH),
            # PostgreSQL before 18 has stored generated columns only; SQLite adds virtual ones.
            sa.Computed(
                "lower(email)", persisted=True if conn.dialect.name == "postgresql" else None
            ),
            nullable=True,
        ),
    )
    op.create_index(INDEX, "users", ["organization_id", "email_key"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="users")
    op.drop_column("users", "email_key")
