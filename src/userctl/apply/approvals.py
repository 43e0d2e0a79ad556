"""Approvals: a 2FA confirmation recorded for one exact plan digest, so that a pipeline can
apply that plan later without a code (DESIGN §4)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from userctl.clock import naive_utc
from userctl.db import models

DEFAULT_VALIDITY = dt.timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    id: int
    approver_id: int
    approver_email: str
    expires_at: dt.datetime


def record(
    conn: Connection,
    organization_id: int,
    digest: str,
    approver_id: int,
    approver_email: str,
    now: dt.datetime,
    valid_for: dt.timedelta,
) -> ApprovalRow:
    now = naive_utc(now)
    expires = now + valid_for
    result = conn.execute(
        insert(models.Approval).values(
            organization_id=organization_id,
            plan_digest=digest,
            approver_id=approver_id,
            approver_email=approver_email,
            created_at=now,
            expires_at=expires,
        )
    )
    return ApprovalRow(int(result.inserted_primary_key[0]), approver_id, approver_email, expires)  # type: ignore[index]


def candidates(
    conn: Connection,
    organization_id: int,
    digest: str,
    now: dt.datetime,
    exclude_approver: int | None = None,
) -> list[ApprovalRow]:
    """Every unused, unexpired approval of exactly this digest, oldest first: the caller still
    has to check that its approver may confirm today."""
    a = models.Approval
    query = (
        select(a.id, a.approver_id, a.approver_email, a.expires_at)
        .where(
            a.organization_id == organization_id,
            a.plan_digest == digest,
            a.expires_at > naive_utc(now),
            a.used_at.is_(None),
        )
        .order_by(a.id)
    )
    if exclude_approver is not None:
        query = query.where(a.approver_id != exclude_approver)
    return [
        ApprovalRow(int(r.id), int(r.approver_id), r.approver_email, r.expires_at)
        for r in conn.execute(query)
    ]


def mark_used(conn: Connection, approval_id: int, now: dt.datetime) -> None:
    conn.execute(
        update(models.Approval)
        .where(models.Approval.id == approval_id)
        .values(used_at=naive_utc(now))
    )
