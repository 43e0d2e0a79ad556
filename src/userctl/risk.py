"""The risk of each change (DESIGN §3): destructive, privilege-granting, needing 2FA.

One function, judged on the live state and the state the plan leads to. The planner flags a plan
with it; apply runs it again on a saved plan under the organization lock and refuses the plan
when its stated flags differ, so no flag in a file is ever trusted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any, Sequence

from userctl.plan import ACTION_TABLE, Change, field_of, is_destructive, requires_2fa
from userctl.simulate import apply_changes
from userctl.state import PRIVILEGED_PERMISSIONS, LiveState


def assess(
    live: LiveState,
    changes: Sequence[Change],
    after: LiveState | None = None,
    today: dt.date | None = None,
) -> tuple[Change, ...]:
    """`changes` with their flags set from their action and diff under `live`'s 2FA policy.
    `after` is the state the changes lead to, when the caller has it already; `today` (UTC) tells
    an expiry set in the past."""
    after = after if after is not None else apply_changes(live, changes)
    policy = live.organization.two_factor_policy
    judged = []
    for change in changes:
        if change.deferred:
            flags = (False, False, False)
        else:
            destructive = is_destructive(change.kind, change.action, change.diff, change.key)
            grants = grants_privilege(change, live, after, today)
            flags = (
                destructive,
                grants,
                requires_2fa(change.kind, change.action, destructive, grants, policy),
            )
        if flags != (change.destructive, change.grants_privilege, change.requires_2fa):
            change = replace(
                change, destructive=flags[0], grants_privilege=flags[1], requires_2fa=flags[2]
            )
        judged.append(change)
    return tuple(judged)


def grants_privilege(
    change: Change, live: LiveState, after: LiveState, today: dt.date | None = None
) -> bool:
    """Whether `change` gives someone a privileged permission they did not have, a payout bank
    account, or access for longer."""
    grant = ACTION_TABLE[(change.kind, change.action)].grants
    if grant == "never":
        return False
    if grant == "always":
        return True
    if grant == "expiry":
        d = field_of(change.diff, "expires")
        return expiry_grants(d.get("before"), d.get("after"), today)
    if grant == "added":
        return not PRIVILEGED_PERMISSIONS.isdisjoint(
            field_of(change.diff, "permissions").get("added", ())
        )
    # (the grants that remain are a user change's: its records are users)
    new_role = change.user_after()["role"] if change.after is not None else None
    gained = _privileges(after, new_role)
    if grant == "role_gain":
        before = change.user_before()
        gained = gained - _privileges(live, before["role"] if before is not None else None)
    return bool(gained)


def _privileges(state: LiveState, role: str | None) -> frozenset[str]:
    found = state.roles.get(role) if role is not None else None
    return found.permissions & PRIVILEGED_PERMISSIONS if found is not None else frozenset()


def expiry_grants(before: Any, after: Any, today: dt.date | None) -> bool:
    """An expiry removed, extended, or set in the past grants access. A first one, or one brought
    forward, takes access away instead (plan.comes_sooner: destructive); one set in the past is
    both, since the same plan carries out its deactivation with no code of its own."""
    if after is None:
        return before is not None
    if today is not None and str(after) < today.isoformat():
        return True
    return before is not None and str(after) > str(before)
