"""Apply a plan's changes to a live state in memory.

Guards judge the state a plan would leave behind, and the property tests check that the plan
really leads to the desired state; both use this one function, driven by the changes' data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from userctl.plan import Change
from userctl.state import LiveState, role_from_record, user_from_record


def apply_changes(live: LiveState, changes: Iterable[Change]) -> LiveState:
    roles = dict(live.roles)
    users = dict(live.users)
    for change in changes:
        if change.deferred:
            continue
        name = change.key[0]
        if change.kind == "role":
            if change.after is None:
                del roles[name]
            else:
                roles[name] = role_from_record(change.after)
        elif change.kind == "user":
            if change.after is None:
                del users[name]
            elif change.action in ("create", "replace"):
                users[name] = user_from_record(change.after)
            else:
                users[name] = replace(users[name], **{f: d["after"] for f, d in change.diff.items()})
        else:
            user, key = users[name], change.key[1]
            accounts = user.bank_accounts | {key} if change.action == "assign" else user.bank_accounts - {key}
            users[name] = replace(user, bank_accounts=accounts)
    return LiveState(live.organization, roles, users, live.bank_accounts)
