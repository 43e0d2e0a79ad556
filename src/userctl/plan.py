"""Plan and Change: changes as plain data, with one serialisation (`Plan.to_data`).

The same data feeds every renderer, the saved plan file, the digest and apply; nothing else
walks a plan its own way. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final, Mapping

from userctl.errors import InputError, Problem, Refused
from userctl.state import canonical_json

FORMAT_VERSION: Final = 1

# Apply order (DESIGN §3). A change's phase decides where it runs; within a phase changes are
# sorted by address so that the same inputs always give byte-identical plans.
PHASES: Final[tuple[str, ...]] = (
    "role.create",  # and role.update that only adds permissions / edits the description
    "user.activate",
    "user.create",  # and user.replace: the old row goes, the new one is created
    "user.update",  # update, change_role, set_two_factor, disable_two_factor
    "assignment.unassign",
    "assignment.assign",
    "user.deactivate",
    "user.delete",
    "role.delete",  # and role.update that removes permissions
)

ACTIONS: Final[dict[str, tuple[str, ...]]] = {
    "role": ("create", "update", "delete"),
    "user": (
        "create",
        "update",
        "change_role",
        "activate",
        "deactivate",
        "set_two_factor",
        "disable_two_factor",
        "delete",
        "replace",
    ),
    "assignment": ("assign", "unassign"),
}


def role_address(name: str) -> str:
    return f"role[{json.dumps(name, ensure_ascii=False)}]"


def user_address(email: str) -> str:
    return f"user[{json.dumps(email, ensure_ascii=False)}]"


def assignment_address(email: str, key: str) -> str:
    return f"assignment[{json.dumps(email, ensure_ascii=False)} -> {json.dumps(key, ensure_ascii=False)}]"


def bank_account_address(key: str) -> str:
    return f"bank_account[{json.dumps(key, ensure_ascii=False)}]"


def organization_address(slug: str) -> str:
    return f"organization[{json.dumps(slug, ensure_ascii=False)}]"


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan.

    `before`/`after` are whole records (None when the row is absent), `diff` maps each field
    that changes to {"before", "after"} (sets also get "added"/"removed"). `key` is the identity
    inside its kind: (name,) for roles, (email,) for users, (email, bank key) for assignments.
    """

    kind: str
    key: tuple[str, ...]
    action: str
    phase: int
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    diff: Mapping[str, Mapping[str, Any]]
    destructive: bool = False
    requires_2fa: bool = False
    deferred: bool = False
    note: str | None = None

    @property
    def address(self) -> str:
        if self.kind == "role":
            return role_address(self.key[0])
        if self.kind == "user":
            return user_address(self.key[0])
        return assignment_address(self.key[0], self.key[1])

    def to_data(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "kind": self.kind,
            "key": list(self.key),
            "action": self.action,
            "phase": PHASES[self.phase],
            "before": self.before,
            "after": self.after,
            "diff": self.diff,
            "destructive": self.destructive,
            "requires_2fa": self.requires_2fa,
            "deferred": self.deferred,
            "note": self.note,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "Change":
        return cls(
            kind=data["kind"],
            key=tuple(data["key"]),
            action=data["action"],
            phase=PHASES.index(data["phase"]),
            before=data["before"],
            after=data["after"],
            diff=data["diff"],
            destructive=data["destructive"],
            requires_2fa=data["requires_2fa"],
            deferred=data["deferred"],
            note=data.get("note"),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # removal_guard / admin_guard / self_guard / mass_removal_allowed ...
    blocking: bool
    message: str

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
        deferred = destructive = needs_2fa = 0
        for c in self.changes:
            if c.deferred:
                deferred += 1
                continue
            counts[_summary_bucket(c)] += 1
            destructive += c.destructive
            needs_2fa += c.requires_2fa
        return {
            **counts,
            "total": sum(counts.values()),
            "deferred": deferred,
            "destructive": destructive,
            "requires_2fa": needs_2fa,
        }

    def signed_content(self) -> dict[str, Any]:
        """What the digest covers: organization, policy, changes, preconditions and the options
        that shaped them (so `allow_mass_removal` cannot be switched on by editing the file)."""
        return {
            "format_version": FORMAT_VERSION,
            "organization": self.organization,
            "two_factor_policy": self.two_factor_policy,
            "changes": [c.to_data() for c in self.changes],
            "preconditions": dict(sorted(self.preconditions.items())),
            "options": dict(self.options),
        }

    @property
    def digest(self) -> str:
        return compute_digest(self.signed_content())

    def to_data(self) -> dict[str, Any]:
        """The one serialisation: JSON output, the saved plan file and every renderer use it."""
        content = self.signed_content()
        return {
            **content,
            "digest": compute_digest(content),
            "findings": [f.to_data() for f in self.findings],
            "summary": self.summary(),
        }


def _summary_bucket(change: Change) -> str:
    if change.action in ("create", "delete", "replace"):
        return change.action
    return "update"


def compute_digest(content: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def dumps(plan: Plan) -> str:
    """The saved plan file (`plan --out`): the same text as `--format json`."""
    return dumps_data(plan.to_data())


def dumps_data(data: Mapping[str, Any]) -> str:
    """Stable, human-diffable JSON of a plan's data."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def loads(text: str, source: str = "plan") -> Plan:
    """Read a saved plan, refusing one whose content no longer matches its digest."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError([Problem(f"not a saved plan: invalid JSON ({exc.msg})", (), source, exc.lineno, exc.colno)])
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION or "digest" not in data:
        raise InputError([Problem(f"not a saved userctl plan (format_version {FORMAT_VERSION} expected)", (), source)])
    try:
        plan = Plan(
            organization=data["organization"],
            two_factor_policy=data["two_factor_policy"],
            changes=tuple(Change.from_data(c) for c in data["changes"]),
            preconditions=data["preconditions"],
            findings=tuple(Finding(**f) for f in data.get("findings", [])),
            options=data.get("options", {}),
        )
        actual = plan.digest
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError([Problem(f"saved plan is malformed: {exc}", (), source)])
    if actual != data["digest"]:
        raise Refused(
            f"{source} was modified after it was written: its content does not match its digest "
            f"{data['digest']}; plan again instead of editing a saved plan"
        )
    return plan
