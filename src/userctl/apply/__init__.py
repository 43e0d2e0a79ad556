"""Everything that writes under the organization lock, and its 2FA: the apply transaction,
operators, TOTP codes and enrolment, approvals, the audit chain, the invitation outbox, the
secret store, bootstrap (`init`) and its demo data, and the bank-account import.

The pure core (state, plan, planner, guards, simulate) never imports from here; db/ neither.

The transaction's names are imported when first asked for (PEP 562): `plan` imports
apply.planning and `audit verify` apply/reads.py, and importing the package must not bring in the
transaction and all it needs (guards, replan, simulate, verification, policies) for a command that
never applies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from userctl.apply.transaction import ApplyResult, apply_plan, approve_plan, code_can_confirm

__all__ = ["ApplyResult", "apply_plan", "approve_plan", "code_can_confirm"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from userctl.apply import transaction

        return getattr(transaction, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
