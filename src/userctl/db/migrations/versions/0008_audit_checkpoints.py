"""The audit_checkpoints table: signed chain heads (docs/auditing.md "Signed checkpoints"). Each
row is one Ed25519 signature (SSH signature format) over an organization's chain head at a seq,
appended by the write that produced that head when USERCTL_AUDIT_SIGNING_KEY is set.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "organization_id",
            sa.Integer,
            sa.ForeignKey(
                "organizations.id", name="fk_audit_checkpoints_organization_id_organizations"
            ),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("head", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("key_id", sa.String(80), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoints"),
    )
    op.create_index(
        "ix_audit_checkpoints_organization_id", "audit_checkpoints", ["organization_id"]
    )
    op.create_index("ix_audit_checkpoints_org_seq", "audit_checkpoints", ["organization_id", "seq"])


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
