"""A saved plan is evidence, never authority (DESIGN §3): before apply (or an approval) trusts a
saved plan, it re-derives the plan from the live state and refuses anything else as forged.

The digest of a saved plan proves only that nobody edited it since the digest was computed, and
anyone can compute one: a pull request's CI job can hand the merge job any file it likes. So the
only things trusted here are the live state (read under the organization lock) and the planner:
- the plan's 2FA policy must be the organization's;
- each change's flags must be what `risk.assess` gives for the live state;
- planning the state the plan leads to against the live state must give back exactly the plan's
  changes and preconditions. A change the planner would refuse (an immutable field, an inactive
  user, an unknown role or bank account, an assignment to a pending user) cannot be written so
  that this holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

from userctl.errors import ForgedPlan, InputError, StalePlan
from userctl.names import free_text_problem
from userctl.plan import (
    Action,
    Change,
    Kind,
    Plan,
    change_address,
    planned_fingerprint,
)
from userctl.planner import PlanOptions, diff
from userctl.policies import value_problem
from userctl.printable import printable
from userctl.risk import assess
from userctl.simulate import DoesNotFit, apply_changes
from userctl.state import (
    DesiredState,
    LiveState,
    canonical_json,
    gate_policies,
    limit_problem,
    organization_settings,
)

# The longest reason a plan may carry (a ticket id or a pull request's title).
MAX_REASON = 500


def reason_problem(reason: object) -> str | None:
    """Why `reason` cannot be a plan's reason, or None (the CLI and apply judge it alike)."""
    return None if reason is None else free_text_problem(reason, "the reason", MAX_REASON)


def is_date(value: object) -> bool:
    """An ISO calendar date, YYYY-MM-DD, that exists."""
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


# The saved changes at some positions (ascending), given back to word a refusal.
SavedAt = Callable[[Sequence[int]], Iterator[tuple[int, Change]]]


class ChangeName(NamedTuple):
    """What a refusal names of a change that is let go of: its address (from its kind and key,
    the change's own objects, so that keeping them builds no text) and its action."""

    kind: Kind
    key: tuple[str, ...]
    action: Action

    @property
    def address(self) -> str:
        return change_address(self.kind, self.key)


@dataclass(slots=True)
class HeldPlan:
    """A plan that apply (or approve) holds alone, so that it never holds two: while the planner
    re-derives the plan's changes, the saved ones are let go of (`plan` is then the plan without
    its changes, which knows their fingerprints), and once each re-derived change is proven to be
    the saved one at its place, `plan` holds the re-derived ones: the same data, digest and
    fingerprints, so what is applied is what was approved. Mutable on purpose: whoever holds the
    holder reads whichever plan is current. After a refusal `plan` holds no changes.

    `saved_at` gives back the saved changes at some positions, for a refusal worded as it always
    was (re-read from the saved file; `kept` keeps them instead). None for a plan `made` in this
    process: `names` then words a refusal (see there)."""

    plan: Plan
    saved_at: SavedAt | None
    names: tuple[ChangeName, ...] = ()

    @classmethod
    def kept(cls, plan: Plan) -> "HeldPlan":
        """`plan` with its changes kept beside it: a plan its caller holds anyway."""
        changes = plan.changes
        return cls(plan, lambda positions: ((i, changes[i]) for i in positions))

    @classmethod
    def made(cls, plan: Plan) -> "HeldPlan":
        """`plan`, made by the planner in this process moments before (`apply -f FILE`), held
        with only each change's name beside its fingerprint. The planner wrote both it and the
        re-derived plan, from the same file, and the preconditions held under the lock: a change
        that differs is the live state moving where the preconditions do not pin it (who holds
        a role) or the day changing, so it is refused as stale, naming the change, with no need
        of the first one's data (and a refusal never calls the plan forged)."""
        return cls(plan, None, tuple(ChangeName(c.kind, c.key, c.action) for c in plan.changes))


def check_rederived(plan: Plan | HeldPlan, live: LiveState, today: dt.date | None = None) -> None:
    """Refuse `plan` (ForgedPlan) unless the planner, given the live state (and `today`, the UTC
    date expiries are judged on), writes exactly it; a plan `HeldPlan.made` in this process whose
    changes the planner no longer writes is refused as stale instead. A HeldPlan then holds the
    re-derived changes (see there); a Plan is left as it is."""
    held = plan if isinstance(plan, HeldPlan) else HeldPlan.kept(plan)
    del plan  # from here the holder's is the only reference this frame keeps
    saved = held.plan
    slug = live.organization.slug
    _check_values(saved)
    if saved.two_factor_policy != live.organization.two_factor_policy:
        raise _forged(
            saved,
            f"it states the 2FA policy {saved.two_factor_policy!r}, but {slug}'s is "
            f"{live.organization.two_factor_policy!r}",
        )
    in_force = organization_settings(live.organization)
    if saved.gate_settings != in_force:
        raise _forged(
            saved,
            f"it states the gate {canonical_json(saved.gate_settings)}, but {slug}'s is "
            f"{canonical_json(in_force)}",
        )
    try:
        after = apply_changes(live, saved.changes)
    except DoesNotFit as exc:
        raise _forged(saved, f"{exc} does not fit the live state of {slug}") from None
    _check_flags(saved, live, after, today)
    desired = _desired_after(live, saved.changes, after)
    del after
    # The saved changes are let go of before the planner writes its own: only their fingerprints
    # stay, and each re-derived change is checked against the one at its place.
    header = held.plan = saved.without_changes()
    del saved
    try:
        replanned = diff(desired, live, options_of(header.options), today)
    except InputError as exc:
        raise _forged(header, f"the planner refuses what it asks: {exc.problems[0]}") from None
    del desired
    changes = _adopted(held, header, replanned.changes)
    if dict(replanned.preconditions) != dict(header.preconditions):
        missing = sorted(set(replanned.preconditions) - set(header.preconditions))
        extra = sorted(set(header.preconditions) - set(replanned.preconditions))
        detail = (
            f"it omits {missing[0]}"
            if missing
            else f"it adds {extra[0]}"
            if extra
            else "their hashes differ"
        )
        raise _forged(header, f"its preconditions are not the ones its changes depend on: {detail}")
    held.plan = header.with_changes(changes)


def _check_flags(plan: Plan, live: LiveState, after: LiveState, today: dt.date | None) -> None:
    """Each change's flags are what `risk.assess` gives for the live state. (A function of its
    own: a loop's variable left in the caller would keep its last change alive.)"""
    for stated, judged in zip(plan.changes, assess(live, plan.changes, after, today)):
        if _flags(stated) != _flags(judged):
            raise _forged(
                plan,
                f"{stated.address} {stated.action} is marked "
                f"{_shown(stated)}, but it is {_shown(judged)}",
            )


def _adopted(held: HeldPlan, header: Plan, derived: tuple[Change, ...]) -> tuple[Change, ...]:
    """The re-derived changes `derived`, once each is proven the saved change at its place (the
    saved plan's, where the two are equal as data but not byte for byte); else the refusal of the
    first that is not (`_same_change`), or of a change one side has and the other has not, worded
    with the saved change given back."""
    stated = header.fingerprinted
    differing = [
        i
        for i, theirs in enumerate(derived[:stated])
        if planned_fingerprint(theirs) != header.fingerprint_at(i)
    ]
    if held.saved_at is None:
        _refuse_moved(held.names, differing, derived)
        return derived  # each proven, by its fingerprint, the change made moments before
    adopted = list(derived)
    for i, mine in held.saved_at(differing):
        _same_change(header, mine, derived[i])
        adopted[i] = mine  # equal as data though not as bytes: the saved one, as always
    if stated > len(derived):
        for _, mine in held.saved_at([len(derived)]):
            raise _forged(
                header, f"{mine.address} {mine.action} is a change the planner does not write"
            )
    if stated < len(derived):
        raise _forged(header, f"it leaves out {derived[stated].address} {derived[stated].action}")
    return tuple(adopted)


def _refuse_moved(
    names: tuple[ChangeName, ...], differing: list[int], derived: tuple[Change, ...]
) -> None:
    """Refuse as stale (HeldPlan.made) a plan made in this process that the planner, re-deriving
    it, no longer writes: the first change that differs, that it no longer writes or that it
    now writes too, in the order `_adopted` looks for them."""
    if differing:
        name = names[differing[0]]
        raise _moved(f"the planner now writes another {name.address} {name.action}")
    if len(names) > len(derived):
        name = names[len(derived)]
        raise _moved(f"the planner no longer writes {name.address} {name.action}")
    if len(names) < len(derived):
        more = derived[len(names)]
        raise _moved(f"the planner now also writes {more.address} {more.action}")


def _moved(what: str) -> StalePlan:
    return StalePlan(
        f"the plan is stale: {printable(what)} for the live state (what the plan's rows do not "
        "pin changed since the plan was made, such as who holds a role, or the day did). "
        "Nothing was written; plan again."
    )


def same_plan(saved: Plan | HeldPlan, fresh: Plan) -> str | None:
    """Why `saved` is not `fresh` (changes, preconditions, options; provenance aside), or None.
    A HeldPlan may have let go of its changes already (`Plan.without_changes`, before `fresh` was
    planned): when the two are the same it then holds `fresh`'s changes, as `check_rederived`
    leaves it."""
    held = saved if isinstance(saved, HeldPlan) else HeldPlan.kept(saved)
    del saved
    header = held.plan if not held.plan.changes else held.plan.without_changes()
    try:
        changes = _adopted(held, header, fresh.changes)
    except ForgedPlan as exc:
        return exc.detail
    except StalePlan as exc:
        return str(exc)
    if dict(header.options) != dict(fresh.options):
        differ = sorted(
            k
            for k in set(header.options) | set(fresh.options)
            if header.options.get(k) != fresh.options.get(k)
        )
        return f"the planning options differ ({', '.join(differ)})"
    if dict(header.preconditions) != dict(fresh.preconditions):
        return "the rows it depends on differ"
    held.plan = header.with_changes(changes)
    return None


# What a change's record holds, by the column each value is stored in (the planner never checks
# a value: the loader did, and a saved plan skips the loader).
_ROLE_COLUMNS: dict[str, str] = {"name": "roles.name", "description": "roles.description"}
_USER_COLUMNS: dict[str, str] = {
    name: f"users.{name}"
    for name in (
        "email",
        "id_type",
        "id_number",
        "phone",
        "first_name",
        "last_name",
        "status",
        "two_factor",
    )
}


def _check_values(plan: Plan) -> None:
    """Every value a change writes fits its column and the character rules, as if it had come
    through the loader: a hand-written plan must not store what no file could declare."""
    problem = reason_problem(plan.options.get("reason"))
    if problem is not None:
        raise _forged(plan, printable(problem))
    judged: dict[tuple[str, str], str | None] = {}
    for change in plan.changes:
        if change.kind == "policy":
            problem = value_problem(
                (change.key[0], change.key[1] if len(change.key) > 1 else ""),
                None if change.after is None else change.after.get("value"),
            )
            if problem is not None:
                raise _forged(
                    plan, f"{printable(change.address)} {change.action}: {printable(problem)}"
                )
            continue
        if change.after is None and change.kind != "assignment":
            continue  # a delete writes no value
        # Read as any mapping: a saved plan's record is what is being checked.
        record: Mapping[str, Any] = change.after or {}
        if change.kind == "role":
            checks = [(column, record.get(field)) for field, column in _ROLE_COLUMNS.items()]
            checks += [("role_permissions.permission", p) for p in record.get("permissions") or ()]
        elif change.kind == "user":
            checks = [
                (column, record.get(field))
                for field, column in _USER_COLUMNS.items()
                if field in record
            ]
            checks.append(("roles.name", record.get("role")))
            if record.get("expires") is not None and not is_date(record["expires"]):
                raise _forged(
                    plan,
                    f"{printable(change.address)} {change.action}: "
                    "expires is not a date YYYY-MM-DD",
                )
        else:
            checks = [("bank_accounts.key", change.key[1] if len(change.key) > 1 else None)]
        for column, value in checks:
            if type(value) is str:
                # A value judged once per column: roles, statuses, id types and common names
                # recur across a plan's changes, and the judgement depends on nothing else.
                if (column, value) in judged:
                    problem = judged[(column, value)]
                else:
                    problem = judged[(column, value)] = limit_problem(column, value)
            else:
                problem = limit_problem(column, value)
            if problem is not None:
                raise _forged(
                    plan, f"{printable(change.address)} {change.action}: {printable(problem)}"
                )


def options_of(data: Mapping[str, Any]) -> PlanOptions:
    return PlanOptions(
        prune=bool(data["prune"]),
        replace=frozenset(data["replace"]),
        allow_mass_removal=bool(data["allow_mass_removal"]),
        operator=data["operator"],
        reason=data.get("reason"),
    )


def _desired_after(live: LiveState, changes: tuple[Change, ...], after: LiveState) -> DesiredState:
    """The desired state a file must have declared to get `changes`: the state they lead to, with
    what deferred changes wait for (a pending user declared active, their bank accounts)."""
    pending = {
        c.key[0] for c in changes if c.deferred and c.kind == "user" and c.action == "activate"
    }
    waiting: dict[str, set[str]] = {}
    for c in changes:
        if c.deferred and c.kind == "assignment":
            waiting.setdefault(c.key[0], set()).add(c.key[1])
    users = dict(after.users)
    for email in pending | set(waiting):
        if email in users:
            user = users[email]
            users[email] = replace(
                user,
                status="active" if email in pending else user.status,
                bank_accounts=user.bank_accounts | waiting.get(email, set()),
            )
    # The gate's settings are declared as they are after the plan: one it leaves alone is what a
    # file omitting it keeps.
    return DesiredState(
        live.organization.slug,
        dict(after.roles),
        users,
        policies={**after.policies, **gate_policies(after.organization)},
    )


def _same_change(plan: Plan, mine: Change, theirs: Change) -> None:
    """Refuse `plan` unless its change `mine` is the planner's `theirs` at the same place."""
    # Equal as changes is equal as data (the same fields, compared alike), without building
    # each side's data: two creates compare their `after` once, not a diff derived from it.
    if mine != theirs and mine.to_data() != theirs.to_data():
        if replace(mine, impact=theirs.impact) == theirs:
            raise _impact_differs(mine)
        raise _forged(
            plan,
            f"{mine.address} {mine.action} is not what the planner writes "
            f"(it would write {theirs.address} {theirs.action}{_difference(mine, theirs)})",
        )


def _difference(mine: Change, theirs: Change) -> str:
    a, b = mine.to_data(), theirs.to_data()
    fields = [k for k in a if a[k] != b.get(k)]
    return (
        f"; {', '.join(fields)} differ"
        if fields and (mine.address, mine.action) == (theirs.address, theirs.action)
        else ""
    )


def _flags(change: Change) -> tuple[bool, bool, bool]:
    return (change.destructive, change.grants_privilege, change.requires_2fa)


def _shown(change: Change) -> str:
    names = [n for n, on in zip(("destructive", "privilege", "2FA"), _flags(change)) if on]
    return "[" + ", ".join(names) + "]" if names else "without risk"


def _impact_differs(change: Change) -> StalePlan:
    """A change's impact names rows its preconditions do not pin (who holds a role), so it can go
    out of date without the plan being forged: stale, either way not to be trusted."""
    what = (
        "the bank accounts it says the user holds"
        if change.kind == "user"
        else "the users it says lose the removed permissions"
    )
    return StalePlan(
        f"the plan is stale: for {printable(change.address)} {change.action}, {what} are not those "
        "of the live state (they changed since the plan was made, or the plan was edited). "
        "Nothing was written; plan again."
    )


def _forged(plan: Plan, detail: str) -> ForgedPlan:
    return ForgedPlan(
        f"the saved plan for {plan.organization} is not one userctl would write for the "
        f"live state, so it is refused as forged: {detail}. Nothing was written; plan "
        "again from the desired-state file.",
        detail,
    )
