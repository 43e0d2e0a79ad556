"""What `apply --format json` and `approve --format json` print: the typed results of
apply.run, as the documents schemas/apply.schema.json and approve.schema.json describe."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from userctl.plan import Plan
from userctl.render import results

if TYPE_CHECKING:
    from userctl.apply.transaction import ApplyResult, ApproveResult


def applied_document(
    plan: Plan,
    operator: str,
    result: "ApplyResult | None",
    delivery: tuple[int, int] | None,
    at: dt.datetime,
) -> str:
    """`apply --format json`; `result` is None when the plan had nothing to apply."""
    return results.document(
        results.applied(
            organization=plan.organization,
            plan_digest=plan.digest,
            actions=[f"{c.kind}.{c.action}" for c in plan.active_changes]
            if result is not None
            else [],
            operator=operator.strip().lower(),
            operator_verified=result is not None and result.operator_verified,
            approvers=result.approvers if result is not None else (),
            serial=result.serial if result is not None else None,
            audit_head=result.audit_head if result is not None else None,
            audit_seqs=result.audit_seqs if result is not None else None,
            invited=result.invited if result is not None else (),
            delivery=delivery,
            at=at,
        )
    )


def approved_document(plan: Plan, done: "ApproveResult") -> str:
    """`approve --format json`."""
    return results.document(
        results.approved(
            organization=plan.organization,
            plan_digest=plan.digest,
            approver=done.approver,
            approval_id=done.approval_id,
            valid_until=done.expires_at,
            audit_head=done.audit_head,
            at=done.at,
        )
    )
