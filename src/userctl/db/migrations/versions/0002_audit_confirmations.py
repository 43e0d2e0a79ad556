"""audit_events: verified_by holds "approval:" and the approver's email (two of them under four
eyes): VARCHAR(32) refused every approval by an address longer than 23 characters on PostgreSQL
and MariaDB. operator_verified records whether the named operator proved who they are with a
code; it stays NULL on the events written before, whose hashes do not cover it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot ALTER a column's type, so Alembic copies the table there; the
    # other backends get a plain ALTER.
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column(
            "verified_by",
            existing_type=sa.String(length=32),
            type_=sa.String(length=600),
            existing_nullable=False,
        )
        batch.add_column(sa.Column("operator_verified", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("operator_verified")
        batch.alter_column(
            "verified_by",
            existing_type=sa.String(length=600),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
