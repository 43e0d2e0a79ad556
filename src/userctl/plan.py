"""Plan and Change: changes as plain data, with one serialisation (`Plan.to_data`).

The same data feeds every renderer, the saved plan file, the digest and apply; nothing else
walks a plan its own way. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import (
    Any,
    Final,
    Iterable,
    Iterator,
    Literal,
    Mapping,
    Required,
    TypedDict,
    cast,
    get_args,
)

import orjson

from userctl.canonical import canonical_bytes
from userctl.clock import iso_z, parse_utc
from userctl.errors import InputError, Problem, Refused
from userctl.printable import json_text
from userctl.state import (
    ENFORCED_WHEN_DECLARED,
    POLICY_DEFAULTS,
    TWO_FACTOR_POLICIES,
    AssignmentFields,
    ChangeRecord,
    FingerprintKind,
    PolicyFields,
    RoleFields,
    UserFields,
)

# 2: changes carry grants_privilege; a plan carries its provenance. 3: and the gate in force.
FORMAT_VERSION: Final = 3

Kind = Literal["role", "user", "assignment", "policy"]
Action = Literal[
    "create",
    "update",
    "delete",
    "change_role",
    "activate",
    "deactivate",
    "set_two_factor",
    "disable_two_factor",
    "replace",
    "assign",
    "unassign",
    "set_expiry",
    "expire",
]
Phase = Literal[
    "role.create",
    "user.activate",
    "user.create",
    "user.update",
    "assignment.unassign",
    "assignment.assign",
    "user.deactivate",
    "user.delete",
    "role.delete",
    "policy",
]
Bucket = Literal["create", "update", "replace", "delete"]
# How a change can grant privilege (DESIGN §3), judged by `risk.assess` on the live state and the
# state the plan leads to: never; always (a payout bank account); when the user's role after the
# change holds a privileged permission; when the new role holds one the old did not; when a role
# gains one (every holder gains it).
Grant = Literal["never", "always", "role", "role_gain", "added", "expiry"]

# Apply order (DESIGN §3). A change's phase decides where it runs; within a phase changes are
# sorted by address, then by the action's rank, so that the same inputs always give
# byte-identical plans.
PHASES: Final[tuple[Phase, ...]] = get_args(Phase)


# Rows of ACTION_TABLE, read field by field, never compared or printed whole: no generated
# __eq__/__hash__/__repr__ to compile at every import (see tests/core/test_record_methods.py).
@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class ActionRule:
    """Everything the planner, guards, apply, simulation and renderers know about one action."""

    phase: Phase
    # Within a phase, one user's changes keep this order (an update before a role change...).
    rank: int
    symbol: str  # + ~ - -/+ in text and markdown
    bucket: Bucket  # where the summary counts it
    destructive: bool
    # Permissions the operator's role must hold to apply it (DESIGN §1 "Operator").
    needs: tuple[str, ...]
    grants: Grant = "never"
    # Counts toward the removal guard (a user leaves the active organization).
    removes_user: bool = False
    # Refused by the self guard when the operator would do it to themselves.
    self_harm: bool = False
    # A field whose removed items make the change destructive, and then run in `destructive_phase`
    # (permissions are added early and removed last, so nobody loses access mid-apply).
    destructive_if_removed: str | None = None
    destructive_phase: Phase | None = None
    # A field whose change is destructive when it loosens what it held (a policy's value).
    destructive_if_weakened: str | None = None
    # A date field whose change is destructive when it comes sooner than it was (or is set where
    # there was none): an expiry schedules a loss of access that needs no further code, so it is
    # confirmed when it is scheduled. Such a change to oneself is refused by the self guard.
    destructive_if_sooner: str | None = None
    # Needs no new 2FA although destructive: an earlier, confirmed change decided it (an expiry).
    confirmed_earlier: bool = False
    # How renderers name the action, when not by its name.
    label: str | None = None


_USERS_MANAGE = ("users.manage",)
ACTION_TABLE: Final[Mapping[tuple[Kind, Action], ActionRule]] = {
    ("role", "create"): ActionRule(
        phase="role.create",
        rank=0,
        symbol="+",
        bucket="create",
        destructive=False,
        needs=("roles.manage",),
    ),
    ("role", "update"): ActionRule(
        phase="role.create",
        rank=1,
        symbol="~",
        bucket="update",
        destructive=False,
        needs=("roles.manage",),
        grants="added",
        destructive_if_removed="permissions",
        destructive_phase="role.delete",
    ),
    ("role", "delete"): ActionRule(
        phase="role.delete",
        rank=0,
        symbol="-",
        bucket="delete",
        destructive=True,
        needs=("roles.manage",),
    ),
    ("user", "create"): ActionRule(
        phase="user.create",
        rank=0,
        symbol="+",
        bucket="create",
        destructive=False,
        needs=("users.add",),
        grants="role",
    ),
    # A replace deletes the old row, so it needs both.
    ("user", "replace"): ActionRule(
        phase="user.create",
        rank=0,
        symbol="-/+",
        bucket="replace",
        destructive=True,
        needs=("users.add", "users.manage"),
        grants="role",
        self_harm=True,
    ),
    # Reactivating a user gives them back everything their role holds.
    ("user", "activate"): ActionRule(
        phase="user.activate",
        rank=0,
        symbol="~",
        bucket="update",
        destructive=False,
        needs=_USERS_MANAGE,
        grants="role",
    ),
    ("user", "update"): ActionRule(
        phase="user.update",
        rank=1,
        symbol="~",
        bucket="update",
        destructive=False,
        needs=_USERS_MANAGE,
    ),
    ("user", "change_role"): ActionRule(
        phase="user.update",
        rank=2,
        symbol="~",
        bucket="update",
        destructive=True,
        needs=_USERS_MANAGE,
        grants="role_gain",
    ),
    ("user", "set_two_factor"): ActionRule(
        phase="user.update",
        rank=3,
        symbol="~",
        bucket="update",
        destructive=False,
        needs=_USERS_MANAGE,
    ),
    ("user", "disable_two_factor"): ActionRule(
        phase="user.update",
        rank=3,
        symbol="~",
        bucket="update",
        destructive=True,
        needs=_USERS_MANAGE,
        self_harm=True,
    ),
    ("user", "deactivate"): ActionRule(
        phase="user.deactivate",
        rank=0,
        symbol="~",
        bucket="update",
        destructive=True,
        needs=_USERS_MANAGE,
        removes_user=True,
        self_harm=True,
    ),
    ("user", "delete"): ActionRule(
        phase="user.delete",
        rank=0,
        symbol="-",
        bucket="delete",
        destructive=True,
        needs=_USERS_MANAGE,
        removes_user=True,
        self_harm=True,
    ),
    ("assignment", "unassign"): ActionRule(
        phase="assignment.unassign",
        rank=0,
        symbol="-",
        bucket="update",
        destructive=True,
        needs=_USERS_MANAGE,
    ),
    ("assignment", "assign"): ActionRule(
        phase="assignment.assign",
        rank=0,
        symbol="+",
        bucket="update",
        destructive=False,
        needs=_USERS_MANAGE,
        grants="always",
    ),
    ("user", "set_expiry"): ActionRule(
        phase="user.update",
        rank=4,
        symbol="~",
        bucket="update",
        destructive=False,
        needs=_USERS_MANAGE,
        grants="expiry",
        destructive_if_sooner="expires",
    ),
    # The day after a user's expiry: they are deactivated with no new code, since the change
    # that set the expiry was confirmed when it was applied.
    ("user", "expire"): ActionRule(
        phase="user.deactivate",
        rank=1,
        symbol="~",
        bucket="update",
        destructive=True,
        needs=_USERS_MANAGE,
        removes_user=True,
        self_harm=True,
        confirmed_earlier=True,
        label="deactivate [expired]",
    ),
    # Policies constrain roles and who holds them; loosening one is destructive, tightening plain.
    # A policy declared where none was can still loosen what was in force: a default, or a gate
    # setting's value.
    ("policy", "create"): ActionRule(
        phase="policy",
        rank=0,
        symbol="+",
        bucket="create",
        destructive=False,
        needs=("roles.manage",),
        destructive_if_weakened="value",
    ),
    ("policy", "update"): ActionRule(
        phase="policy",
        rank=1,
        symbol="~",
        bucket="update",
        destructive=False,
        needs=("roles.manage",),
        destructive_if_weakened="value",
    ),
    ("policy", "delete"): ActionRule(
        phase="policy",
        rank=2,
        symbol="-",
        bucket="delete",
        destructive=False,
        needs=("roles.manage",),
        destructive_if_weakened="value",
    ),
}

# The actions of each kind, as plan.schema.json enumerates them.
ACTIONS: Final[Mapping[Kind, tuple[Action, ...]]] = {
    kind: tuple(a for (k, a) in ACTION_TABLE if k == kind) for kind in get_args(Kind)
}


def is_destructive(
    kind: Kind,
    action: Action,
    diff: Mapping[str, FieldDiff],
    key: tuple[str, ...] = (),
) -> bool:
    """`key`: the change's key (a policy's (rule, name) decides how its value loosens)."""
    r = ACTION_TABLE[(kind, action)]
    if r.destructive_if_weakened is not None and r.destructive_if_weakened in diff:
        d = diff[r.destructive_if_weakened]
        return policy_loosens(key[0] if key else "", d.get("before"), d.get("after"))
    if r.destructive_if_sooner is not None and r.destructive_if_sooner in diff:
        d = diff[r.destructive_if_sooner]
        return comes_sooner(d.get("before"), d.get("after"))
    return r.destructive or (
        r.destructive_if_removed is not None
        and bool(field_of(diff, r.destructive_if_removed).get("removed"))
    )


def comes_sooner(before: Any, after: Any) -> bool:
    """Whether an expiry going from `before` to `after` (ISO dates; None: none) schedules a loss of
    access earlier than was scheduled: one set where there was none, or one brought forward (into
    the past too: that is a loss of access today)."""
    return after is not None and (before is None or str(after) < str(before))


# How strict each value of an ordered gate setting is, least first.
_STRICTNESS: Final[Mapping[str, tuple[Any, ...]]] = {
    "two_factor_policy": TWO_FACTOR_POLICIES,
}


def policy_loosens(rule: str, before: Any, after: Any) -> bool:
    """Whether the policy `rule` going from its stored `before` to `after` (None: not declared)
    loosens it. Judged on the values in force (DESIGN §1: a default is a value): an undeclared
    rule with a default holds that default, so declaring a looser value than the default is
    loosening, and so is removing a declaration stricter than it."""
    default = POLICY_DEFAULTS.get(rule)
    if rule in ENFORCED_WHEN_DECLARED and before is not None and after is None:
        return True  # what the declaration enforced is only reported again
    before = default if before is None else before
    after = default if after is None else after
    if rule in _STRICTNESS:
        order = _STRICTNESS[rule]
        return before in order and (after not in order or order.index(after) < order.index(before))
    if rule == "min_admins":  # fewer admins required is looser, unlike every other number
        return not isinstance(after, int) or (isinstance(before, int) and after < before)
    return weakens(before, after)


def weakens(before: Any, after: Any) -> bool:
    """Whether a policy's value going from `before` to `after` (None: absent) allows something
    it did not: a permission taken off a list, a higher limit, a rule turned off or removed."""
    if before is None or before is False or before == []:
        return False  # nothing was enforced
    if after is None:
        return True
    if isinstance(before, bool) or isinstance(after, bool):
        return before is True and after is not True
    if isinstance(before, list):
        return not isinstance(after, list) or bool(set(before) - set(after))
    if isinstance(before, int):
        return not isinstance(after, int) or after > before
    return True


def phase_of(kind: Kind, action: Action, destructive: bool) -> int:
    r = ACTION_TABLE[(kind, action)]
    return PHASES.index(r.destructive_phase if destructive and r.destructive_phase else r.phase)


def requires_2fa(
    kind: Kind, action: Action, destructive: bool, grants_privilege: bool, policy: str
) -> bool:
    # Under policy `all` every change to an existing user or role needs 2FA; creates never
    # touch an existing row. An expiry was confirmed when it was set.
    if ACTION_TABLE[(kind, action)].confirmed_earlier and not grants_privilege:
        return False
    return destructive or grants_privilege or (policy == "all" and action != "create")


def required_permissions(changes: Iterable["Change"]) -> set[str]:
    """What the operator's role must hold to apply `changes`."""
    return {p for c in changes for p in ACTION_TABLE[(c.kind, c.action)].needs}


# json.dumps(x, ensure_ascii=False), with the encoder built once rather than per call: the
# planner quotes every user's address several times (a tenth of an apply of 10k creates).
_quoted = json.JSONEncoder(ensure_ascii=False).encode


def role_address(name: str) -> str:
    return f"role[{_quoted(name)}]"


def user_address(email: str) -> str:
    return f"user[{_quoted(email)}]"


def assignment_address(email: str, key: str) -> str:
    return f"assignment[{_quoted(email)} -> {_quoted(key)}]"


def bank_account_address(key: str) -> str:
    return f"bank_account[{_quoted(key)}]"


def organization_address(slug: str) -> str:
    return f"organization[{_quoted(slug)}]"


def policy_address(key: tuple[str, ...]) -> str:
    return f"policy[{json.dumps('.'.join(k for k in key if k), ensure_ascii=False)}]"


def change_address(kind: Kind, key: tuple[str, ...]) -> str:
    """The address of the change of `kind` to `key` (Change.address)."""
    if kind == "role":
        return role_address(key[0])
    if kind == "user":
        return user_address(key[0])
    if kind == "policy":
        return policy_address(key)
    return assignment_address(key[0], key[1])


_ADDRESS = re.compile(r"(user|role|bank_account|organization|policy)\[(\".*\")\]", re.DOTALL)


def parse_address(address: str) -> "tuple[FingerprintKind, str] | None":
    """(kind, key) of a precondition's address (user, role, bank account or organization), or
    None when it is not one."""
    match = _ADDRESS.fullmatch(address)
    if match is None:
        return None
    quoted = match.group(2)
    inner = quoted[1:-1]
    # Apply parses every precondition's address: most quote no escape, no quote and no control
    # character, and read as they are written; json.loads decides the rest.
    if "\\" not in inner and '"' not in inner and inner.isprintable():
        return (cast("FingerprintKind", match.group(1)), inner)
    try:
        key = json.loads(quoted)
    except json.JSONDecodeError:
        return None
    return (cast("FingerprintKind", match.group(1)), key) if isinstance(key, str) else None


class FieldDiff(TypedDict, total=False):
    """One changed field of a change, as the plan's JSON holds it (`Change.to_data` writes it
    unchanged, so a saved plan's digest covers it as it is)."""

    before: Required[Any]
    after: Required[Any]
    added: list[Any]  # a list field: the items it gains...
    removed: list[Any]  # ...and loses
    default: Any  # a policy's value: what is in force where the rule is not declared


_UNCHANGED: Final[FieldDiff] = {"before": None, "after": None}


class DerivedDiff(Mapping[str, FieldDiff]):
    """The field diff of a change with one side absent, derived from the other on each use instead
    of stored beside it: a create (`before` None) sets every field its `after` sets, from None; a
    delete (`gone=True`, `after` None) takes every field its `before` set to None. At 100k
    changes the stored diffs were most of the memory a plan held, twice over in an apply
    (bench/README.md). Reads as the planner's `field_diff({}, after)` or `field_diff(before,
    {})`; `Change.to_data` writes it as a dict."""

    __slots__ = ("_record", "_gone")

    def __init__(self, record: Mapping[str, Any] | None, gone: bool = False) -> None:
        self._record: Mapping[str, Any] = record or {}
        self._gone = gone

    def _entry(self, value: Any) -> FieldDiff:
        gone = self._gone
        entry: FieldDiff = (
            {"before": value, "after": None} if gone else {"before": None, "after": value}
        )
        if isinstance(value, list):
            entry["added"] = [] if gone else sorted(set(value))
            entry["removed"] = sorted(set(value)) if gone else []
        return entry

    def __getitem__(self, name: str) -> FieldDiff:
        value = self._record[name]
        if value is None:
            raise KeyError(name)
        return self._entry(value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._record.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (name for name in sorted(self._record) if self._record[name] is not None)

    def __len__(self) -> int:
        return sum(1 for value in self._record.values() if value is not None)

    def as_dict(self) -> dict[str, FieldDiff]:
        """The dict this diff stands for, built in one pass (what `{n: self[n] for n in self}`
        gives, without a lookup and a check per field)."""
        record = self._record
        data: dict[str, FieldDiff] = {}
        if self._gone:
            for name in sorted(record):
                value = record[name]
                if value is None:
                    continue
                data[name] = (
                    self._entry(value)
                    if isinstance(value, list)
                    else {"before": value, "after": None}
                )
            return data
        for name in sorted(record):
            value = record[name]
            if value is None:
                continue
            if isinstance(value, list):
                data[name] = {
                    "before": None,
                    "after": value,
                    "added": sorted(set(value)),
                    "removed": [],
                }
            else:
                data[name] = {"before": None, "after": value}
        return data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DerivedDiff):
            return (
                self._gone == other._gone and self._record == other._record
            ) or self.as_dict() == other.as_dict()
        if isinstance(other, dict):
            return self.as_dict() == other
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # like the dict it stands for

    def __repr__(self) -> str:
        return repr(dict(self))


def plain_diff(diff: Mapping[str, FieldDiff]) -> dict[str, FieldDiff]:
    """`diff` as the dict the plan's JSON holds."""
    if isinstance(diff, dict):
        return diff
    return diff.as_dict() if isinstance(diff, DerivedDiff) else {name: diff[name] for name in diff}


def field_of(diff: Mapping[str, FieldDiff], name: str) -> FieldDiff:
    """The entry of field `name` in `diff`, or one with nothing in it when the field does not
    change (so that `.get("removed")` reads as none removed)."""
    entry = diff.get(name)
    return _UNCHANGED if entry is None else entry


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan.

    `before`/`after` are whole records of the change's kind (state.RoleFields, UserFields,
    AssignmentFields, PolicyFields; None when the row is absent), read typed through
    `role_after`, `user_after`... `diff` maps each field that changes to {"before", "after"} (sets
    also get "added"/"removed"). `key` is the identity inside its kind: (name,) for roles,
    (email,) for users, (email, bank key) for assignments, (rule, entry) for policies.
    """

    kind: Kind
    key: tuple[str, ...]
    action: Action
    phase: int  # an index into PHASES
    before: ChangeRecord | None
    after: ChangeRecord | None
    diff: Mapping[str, FieldDiff]
    destructive: bool = False
    requires_2fa: bool = False
    deferred: bool = False
    note: str | None = None
    grants_privilege: bool = False
    # What the change takes away, as evidence for a reviewer, read from the live state by the
    # planner (`planner._with_impact`) and re-derived by apply like the rest: a removed or
    # deactivated user's bank accounts ({"bank_accounts": FEW}); the users who keep a role that
    # loses permissions ({"holders": FEW}). FEW is
    # {"shown": the first IMPACT_SHOWN names, "more": N}.
    impact: Mapping[str, Any] | None = None

    # The record `after` as its kind's type. A change whose kind has no such record, or with none
    # (a delete), raises ValueError: only a forged plan has one where it is read.

    def role_after(self) -> RoleFields:
        return cast(RoleFields, self._after("role"))

    def user_after(self) -> UserFields:
        return cast(UserFields, self._after("user"))

    def user_before(self) -> UserFields | None:
        """The user record before the change; None for a create, or a change of another kind."""
        return cast(UserFields, self.before) if self.kind == "user" else None

    def assignment_after(self) -> AssignmentFields:
        return cast(AssignmentFields, self._after("assignment"))

    def policy_after(self) -> PolicyFields:
        return cast(PolicyFields, self._after("policy"))

    def _after(self, kind: Kind) -> ChangeRecord:
        if self.kind != kind or self.after is None:
            raise ValueError(f"{self.address} {self.action}: has no {kind} record after it")
        return self.after

    @property
    def address(self) -> str:
        return change_address(self.kind, self.key)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "address": self.address,
            "kind": self.kind,
            "key": list(self.key),
            "action": self.action,
            "phase": PHASES[self.phase],
            "before": self.before,
            "after": self.after,
            "diff": plain_diff(self.diff),
            "destructive": self.destructive,
            "grants_privilege": self.grants_privilege,
            "requires_2fa": self.requires_2fa,
            "deferred": self.deferred,
            "note": self.note,
        }
        # Only where there is one: most changes take nothing away, and a plan saved before this
        # field existed keeps its digest.
        if self.impact is not None:
            data["impact"] = self.impact
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "Change":
        kind, action = data["kind"], data["action"]
        if (kind, action) not in ACTION_TABLE:
            raise ValueError(f"unknown action {kind}.{action}")
        diff = data["diff"]
        before, after = data["before"], data["after"]
        # Kept as derived when it is what the present side gives (the planner's always is): the
        # saved dict is then dropped. Any other diff is kept as written, for replan to refuse.
        derived: DerivedDiff | None = (
            DerivedDiff(after)
            if before is None and isinstance(after, dict)
            else DerivedDiff(before, gone=True)
            if after is None and isinstance(before, dict)
            else None
        )
        if derived is not None and derived == diff:
            diff = derived
        return cls(
            kind=kind,
            key=tuple(data["key"]),
            action=action,
            phase=PHASES.index(data["phase"]),
            before=before,
            after=after,
            diff=diff,
            destructive=data["destructive"],
            grants_privilege=data["grants_privilege"],
            requires_2fa=data["requires_2fa"],
            deferred=data["deferred"],
            note=data.get("note"),
            impact=data.get("impact"),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # removal_guard / admin_guard / self_guard / policy.RULE / expiry ...
    blocking: bool
    message: str
    # The desired-state path of what the finding is about, for the CLI to give its FILE:LINE:COL
    # (not saved: the message carries the place once located).
    path: tuple[str | int, ...] = field(default=(), compare=False)

    def to_data(self) -> dict[str, Any]:
        return {"code": self.code, "blocking": self.blocking, "message": self.message}


@dataclass(frozen=True, slots=True)
class Plan:
    organization: str
    two_factor_policy: str
    changes: tuple[Change, ...]
    # address -> the record hash (or "absent") the live row must still have at apply time
    preconditions: Mapping[str, str]
    findings: tuple[Finding, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    # Where the plan came from: when, by which userctl, from which files (SHA-256) and git commit.
    # Evidence for a reader and for --max-age; apply trusts none of it (see replan.py).
    provenance: Mapping[str, Any] = field(default_factory=dict)
    # The gate's settings in force when the plan was made (four_eyes, min_admins), beside
    # two_factor_policy: what the plan is judged by, so under the digest (replan re-derives them).
    gate: Mapping[str, Any] = field(default_factory=dict)
    # The digest once known: computed on first use, or verified by `loads` while it read the plan.
    # A hash over every change, which apply and approve ask for several times. Not an argument:
    # `replace` makes a plan that computes its own.
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)
    # Each change's fingerprint (FINGERPRINT_SIZE bytes each, in order), known with the digest:
    # what lets apply let go of the changes while it re-derives them (replan.py).
    _fingerprints: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def gate_settings(self) -> dict[str, Any]:
        """two_factor_policy, four_eyes and min_admins in force (the defaults where unset)."""
        return {
            "two_factor_policy": self.two_factor_policy,
            "four_eyes": False,
            "min_admins": 1,
            **self.gate,
        }

    @property
    def active_changes(self) -> tuple[Change, ...]:
        """The changes apply will make: everything but deferred work."""
        return tuple(c for c in self.changes if not c.deferred)

    @property
    def blocked(self) -> bool:
        return any(f.blocking for f in self.findings)

    @property
    def requires_2fa(self) -> bool:
        return any(c.requires_2fa for c in self.active_changes)

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "replace": 0, "delete": 0}
        deferred = destructive = privilege = needs_2fa = 0
        for c in self.changes:
            if c.deferred:
                deferred += 1
                continue
            counts[ACTION_TABLE[(c.kind, c.action)].bucket] += 1
            destructive += c.destructive
            privilege += c.grants_privilege
            needs_2fa += c.requires_2fa
        return {
            **counts,
            "total": sum(counts.values()),
            "deferred": deferred,
            "destructive": destructive,
            "grants_privilege": privilege,
            "requires_2fa": needs_2fa,
        }

    def signed_content(self) -> dict[str, Any]:
        """What the digest covers: organization, the gate in force, changes, preconditions, the
        options that shaped them and the provenance. An approval is bound to this digest; the
        digest proves nothing else, since anyone can recompute it."""
        return {
            "format_version": FORMAT_VERSION,
            "organization": self.organization,
            "two_factor_policy": self.two_factor_policy,
            "gate": self.gate_settings,
            "changes": [c.to_data() for c in self.changes],
            "preconditions": dict(sorted(self.preconditions.items())),
            "options": dict(self.options),
            "provenance": dict(self.provenance),
        }

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._hash_changes()
        assert self._digest is not None
        return self._digest

    @property
    def fingerprints(self) -> bytes:
        """`change_fingerprint` of each change, concatenated in the plan's order."""
        if self._fingerprints is None:
            self._hash_changes()
        assert self._fingerprints is not None
        return self._fingerprints

    def fingerprint_at(self, position: int) -> bytes:
        """The fingerprint of the change at `position` (empty past the last one)."""
        return self.fingerprints[position * FINGERPRINT_SIZE : (position + 1) * FINGERPRINT_SIZE]

    @property
    def fingerprinted(self) -> int:
        """How many changes the fingerprints stand for (all of them, held or let go of)."""
        return len(self.fingerprints) // FINGERPRINT_SIZE

    def _hash_changes(self) -> None:
        """The digest and the changes' fingerprints, from one canonical encoding of each change."""
        streamed = _StreamedDigest()
        for change in self.changes:
            streamed.add(change)
        rest = self.signed_content_but_changes()
        digest = streamed.finish(rest)
        if self._digest is None:
            self._know_digest(digest)
        self._know_fingerprints(bytes(streamed.fingerprints))

    def _know_digest(self, digest: str) -> None:
        object.__setattr__(self, "_digest", digest)  # a cache: the plan itself stays frozen

    def _know_fingerprints(self, fingerprints: bytes) -> None:
        object.__setattr__(self, "_fingerprints", fingerprints)  # a cache, as the digest

    def signed_content_but_changes(self) -> dict[str, Any]:
        """`signed_content` without its "changes" (what the digest covers besides them)."""
        rest = replace(self, changes=()).signed_content()
        del rest["changes"]
        return rest

    def without_changes(self) -> "Plan":
        """This plan with no changes, knowing this one's digest and fingerprints: what apply
        keeps of a plan while the planner re-derives its changes (replan.py)."""
        header = replace(self, changes=())
        header._know_digest(self.digest)
        header._know_fingerprints(self.fingerprints)
        return header

    def with_changes(self, changes: tuple[Change, ...]) -> "Plan":
        """This plan (one `without_changes` gave) holding `changes`, which the caller proved to
        be the ones it stood for, fingerprint by fingerprint: the same digest and fingerprints."""
        whole = replace(self, changes=changes)
        whole._know_digest(self.digest)
        whole._know_fingerprints(self.fingerprints)
        return whole

    def to_data(self) -> dict[str, Any]:
        """The one serialisation: JSON output, the saved plan file and every renderer use it."""
        content = self.signed_content()
        if self._digest is None:
            self._know_digest(compute_digest(content))
        return {
            **content,
            "digest": self._digest,
            "findings": [f.to_data() for f in self.findings],
            "summary": self.summary(),
        }


def compute_digest(content: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_bytes(content)).hexdigest()


# The size of a change's fingerprint: a SHA-256, since a saved plan's author chooses its changes
# and two different changes must not share one.
FINGERPRINT_SIZE: Final = 32


def change_fingerprint(change: Change) -> bytes:
    """The SHA-256 of the change's canonical JSON (the text the plan's digest covers of it): equal
    for two changes exactly when the digest cannot tell them apart."""
    return hashlib.sha256(canonical_bytes(change.to_data())).digest()


# orjson refuses, rather than writes its own way, what the json module would not write alike.
_PLANNED: Final = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def planned_fingerprint(change: Change) -> bytes:
    """`change_fingerprint` of a change the planner wrote, by orjson straight away: the planner's
    records hold only the exact str, int, bool, None, dict and list for which orjson writes the
    canonical bytes (canonical.py), so the walk that proves it for any data (half the cost, at
    one per re-derived change) is skipped. Were one not, its fingerprint would differ from the
    saved change's, and the two are then compared as data (replan._adopted): never a change
    taken for another."""
    data = change.to_data()
    try:
        text = orjson.dumps(data, option=_PLANNED)
    except (TypeError, orjson.JSONEncodeError):
        text = canonical_bytes(data)
    return hashlib.sha256(text).digest()


class _StreamedDigest:
    """`compute_digest` of a plan's signed content, fed its changes one at a time. The canonical
    JSON sorts "changes" first of the signed keys and writes a list as its items joined by
    commas, so the text hashed is the same without ever being held whole. Each change's
    fingerprint (`change_fingerprint`) is taken from the same text."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(b'{"changes":[')
        self._count = 0
        self.fingerprints = bytearray()

    def add(self, change: Change) -> None:
        self.add_data(change.to_data())

    def add_data(self, data: Mapping[str, Any]) -> None:
        """`add` of the change whose `to_data()` is `data`."""
        text = canonical_bytes(data)
        self._hash.update(b"," + text if self._count else text)
        self.fingerprints += hashlib.sha256(text).digest()
        self._count += 1

    def finish(self, rest: Mapping[str, Any]) -> str:
        """The digest, given the signed content but its changes (which must all sort after
        "changes")."""
        assert rest and min(rest) > "changes"
        self._hash.update(b"]," + canonical_bytes(rest)[1:])
        return "sha256:" + self._hash.hexdigest()


def dumps(plan: Plan) -> str:
    """The saved plan file (`plan --out`): the same text as `--format json`."""
    return dumps_data(plan.to_data())


def dumps_data(data: Mapping[str, Any]) -> str:
    """Stable, human-diffable JSON of a plan's data."""
    # Hidden characters escaped (printable.json_text): the same data once parsed, so a saved
    # plan's digest still verifies, and a terminal or a diff shows what the plan holds.
    return json_text(data, sort_keys=True)


PROVENANCE_KEYS: Final = ("created_at", "userctl_version", "files", "git_commit")


def provenance(
    created_at: dt.datetime,
    files: Mapping[str, str],
    git_commit: str | None,
    database: str | None = None,
) -> dict[str, Any]:
    """A plan's provenance: when (UTC), by which userctl, from which files (path -> SHA-256) and
    git commit, against which database (its display form, without credentials)."""
    from userctl import __version__

    made = {
        "created_at": iso_z(created_at),
        "userctl_version": __version__,
        "files": dict(sorted(files.items())),
        "git_commit": git_commit,
    }
    return made if database is None else {**made, "database": database}


def made_at(plan: Plan) -> dt.datetime | None:
    """When a saved plan says it was made (naive UTC), or None for an unstamped one."""
    text = plan.provenance.get("created_at")
    return parse_utc(text) if isinstance(text, str) else None


def loads(text: str, source: str = "plan") -> Plan:
    """Read a saved plan from its text (see `read_saved`)."""
    return read_saved((text,), source)


def read_saved(chunks: Iterable[str], source: str = "plan") -> Plan:
    """Read a saved plan: JSON that plan.schema.json accepts (so every kind, action and field is
    one the planner writes) and whose content still matches its digest.

    Read from `chunks` of its text change by change: each change is checked, built and hashed
    as it is read, and neither the text nor its parse tree is ever held whole (at 100k creates
    they were most of an apply's memory). Any JSON layout is read alike (a file re-indented by
    a tool is the same plan); a key given twice at the top is refused, since which of the two a
    reader takes is not the same everywhere."""
    stream = _JsonStream(chunks, source)
    changes = _SavedChanges(source)
    try:
        top = _read_top(stream, changes)
    except RecursionError:
        raise InputError([Problem("not a saved plan: nested too deeply", (), source)]) from None
    if (
        not isinstance(top, dict)
        or top.get("format_version") != FORMAT_VERSION
        or "digest" not in top
    ):
        raise InputError(
            [
                Problem(
                    "not a saved userctl plan (format_version "
                    f"{FORMAT_VERSION} expected): plan again",
                    (),
                    source,
                )
            ]
        )
    _check_schema(top, source)
    if changes.problem is not None:
        raise changes.problem
    missing = sorted(set(PROVENANCE_KEYS) - set(top["provenance"]))
    if missing:
        raise InputError(
            [
                Problem(
                    "saved plan is malformed: its provenance lacks "
                    f"{', '.join(missing)}: plan again",
                    (),
                    source,
                )
            ]
        )
    if changes.malformed is not None:
        raise changes.malformed
    try:
        plan = Plan(
            organization=top["organization"],
            two_factor_policy=top["two_factor_policy"],
            changes=tuple(changes.changes),
            preconditions=top["preconditions"],
            findings=tuple(Finding(**f) for f in top["findings"]),
            options=top["options"],
            provenance=top["provenance"],
            gate=top["gate"],
        )
        actual = changes.digest.finish(plan.signed_content_but_changes())
        made_at(plan)  # read by --max-age: a stamp the calendar cannot hold is malformed here
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError([Problem(f"saved plan is malformed: {exc}", (), source)])
    if actual != top["digest"] or changes.misaddressed:
        raise Refused(
            f"{source} was modified after it was written: its content does not match its digest "
            f"{top['digest']}; plan again instead of editing a saved plan"
        )
    plan._know_digest(actual)
    plan._know_fingerprints(bytes(changes.digest.fingerprints))
    return plan


def saved_changes_at(
    chunks: Iterable[str], positions: Iterable[int], source: str = "plan"
) -> Iterator[tuple[int, Change]]:
    """The changes at `positions` (ascending) of a saved plan `read_saved` accepted, read again
    from `chunks` of its text, each built as it is reached: apply words a refusal with a saved
    change it let go of (replan.py). The caller checks each is the change it read before (by its
    fingerprint): the text may have changed since."""
    wanted = iter(positions)
    target = next(wanted, None)
    stream = _JsonStream(chunks, source)
    if target is None or stream.peek() != "{":
        return
    stream.take()
    while stream.peek() == '"':
        key = stream.value()
        if stream.peek() != ":":
            return
        stream.take()
        if key == "changes" and stream.peek() == "[":
            stream.take()
            index = 0
            while target is not None and stream.peek() not in ("]", ""):
                data = stream.value()
                if index == target:
                    yield index, Change.from_data(data)
                    target = next(wanted, None)
                index += 1
                if not stream.delimiter("]"):
                    return
            return
        stream.value()
        if not stream.delimiter("}"):
            return


class _SavedChanges:
    """A saved plan's changes as they are read: each checked against the schema, built and fed
    to the digest, its JSON then dropped. The first problem is kept to be reported in its turn
    (after what `read_saved` checks of the whole document first); the changes after it are
    only parsed."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.changes: list[Change] = []
        self.digest = _StreamedDigest()
        self.problem: InputError | None = None  # the schema refuses a change
        self.malformed: InputError | None = None  # it cannot be built
        # A change whose stated address is not its kind and key's: the digest covers the address
        # its kind and key give (Change.to_data), so an address edited alone would go unseen.
        self.misaddressed = False
        self._memo: dict[str, str] = {}

    def add(self, data: Any) -> None:
        if self.problem is not None or self.malformed is not None:
            return
        index = len(self.changes)
        try:
            _check_schema(data, self.source, _change_validator(), ("changes", index))
        except InputError as exc:
            self.problem = exc
            return
        try:
            change = Change.from_data(self._shared(data))
            written = change.to_data()
            if written["address"] != data["address"]:
                self.misaddressed = True
            self.digest.add_data(written)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.malformed = InputError(
                [Problem(f"saved plan is malformed: {exc}", (), self.source)]
            )
            return
        self.changes.append(change)

    def _shared(self, data: dict[str, Any]) -> dict[str, Any]:
        """`data` with one string object for each field name, and for each value of a field with
        few values (a role, a status, a note...). Each change is parsed on its own, so each
        would otherwise hold its own copy of every name: a third of a saved create's memory."""
        memo = self._memo
        for name in ("kind", "action", "note"):
            value = data.get(name)
            if isinstance(value, str):
                data[name] = memo.setdefault(value, value)
        before = data.get("before")
        if isinstance(before, dict):
            before = data["before"] = {
                memo.setdefault(k, k): memo.setdefault(v, v)
                if k in _FEW_VALUES and isinstance(v, str)
                else v
                for k, v in before.items()
            }
        else:
            before = {}
        after = data.get("after")
        if isinstance(after, dict):
            # An update's `after` repeats most of its `before`: the field it keeps is the same
            # string object on both sides, not a second copy of it.
            data["after"] = {
                memo.setdefault(k, k): memo.setdefault(v, v)
                if k in _FEW_VALUES and isinstance(v, str)
                else _same(before.get(k), v)
                for k, v in after.items()
            }
        key = data.get("key")
        record = data["after"] if isinstance(data.get("after"), dict) else before
        if isinstance(key, list) and key and isinstance(record, dict):
            # The key names the row its record describes: a user's email, an assignment's user.
            key[0] = _same(record.get("email", record.get("user")), key[0])
        return data


def _same(mine: Any, value: Any) -> Any:
    """`mine` where it is the same string as `value` (so one object is kept), else `value`."""
    return mine if type(value) is str and type(mine) is str and mine == value else value


# Record fields whose values repeat across a plan's changes (what `_SavedChanges` shares).
_FEW_VALUES: Final = frozenset({"role", "status", "two_factor", "id_type", "bank_account"})


def _read_top(stream: "_JsonStream", changes: _SavedChanges) -> Any:
    """The top-level value of a saved plan, its "changes" given to `changes` one by one."""
    if stream.peek() != "{":
        value = stream.value()
        stream.end()
        return value
    stream.take()
    top: dict[str, Any] = {}
    if stream.peek() == "}":
        stream.take()
        stream.end()
        return top
    while True:
        if stream.peek() != '"':
            raise stream.error("Expecting property name enclosed in double quotes")
        key = stream.value()
        if stream.peek() != ":":
            raise stream.error("Expecting ':' delimiter")
        stream.take()
        if key in top:
            raise InputError(
                [
                    Problem(
                        f"saved plan is malformed: it gives {json.dumps(key)} twice",
                        (),
                        stream.source,
                    )
                ]
            )
        if key == "changes" and stream.peek() == "[":
            stream.take()
            top[key] = []  # given to `changes`, not kept
            if stream.peek() == "]":
                stream.take()
            else:
                while True:
                    changes.add(stream.value())
                    if not stream.delimiter("]"):
                        break
        else:
            top[key] = stream.value()
        if not stream.delimiter("}"):
            break
    stream.end()
    return top


_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
_DECODER: Final = json.JSONDecoder()
# Text is asked for in pieces at least this long (a saved plan is read in chunks of about this).
_PIECE: Final = 1 << 20


class _JsonStream:
    """JSON values read one at a time from text that arrives in chunks: a value is parsed once
    the buffer holds all of it (a failed parse before the end of the text reads more, at least
    doubling what is tried again), and what was read is dropped. Errors are placed at the line
    and column `json.loads` would give."""

    def __init__(self, chunks: Iterable[str], source: str) -> None:
        self.source = source
        self._chunks = iter(chunks)
        self._buffer = ""
        self._pos = 0
        self._line = 1  # the line of the buffer's first character
        self._column = 0  # how many characters precede it on that line
        self._eof = False

    def _more(self, at_least: int = 1) -> None:
        """Drop what was read; append at least `at_least` characters (fewer at the end)."""
        buffer, pos = self._buffer, self._pos
        if pos:
            newlines = buffer.count("\n", 0, pos)
            if newlines:
                self._line += newlines
                self._column = pos - buffer.rfind("\n", 0, pos) - 1
            else:
                self._column += pos
        got = [buffer[pos:]]
        size = 0
        while size < at_least:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
                break
            got.append(chunk)
            size += len(chunk)
        self._buffer, self._pos = "".join(got), 0

    def _skip(self) -> None:
        while True:
            match = _WHITESPACE.match(self._buffer, self._pos)
            assert match is not None  # it matches the empty string
            self._pos = match.end()
            if self._pos < len(self._buffer) or self._eof:
                return
            self._more()

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end)."""
        self._skip()
        return self._buffer[self._pos : self._pos + 1]

    def take(self) -> None:
        self._pos += 1

    def delimiter(self, closing: str) -> bool:
        """Past a "," (True: more follows) or `closing` (False); anything else is an error."""
        found = self.peek()
        if found == ",":
            self.take()
            return True
        if found == closing:
            self.take()
            return False
        raise self.error("Expecting ',' delimiter")

    def value(self) -> Any:
        while True:
            self._skip()
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                if self._eof:
                    raise self.error(exc.msg, exc.pos) from None
                self._more(max(_PIECE, len(self._buffer) - self._pos))
                continue
            if end == len(self._buffer) and not self._eof:
                self._more()  # a number may go on in the next chunk
                continue
            self._pos = end
            return value

    def end(self) -> None:
        """Nothing but whitespace is left."""
        self._skip()
        if self._pos < len(self._buffer):
            raise self.error("Extra data")

    def error(self, message: str, pos: int | None = None) -> InputError:
        at = self._pos if pos is None else pos
        line = self._line + self._buffer.count("\n", 0, at)
        last = self._buffer.rfind("\n", 0, at)
        column = at - last if last >= 0 else self._column + at + 1
        return InputError(
            [Problem(f"not a saved plan: invalid JSON ({message})", (), self.source, line, column)]
        )


PLAN_SCHEMA_PATH: Final = Path(__file__).resolve().parent / "schemas" / "plan.schema.json"


@functools.cache
def _plan_validator() -> Any:
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(
        json.loads(PLAN_SCHEMA_PATH.read_text(encoding="utf-8"))
    )


@functools.cache
def _change_validator() -> Any:
    """The schema of one change, for a saved plan's changes checked one by one."""
    import jsonschema_rs

    schema = json.loads(PLAN_SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema_rs.Draft202012Validator(
        {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/change"}
    )


def _check_schema(
    data: Any, source: str, validator: Any = None, at: tuple[str | int, ...] = ()
) -> None:
    """`data` (at `at` in the plan) as the schema (`validator`: the plan's) has it."""
    try:
        error = next(iter((validator or _plan_validator()).iter_errors(data)), None)
    except UnicodeEncodeError:
        # JSON may spell a lone surrogate ("\ud800"), which is no text at all.
        raise InputError(
            [
                Problem(
                    "saved plan is malformed: it holds a lone surrogate, which is not text",
                    (),
                    source,
                )
            ]
        ) from None
    if error is not None:
        where = "/".join(str(p) for p in (*at, *error.instance_path)) or "(document)"
        message = str(error.message)
        shown = message if len(message) <= 200 else message[:200] + "…"
        raise InputError([Problem(f"saved plan is malformed at {where}: {shown}", (), source)])
