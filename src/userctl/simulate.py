"""Apply a plan's changes to a live state in memory.

Guards judge the state a plan would leave behind, and the property tests check that the plan
really leads to the desired state; both use this one function, driven by the changes' data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from userctl.plan import Change
from userctl.state import (
    GATE_RULES,
    LiveState,
    PolicyKey,
    PolicyValue,
    Role,
    User,
    role_from_record,
    user_from_record,
    with_gate,
)


class DoesNotFit(ValueError):
    """A change that cannot be made to the state it is applied to (it names a row that is not
    there, or carries values of the wrong shape): only a forged plan has one."""

    def __init__(self, change: Change, reason: str) -> None:
        super().__init__(f"{change.address} {change.action}: {reason}")
        self.change = change


def apply_changes(live: LiveState, changes: Iterable[Change]) -> LiveState:
    roles = dict(live.roles)
    users = dict(live.users)
    policies = dict(live.policies)
    org = live.organization
    for change in changes:
        if change.deferred:
            continue
        try:
            if change.kind == "policy" and change.key[0] in GATE_RULES:
                # The gate's settings live in the organization's row, not among its policies.
                org = with_gate(org, change.key[0], change.policy_after()["value"])
            else:
                _apply_one(change, roles, users, policies)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise DoesNotFit(change, f"{type(exc).__name__} {exc}") from exc
    # A plan cannot merge two rows of one identity: what was found on the live state stays found.
    return LiveState(org, roles, users, live.bank_accounts, policies, live.case_duplicates)


def _apply_one(
    change: Change,
    roles: dict[str, Role],
    users: dict[str, User],
    policies: dict[PolicyKey, PolicyValue],
) -> None:
    name = change.key[0]
    if change.kind == "policy":
        _apply_policy(change, policies)
    elif change.kind == "role":
        if change.after is None:
            del roles[name]
        else:
            roles[name] = role_from_record(change.role_after())
    elif change.kind == "user":
        if change.after is None:
            del users[name]
        elif change.action in ("create", "replace"):
            users[name] = user_from_record(change.user_after())
        else:
            users[name] = replace(users[name], **{f: d["after"] for f, d in change.diff.items()})
    else:
        user, key = users[name], change.key[1]
        accounts = (
            user.bank_accounts | {key} if change.action == "assign" else user.bank_accounts - {key}
        )
        users[name] = replace(user, bank_accounts=accounts)


def _apply_policy(change: Change, policies: dict[PolicyKey, PolicyValue]) -> None:
    key = (change.key[0], change.key[1])
    if change.after is None:
        del policies[key]
    else:
        policies[key] = change.policy_after()["value"]
