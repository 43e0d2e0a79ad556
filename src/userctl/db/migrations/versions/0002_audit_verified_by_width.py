"""audit_events.verified_by holds "approval:" and the approver's email: VARCHAR(32) refused every
approval by an address longer than 23 characters on PostgreSQL and MariaDB.

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
        batch.alter_column("verified_by", existing_type=sa.String(length=32), type_=sa.String(length=300), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("verified_by", existing_type=sa.String(length=300), type_=sa.String(length=32), existing_nullable=False)
