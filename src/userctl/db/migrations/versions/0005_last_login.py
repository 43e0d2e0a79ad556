"""users.last_login_at: when the user last logged in to the platform (written by the platform, or
by `userctl activity import`), NULL when never known. Read by the hygiene findings (dormant users,
PCI DSS 8.2.6) and shown by `users list/show` and the access review.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column with no default: a plain ADD COLUMN on every backend, no table copy.
    op.add_column("users", sa.Column("last_login_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_login_at")
