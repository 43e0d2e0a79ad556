"""Access policies, expiring access and reasons (issue 12): the `policies` table (one row per rule
or rule entry of an organization), users.expires_at (the last day of a user's access), and on
audit_events the plan's reason and the earlier event an event follows from (refers_to: the
deactivation of an expired user names the event that set the expiry). The new audit columns are
hashed only when present, so events written before keep their hashes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # MariaDB (and MySQL) compare policy names exactly, like role names (migration 0003).
    dialect = op.get_bind().dialect
    name_type = sa.String(length=100)
    if dialect.name == "mysql":
        name_type = sa.String(
            length=100,
            collation="utf8mb4_nopad_bin"
            if getattr(dialect, "is_mariadb", False)
            else "utf8mb4_0900_bin",
        )
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "organization_id",
            sa.Integer(),
            sa.ForeignKey(
                "organizations.id",
                ondelete="CASCADE",
                name="fk_policies_organization_id_organizations",
            ),
            nullable=False,
        ),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("name", name_type, nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policies"),
        sa.UniqueConstraint("organization_id", "rule", "name", name="uq_policies_org_rule_name"),
    )
    op.create_index("ix_policies_organization_id", "policies", ["organization_id"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("expires_at", sa.Date(), nullable=True))
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("refers_to", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("refers_to")
        batch.drop_column("reason")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_policies_organization_id", table_name="policies")
    op.drop_table("policies")
