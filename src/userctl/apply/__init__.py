"""Everything that writes under the organization lock, and its 2FA: the apply transaction,
operators, TOTP codes and enrolment, approvals, the audit chain, the invitation outbox, the
secret store, bootstrap (`init`) and its demo data, and the bank-account import.

The pure core (state, plan, planner, guards, simulate) never imports from here; db/ neither."""

from userctl.apply.transaction import ApplyResult, apply_plan, approve_plan, code_can_confirm

__all__ = ["ApplyResult", "apply_plan", "approve_plan", "code_can_confirm"]
