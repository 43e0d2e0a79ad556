"""What `apply` and `approve` show besides the plan: a progress bar while a long apply runs, and
with --format json the typed results of apply.run, as schemas/apply.schema.json and
approve.schema.json describe them."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator

import click

from userctl.cli import checkpoint_out
from userctl.plan import Plan
from userctl.render import results
from userctl.state import given_email

if TYPE_CHECKING:
    from userctl.apply.transaction import ApplyResult, ApproveResult

PROGRESS_THRESHOLD = 300


def applied_document(
    plan: Plan,
    operator: str,
    result: "ApplyResult | None",
    delivery: tuple[int, int] | None,
    at: dt.datetime,
    checkpoint: dict[str, Any] | None = None,
) -> str:
    """`apply --format json`; `result` is None when the plan had nothing to apply."""
    return results.document(
        results.applied(
            organization=plan.organization,
            plan_digest=plan.digest,
            actions=[f"{c.kind}.{c.action}" for c in plan.active_changes]
            if result is not None
            else [],
            operator=given_email(operator),
            operator_verified=result is not None and result.operator_verified,
            approvers=result.approvers if result is not None else (),
            serial=result.serial if result is not None else None,
            audit_head=result.audit_head if result is not None else None,
            audit_seqs=result.audit_seqs if result is not None else None,
            invited=result.invited if result is not None else (),
            delivery=delivery,
            at=at,
            checkpoint=checkpoint,
        )
    )


def applied_text(plan: Plan, result: "ApplyResult", checkpoint: dict[str, Any] | None) -> str:
    """What an apply did, for a reader: printed as soon as it is committed."""
    lines = [
        f"Applied {result.applied} change(s) to {plan.organization} (serial {result.serial}), "
        f"verified by {result.verified_by}."
    ]
    if result.invitations_queued:
        lines.append(f"Queued {result.invitations_queued} invitation email(s).")
    lines.append(f"Audit chain head: {result.audit_head}")
    if checkpoint is not None:
        lines.append(checkpoint_out.line(checkpoint))
    return "\n".join(lines) + "\n"


def approved_document(plan: Plan, done: "ApproveResult", checkpoint: dict[str, Any] | None) -> str:
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
        | {"checkpoint": checkpoint}
    )


@contextlib.contextmanager
def progress(total: int) -> Iterator[Callable[[int], None] | None]:
    """A bar on a terminal while a long apply runs; nothing otherwise."""
    if total <= PROGRESS_THRESHOLD or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label="Applying", file=sys.stderr) as bar:
        yield bar.update
