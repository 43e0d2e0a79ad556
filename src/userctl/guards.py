"""Guards: findings on a plan (DESIGN §3). They never hide a change; a blocking finding makes the
plan unappliable, and apply runs the same checks again on the state it actually finds."""

from __future__ import annotations

from typing import Protocol, Sequence

from userctl.plan import ACTION_TABLE, Change, Finding, is_destructive
from userctl.simulate import apply_changes
from userctl.state import LiveState, email_key

REMOVAL_MIN_USERS = 10
REMOVAL_MAX_SHARE = 0.25


class GuardOptions(Protocol):
    @property
    def allow_mass_removal(self) -> bool: ...

    @property
    def operator(self) -> str | None: ...


def check(
    live: LiveState,
    changes: Sequence[Change],
    options: GuardOptions,
    after: LiveState | None = None,
) -> tuple[Finding, ...]:
    """`after`: the state the changes lead to, when the caller has it already."""
    after = after if after is not None else apply_changes(live, changes)
    active = [c for c in changes if not c.deferred]
    return (
        *_removal(live, active, options.allow_mass_removal),
        *_admins(live, after),
        *_self(live, after, active, options.operator),
    )


def _removal(live: LiveState, changes: Sequence[Change], allowed: bool) -> list[Finding]:
    total = len(live.users)
    removed = {c.key[0] for c in changes if ACTION_TABLE[(c.kind, c.action)].removes_user}
    if total < REMOVAL_MIN_USERS or len(removed) <= total * REMOVAL_MAX_SHARE:
        return []
    counts = (
        f"{len(removed)} of {total} users ({100 * len(removed) / total:.0f}%) "
        "would be deleted or deactivated"
    )
    if allowed:
        return [Finding("removal_guard", False, f"{counts}; allowed by --allow-mass-removal")]
    return [
        Finding(
            "removal_guard",
            True,
            f"{counts}, more than {REMOVAL_MAX_SHARE:.0%}: is the file truncated? "
            "If this is intended, plan again with --allow-mass-removal",
        )
    ]


def _admin_count(state: LiveState) -> int:
    # A plain loop over every user, the rarest condition first (few users are enrolled), with the
    # managing roles named once: it runs twice per plan (before and after).
    managing = {name for name, role in state.roles.items() if "users.manage" in role.permissions}
    count = 0
    for u in state.users.values():
        if u.totp_enrolled and u.status == "active" and u.role in managing:
            count += 1
    return count


def _admins(live: LiveState, after: LiveState) -> list[Finding]:
    # The stricter of the setting in force and the one this plan sets: lowering min_admins does
    # not let the same plan remove the admin it no longer requires.
    need = max(live.organization.min_admins, after.organization.min_admins)
    now, then = _admin_count(live), _admin_count(after)
    if then >= need:
        return []
    counts = (
        f"after this plan {then} active user(s) would hold users.manage with 2FA enrolled; the "
        f"organization requires at least {need}"
    )
    if then >= now:
        # Already short before the plan: a plan that removes no admin cannot be the lock-out the
        # guard exists to stop, and blocking it would also block the plan that fixes the shortfall.
        return [
            Finding("admin_guard", False, f"{counts} (it has {now} now; this plan removes none)")
        ]
    return [Finding("admin_guard", True, f"{counts}, so nobody could manage users any more")]


def _harms(change: Change) -> bool:
    """Whether `change` takes access away from its user: always for some actions; for an expiry,
    when it is set or brought forward (the deactivation it schedules needs no further code)."""
    rule = ACTION_TABLE[(change.kind, change.action)]
    if rule.self_harm:
        return True
    field = rule.destructive_if_sooner
    return field is not None and is_destructive(change.kind, change.action, change.diff)


def _harm(change: Change) -> str:
    if ACTION_TABLE[(change.kind, change.action)].destructive_if_sooner is not None:
        return "set or bring forward their own expiry"
    return f"{change.action.replace('_', ' ')} themselves"


def _self(
    live: LiveState, after: LiveState, changes: Sequence[Change], operator: str | None
) -> list[Finding]:
    if operator is None:
        return []
    email = email_key(operator)
    me = live.users.get(email)
    if me is None:
        return [
            Finding(
                "self_guard",
                True,
                f"operator {email} is not a user of organization {live.organization.slug}",
            )
        ]
    findings = [
        Finding("self_guard", True, f"operator {email} cannot {_harm(c)}")
        for c in changes
        if c.kind == "user" and c.key[0] == email and _harms(c)
    ]
    mine_after = after.users.get(email)
    if mine_after is not None and me.role in live.roles:
        before = live.roles[me.role].permissions
        now = (
            after.roles[mine_after.role].permissions
            if mine_after.role in after.roles
            else frozenset()
        )
        lost = sorted(before - now)
        if lost:
            findings.append(
                Finding(
                    "self_guard",
                    True,
                    f"operator {email} cannot demote themselves (would lose {', '.join(lost)})",
                )
            )
    return findings
