"""An index on notifications.user_id. Deleting a user sets its invitations' user_id to NULL (ON
DELETE SET NULL); without an index every deleted user's foreign-key action scanned the whole
outbox, so deleting many users was quadratic on SQLite and PostgreSQL (issue 14's benchmark: a
100k mixed apply on PostgreSQL spent nearly all its time there). MariaDB already indexed the
column for its foreign key; the named index takes that one's place.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_notifications_user_id", "notifications", ["user_id"])


def downgrade() -> None:
    # MariaDB refuses to drop the only index its foreign key can use: there it stays.
    if op.get_bind().dialect.name != "mysql":
        op.drop_index("ix_notifications_user_id", table_name="notifications")
