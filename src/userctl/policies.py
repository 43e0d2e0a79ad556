"""Access policies (DESIGN §1 "Policies"): the rules an organization declares in its `policies:`
section, judged on a whole state. The planner judges the state a plan leaves behind (the one the
guards judge), apply judges it again under the lock, `validate` judges the file's own state and
`policy check` the live database. One function for all four, so they cannot disagree.

Each violation names its rule, the roles or users at fault and the path of the offending
declaration in a desired-state file, which the edges turn into FILE:LINE:COL. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Mapping, Sequence

from userctl.errors import Path, first_few
from userctl.state import (
    GATE_RULES,
    KEYED_POLICY_RULES,
    PERMISSIONS,
    POLICY_DEFAULTS,
    POLICY_RULES,
    TWO_FACTOR_POLICIES,
    LiveState,
    Organization,
    Policies,
    PolicyKey,
    PolicyValue,
    email_key,
    gate_policies,
    policy_text,
)

# `userctl validate` checks a file's policies without the plan (and the hashing, JSON and hygiene
# it imports): imported where a finding is made.
if TYPE_CHECKING:
    from userctl.plan import Finding

# Local parts of shared role mailboxes (PCI DSS 8.2.2: one person per account). The one list.
ROLE_MAILBOXES: Final[frozenset[str]] = frozenset(
    {
        "accounting",
        "accounts",
        "admin",
        "administrator",
        "billing",
        "compliance",
        "contact",
        "finance",
        "help",
        "hello",
        "hr",
        "info",
        "it",
        "legal",
        "no-reply",
        "noreply",
        "office",
        "ops",
        "operations",
        "payments",
        "payouts",
        "postmaster",
        "sales",
        "security",
        "support",
        "team",
        "treasury",
        "webmaster",
    }
)
# The rules that hold a number of days (hygiene and access reviews read them; nothing here judges
# them), and their bound, as the JSON Schema gives it.
DAY_RULES: Final[frozenset[str]] = frozenset({"max_inactive_days", "review_every_days"})
MAX_DAYS: Final = 3650
# The bound of min_admins, as the JSON Schema gives it.
MAX_ADMINS: Final = 1000
# How many users a violation names before it counts the rest.
SHOWN = 5
# The rules `validate` can decide from a file alone: require_reason is about a plan, not a state.
STATE_RULES: Final[tuple[str, ...]] = tuple(
    r for r in POLICY_RULES if r != "require_reason" and r not in GATE_RULES
)


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    message: str
    # Where a desired-state file declares what breaks the rule, e.g. ("users", email, "two_factor").
    path: Path = ()

    def finding(self) -> Finding:
        from userctl.plan import Finding

        return Finding(f"policy.{self.rule}", True, self.message, self.path)


def mailbox(email: str) -> str | None:
    """The role mailbox `email` is, or None: its local part, less any +tag, compared lower-case."""
    local = email.rpartition("@")[0].lower().partition("+")[0]
    return local if local in ROLE_MAILBOXES else None


def requires_reason(*policies: Policies) -> bool:
    return any(p.get(("require_reason", "")) is True for p in policies)


@dataclass(frozen=True, slots=True)
class InForce:
    """A setting that always holds a value (DESIGN §8 invariant 4: a default is a value), and
    whether that value is a default. A rule of POLICY_DEFAULTS is a default while the organization
    declares none; a gate setting always holds a declared-or-initial value in the organization's
    row, so it counts as a default while it holds what every organization starts with (a file that
    declared that same value leaves no trace to tell them apart)."""

    rule: str
    value: PolicyValue
    default: bool


# The gate an organization starts with, before any file changed it (state.Organization's).
GATE_DEFAULTS: Final[Mapping[str, PolicyValue]] = {
    rule: value for (rule, _), value in gate_policies(Organization("", "")).items()
}


def in_force(state: LiveState) -> list[InForce]:
    """Every setting that always holds a value, by rule name: the gate's and the day limits'."""
    gate = {rule: value for (rule, _), value in gate_policies(state.organization).items()}
    settings: list[InForce] = []
    for rule in sorted([*GATE_DEFAULTS, *POLICY_DEFAULTS]):
        if rule in gate:
            value, default = gate[rule], GATE_DEFAULTS[rule]
            settings.append(InForce(rule, value, value == default and type(value) is type(default)))
            continue
        declared = state.policies.get((rule, ""))
        settings.append(
            InForce(rule, POLICY_DEFAULTS[rule] if declared is None else declared, declared is None)
        )
    return settings


def live_check(state: LiveState, today: dt.date) -> tuple[list[Violation], list[Finding]]:
    """`policy check` on the live state: every violation of its policies, and every user past
    their expiry still active (the next plan deactivates them; until then it is drift); and, as
    notes, the users whose last day is near."""
    from userctl.hygiene import expiry_findings

    dated = expiry_findings(state.users, today)
    expired = [Violation("expires", f.message, f.path) for f in dated if f.blocking]
    return [*check(state), *expired], [f for f in dated if not f.blocking]


def check(state: LiveState, policies: Policies | None = None) -> list[Violation]:
    """Every violation of `policies` (by default the state's own) by `state`'s roles and users.
    Inactive users hold nothing: they cannot log in."""
    policies = state.policies if policies is None else policies
    found = identity_violations(state)
    if not policies:
        return found
    found += _separation_of_duties(state, policies)
    held: dict[str, list[str]] = {}  # permission -> the active users holding it, by email
    watched = set(_list(policies, ("require_two_factor", ""))) | {
        name for rule, name in policies if rule == "max_holders"
    }
    shared = policies.get(("forbid_shared_mailboxes", "")) is True
    for email in sorted(state.users):
        user = state.users[email]
        if user.status == "inactive":
            continue
        if shared and mailbox(email) is not None:
            found.append(
                Violation(
                    "forbid_shared_mailboxes",
                    f"forbid_shared_mailboxes: {email} is a shared role mailbox "
                    f"({mailbox(email)}@): each account must belong to one person",
                    ("users", email),
                )
            )
        role = state.roles.get(user.role)
        if role is None or not watched:
            continue
        for permission in role.permissions & watched:
            held.setdefault(permission, []).append(email)
    found += _two_factor(state, policies, held)
    found += _max_holders(policies, held)
    return found


def identity_violations(state: LiveState) -> list[Violation]:
    """Rows of one identity (DESIGN §8 invariant 6): users whose emails differ only by case,
    written by the platform into a database without migration 0007's unique index. Whatever else
    a plan or a report says about them would be about one of the two, so this holds always, with
    or without declared policies, on every state `check` judges (a plan's, apply's, the live one
    of `policy check` and the review)."""
    return identity_clashes(state.case_duplicates)


def identity_clashes(groups: Sequence[Sequence[str]]) -> list[Violation]:
    """The violation of each group of stored emails of one identity: what `identity_violations`
    reports, and the listings warn of, in one wording."""
    return [
        Violation(
            "case_blind_identity",
            f"case_blind_identity: {' and '.join(group)} are {len(group)} users of one identity "
            "(their emails differ only by case), each with access of its own; delete or rename "
            "all but one on the platform, then run `userctl db upgrade` so the database refuses "
            "such a row",
            ("users", email_key(group[0])),
        )
        for group in groups
    ]


def _list(policies: Policies, key: PolicyKey) -> list[str]:
    value = policies.get(key)
    return value if isinstance(value, list) else []


def _separation_of_duties(state: LiveState, policies: Policies) -> list[Violation]:
    found = []
    for (rule, name), value in sorted(policies.items()):
        if rule != "separation_of_duties" or not isinstance(value, list):
            continue
        for role_name in sorted(state.roles):
            together = sorted(state.roles[role_name].permissions & set(value))
            if len(together) > 1:
                holders = sorted(
                    e
                    for e, u in state.users.items()
                    if u.role == role_name and u.status != "inactive"
                )
                who = f", held by {first_few(holders, SHOWN)}" if holders else ""
                found.append(
                    Violation(
                        rule,
                        f"separation_of_duties.{name}: role {role_name!r} holds "
                        f"{' and '.join(together)} together{who}; no single role may hold more "
                        f"than one of {', '.join(sorted(value))}",
                        ("roles", role_name, "permissions"),
                    )
                )
    return found


def _two_factor(
    state: LiveState, policies: Policies, held: Mapping[str, list[str]]
) -> list[Violation]:
    found = []
    required = _list(policies, ("require_two_factor", ""))
    lacking: dict[str, list[str]] = {}  # email -> the permissions that require it
    for permission in sorted(required):
        for email in held.get(permission, ()):
            if state.users[email].two_factor != "required":
                lacking.setdefault(email, []).append(permission)
    for email in sorted(lacking):
        user = state.users[email]
        found.append(
            Violation(
                "require_two_factor",
                f"require_two_factor: {email} holds {', '.join(lacking[email])} through role "
                f"{user.role!r} but is declared two_factor: {user.two_factor}; holders of "
                f"{', '.join(sorted(required))} must be two_factor: required",
                ("users", email, "two_factor"),
            )
        )
    return found


def _max_holders(policies: Policies, held: Mapping[str, list[str]]) -> list[Violation]:
    found = []
    for (rule, permission), limit in sorted(policies.items()):
        if rule != "max_holders" or not isinstance(limit, int) or isinstance(limit, bool):
            continue
        holders = held.get(permission, [])
        if len(holders) > limit:
            found.append(
                Violation(
                    rule,
                    f"max_holders.{permission}: {len(holders)} active users would hold "
                    f"{permission}, more than {limit}: {first_few(holders, 10)}",
                    ("policies", rule, permission),
                )
            )
    return found


def reason_violation(reason: str | None, *policies: Policies) -> Violation | None:
    if reason or not requires_reason(*policies):
        return None
    return Violation(
        "require_reason",
        "policies.require_reason: every plan must carry a reason: plan again with "
        "--reason TEXT (or USERCTL_REASON), e.g. the ticket or pull request it implements",
    )


def value_problem(key: PolicyKey, value: Any) -> str | None:
    """Why `value` cannot be the policy `key` (a saved plan's values are never trusted), or None.
    `value` None: the policy is removed, only its key is judged."""
    rule, name = key
    if rule not in POLICY_RULES:
        return f"{rule!r} is not a policy rule ({', '.join(POLICY_RULES)})"
    if (rule in KEYED_POLICY_RULES) != bool(name):
        return f"{policy_text(key)} is not a policy entry"
    if value is None:
        return None
    if rule == "max_holders":
        ok = (
            name in PERMISSIONS
            and isinstance(value, int)
            and not isinstance(value, bool)
            and 0 <= value <= 1_000_000
        )
    elif rule in ("separation_of_duties", "require_two_factor"):
        ok = (
            isinstance(value, list)
            and all(p in PERMISSIONS for p in value)
            and value == sorted(set(value))
            and (rule != "separation_of_duties" or (len(name) <= 100 and len(value) >= 2))
        )
    elif rule in DAY_RULES:
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DAYS
    elif rule == "two_factor_policy":
        ok = value in TWO_FACTOR_POLICIES
    elif rule == "min_admins":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ADMINS
    else:
        ok = isinstance(value, bool)
    return None if ok else f"{policy_text(key)} cannot hold {value!r}"
