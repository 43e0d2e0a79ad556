"""audit_events.address holds the widest address: VARCHAR(400) refused, on PostgreSQL and MariaDB,
the apply of a valid file assigning a bank account whose key is 100 quotes to a user with a
254-character email (474 characters once quoted). 2144 is db.tables.widest_address() for the
columns as declared now: every name as long as its column allows, made of the character JSON
quoting writes widest (\\u0000, six).

On MariaDB (and MySQL), roles.name and bank_accounts.key are compared exactly: the default
collations took "Émile" and "Emile", "ops" and "ops ", and any two emoji for one string, so two
roles a valid file declares apart collided on their unique key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here, as a migration must be: the tables may be declared wider later, by a migration of
# their own.
ADDRESS_BEFORE, ADDRESS_AFTER = 400, 2144
EXACT_COLUMNS = (("roles", "name", 100), ("bank_accounts", "key", 100))


def _exact_collation() -> str:
    # MariaDB's exact collation, trailing spaces included; MySQL 8 names it utf8mb4_0900_bin.
    bind = op.get_bind()
    return "utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


def upgrade() -> None:
    # Batch mode: SQLite cannot ALTER a column's type, so Alembic copies the table there; the
    # other backends get a plain ALTER.
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column(
            "address",
            existing_type=sa.String(length=ADDRESS_BEFORE),
            type_=sa.String(length=ADDRESS_AFTER),
            existing_nullable=False,
        )
    if op.get_bind().dialect.name != "mysql":
        return  # PostgreSQL (a deterministic collation) and SQLite (BINARY) compare exactly already
    collation = _exact_collation()
    for table, column, width in EXACT_COLUMNS:
        op.alter_column(
            table,
            column,
            existing_type=sa.String(length=width),
            type_=sa.String(length=width, collation=collation),
            existing_nullable=False,
        )


def downgrade() -> None:
    # Refused where an address longer than 400 characters was written since: cutting it would
    # break the audit chain's hashes.
    if op.get_bind().dialect.name == "mysql":
        # Back to the table's default collation.
        for table, column, width in EXACT_COLUMNS:
            op.alter_column(
                table,
                column,
                existing_type=sa.String(length=width, collation=_exact_collation()),
                type_=sa.String(length=width),
                existing_nullable=False,
            )
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column(
            "address",
            existing_type=sa.String(length=ADDRESS_AFTER),
            type_=sa.String(length=ADDRESS_BEFORE),
            existing_nullable=False,
        )
