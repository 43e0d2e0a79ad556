"""The pure planner: diff(desired, live, options) -> Plan (DESIGN §3).

No database, no terminal, no clock: the same inputs give the same plan, byte for byte.
Identity keys and set arithmetic decide what exists on which side; records that differ are then
compared field by field. Errors (an immutable field changed, an inactive user modified, ...) are
collected and raised together as one InputError whose problems carry desired-state paths, which
the CLI turns into FILE:LINE:COL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, cast

from userctl import guards, policies
from userctl.errors import InputError, Problem, did_you_mean, first_few
from userctl.hygiene import days_left, expiring_message
from userctl.plan import (
    ACTION_TABLE,
    Action,
    Change,
    DerivedDiff,
    FieldDiff,
    Finding,
    Kind,
    Plan,
    bank_account_address,
    field_of,
    is_destructive,
    organization_address,
    phase_of,
    policy_address,
    role_address,
    user_address,
)
from userctl.risk import assess
from userctl.simulate import apply_changes
from userctl.state import (
    GATE_RULES,
    IMMUTABLE_USER_FIELDS,
    POLICY_DEFAULTS,
    ChangeRecord,
    DesiredState,
    LiveState,
    Role,
    User,
    UserFields,
    assignment_record,
    fingerprint,
    gate_policies,
    organization_settings,
    policy_record,
    policy_text,
    role_record,
    user_fields,
)

PROFILE_FIELDS = ("first_name", "last_name", "force_password_reset")
PENDING_NOTE = "pending registration: the platform activates the user when they finish registering"
# Users whose access ends within this many days are named in the plan.
EXPIRY_NOTICE_DAYS = 14


@dataclass(frozen=True, slots=True)
class PlanOptions:
    prune: bool = True
    replace: frozenset[str] = frozenset()  # lower-case emails to delete and re-create
    allow_mass_removal: bool = False
    operator: str | None = None
    # Why the plan is made (--reason, e.g. the ticket): recorded in the plan and every audit event.
    reason: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "prune": self.prune,
            "replace": sorted(self.replace),
            "allow_mass_removal": self.allow_mass_removal,
            "operator": self.operator,
            "reason": self.reason,
        }


def field_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, FieldDiff]:
    out: dict[str, FieldDiff] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        entry: FieldDiff = {"before": old, "after": new}
        if isinstance(old, list) or isinstance(new, list):
            entry["added"] = sorted(set(new or ()) - set(old or ()))
            entry["removed"] = sorted(set(old or ()) - set(new or ()))
        out[name] = entry
    return out


@dataclass
class _Builder:
    live: LiveState
    options: PlanOptions
    changes: list[Change] = field(default_factory=list)
    preconditions: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Users whose declared expiry has passed: planned as deactivated, whatever their status says.
    expired: frozenset[str] = frozenset()
    # The UTC date expiries are judged on (ISO), or None.
    today: str | None = None

    def error(self, path: tuple[str, ...], message: str) -> None:
        self.problems.append(Problem(message, path))

    def add(
        self,
        kind: Kind,
        key: tuple[str, ...],
        action: Action,
        before: ChangeRecord | None,
        after: ChangeRecord | None,
        *,
        deferred: bool = False,
        note: str | None = None,
        diff: dict[str, FieldDiff] | None = None,
    ) -> None:
        derived: Mapping[str, FieldDiff] = (
            diff
            if diff is not None
            else DerivedDiff(after)
            if before is None
            else DerivedDiff(before, gone=True)
            if after is None
            else field_diff(before, after)
        )
        # Risk flags are set once the whole plan is known (risk.assess); the phase of a role
        # update depends on whether it removes permissions.
        destructive = not deferred and is_destructive(kind, action, derived, key)
        self.changes.append(
            Change(
                kind=kind,
                key=key,
                action=action,
                phase=phase_of(kind, action, destructive),
                before=before,
                after=after,
                diff=derived,
                deferred=deferred,
                note=note,
            )
        )

    def expect_user(self, email: str) -> None:
        self.preconditions[user_address(email)] = fingerprint(self.live, "user", email)

    def expect_role(self, name: str) -> None:
        self.preconditions.setdefault(role_address(name), fingerprint(self.live, "role", name))

    def expect_bank_account(self, key: str) -> None:
        self.preconditions[bank_account_address(key)] = fingerprint(self.live, "bank_account", key)


def diff(
    desired: DesiredState,
    live: LiveState,
    options: PlanOptions = PlanOptions(),
    today: dt.date | None = None,
) -> Plan:
    """`today`: the UTC date expiries are judged on (none are without it)."""
    b = _Builder(
        live,
        options,
        expired=_expired(desired, today),
        today=today.isoformat() if today is not None else None,
    )
    if desired.organization != live.organization.slug:
        b.error(
            ("organization",),
            f"the file declares {desired.organization!r} but the live "
            f"state is {live.organization.slug!r}",
        )
    _check_replace_option(desired, live, b)
    _plan_policies(desired, live, b)
    _plan_roles(desired, live, b)
    _plan_users(desired, live, b)
    if b.problems:
        raise InputError(sorted(b.problems, key=lambda p: tuple(str(x) for x in p.path)))
    changes = tuple(sorted(b.changes, key=_order))
    if any(not c.deferred for c in changes):
        slug = live.organization.slug
        b.preconditions[organization_address(slug)] = fingerprint(live, "organization", slug)
    else:
        b.preconditions.clear()
    after = apply_changes(live, changes)
    changes = assess(live, _with_impact(live, changes, after), after, today)
    findings = (
        *guards.check(live, changes, options, after),
        *policy_findings(live, after, options.reason, writes=any(not c.deferred for c in changes)),
        *_expiry_notes(after, today),
    )
    return Plan(
        organization=live.organization.slug,
        two_factor_policy=live.organization.two_factor_policy,
        gate=organization_settings(live.organization),
        changes=changes,
        preconditions=dict(sorted(b.preconditions.items())),
        findings=findings,
        options=options.to_data(),
    )


# How many names a change's impact lists; the rest are counted.
IMPACT_SHOWN = 10


def _few(names: Iterable[str]) -> dict[str, Any]:
    ordered = sorted(names)
    return {"shown": ordered[:IMPACT_SHOWN], "more": max(len(ordered) - IMPACT_SHOWN, 0)}


def _with_impact(
    live: LiveState, changes: tuple[Change, ...], after: LiveState
) -> tuple[Change, ...]:
    """`changes` with what each takes away (Change.impact), from the live state: the bank
    accounts of a user who leaves; the users who lose a role's removed permissions, which are the
    role's holders who keep it (one who moves to another role loses it by their own change)."""

    def removes(c: Change) -> bool:
        field = ACTION_TABLE[(c.kind, c.action)].destructive_if_removed
        return field is not None and bool(field_of(c.diff, field).get("removed"))

    losing = {c.key[0] for c in changes if c.kind == "role" and removes(c)}
    holders: dict[str, list[str]] = {name: [] for name in losing}
    if losing:  # a loop over every user: only when some role loses a permission
        for email, user in live.users.items():
            kept = after.users.get(email)
            if user.role in losing and kept is not None and kept.role == user.role:
                holders[user.role].append(email)
    out = []
    for c in changes:
        if c.kind == "user" and ACTION_TABLE[(c.kind, c.action)].removes_user:
            c = replace(c, impact={"bank_accounts": _few(live.users[c.key[0]].bank_accounts)})
        elif c.kind == "role" and removes(c):
            c = replace(c, impact={"holders": _few(holders[c.key[0]])})
        out.append(c)
    return tuple(out)


def policy_findings(
    live: LiveState, after: LiveState, reason: str | None, *, writes: bool = True
) -> list[Finding]:
    """The policies in force after the plan, judged on the state it leaves behind; a reason is
    required when the policies before or after it say so, of a plan that `writes` anything."""
    found = policies.check(after)
    missing = policies.reason_violation(reason, live.policies, after.policies) if writes else None
    return [v.finding() for v in ([missing] if missing else []) + found]


def _expired(desired: DesiredState, today: dt.date | None) -> frozenset[str]:
    if today is None:
        return frozenset()
    day = today.isoformat()
    return frozenset(
        e for e, u in desired.users.items() if u.expires is not None and u.expires < day
    )


def _expiry_notes(after: LiveState, today: dt.date | None) -> list[Finding]:
    if today is None:
        return []
    notes = []
    for email in sorted(
        e for e, u in after.users.items() if u.expires is not None and u.status != "inactive"
    ):
        expires = after.users[email].expires or ""
        left = days_left(expires, today, EXPIRY_NOTICE_DAYS)
        if left is not None:
            notes.append(
                Finding(
                    "expiry",
                    False,
                    expiring_message(email, expires, left),
                    ("users", email, "expires"),
                )
            )
    return notes


def _plan_policies(desired: DesiredState, live: LiveState, b: _Builder) -> None:
    """Policies are declared whole: one absent from the file is removed (loosening, if it held
    anything), like a role. A file with no `policies:` section leaves them as they are only
    under --no-prune. The gate's settings always hold a value: one the file omits is kept."""
    wanted, have = desired.policies, {**live.policies, **gate_policies(live.organization)}
    # (a row of the policies table naming a gate setting is not it: the organization's is)
    stored = {k for k in live.policies if k[0] not in GATE_RULES}
    keys = set(wanted) | (stored if b.options.prune else set())
    for key in sorted(keys):
        want, old = wanted.get(key), have.get(key)
        if want == old and type(want) is type(old):
            continue
        b.preconditions[policy_address(key)] = fingerprint(live, "policy", policy_text(key))
        before = policy_record(key, old) if old is not None else None
        after = policy_record(key, want) if want is not None else None
        action: Action = "create" if old is None else "delete" if want is None else "update"
        value: FieldDiff = {
            "before": before and before["value"],
            "after": after and after["value"],
        }
        if key[0] in POLICY_DEFAULTS:
            # What is in force where the rule is not declared, for the reader and for judging
            # whether the change loosens it (plan.policy_loosens).
            value["default"] = POLICY_DEFAULTS[key[0]]
        b.add("policy", key, action, before, after, diff={"value": value})


def _order(change: Change) -> tuple[int, str, int]:
    return (change.phase, change.address, ACTION_TABLE[(change.kind, change.action)].rank)


def _check_replace_option(desired: DesiredState, live: LiveState, b: _Builder) -> None:
    for email in sorted(b.options.replace):
        if email not in desired.users or email not in live.users:
            b.error(
                ("users", email),
                f"--replace {email}: the user must exist both in the file and in the database",
            )


def _plan_roles(desired: DesiredState, live: LiveState, b: _Builder) -> None:
    for name in sorted(desired.roles):
        want = desired.roles[name]
        have = live.roles.get(name)
        if have is None:
            b.expect_role(name)
            b.add("role", (name,), "create", None, role_record(want))
            continue
        if have == want:
            continue
        b.expect_role(name)
        start = role_record(have)
        added = want.permissions - have.permissions
        middle = start
        if added or want.description != have.description:
            # Permissions are added early and removed last, so nobody loses access mid-apply.
            middle = role_record(Role(name, want.description, have.permissions | added))
            b.add("role", (name,), "update", start, middle)
        if have.permissions - want.permissions:
            b.add("role", (name,), "update", middle, role_record(want))
    if not b.options.prune:
        return
    removed = sorted(set(live.roles) - set(desired.roles))
    # Who holds which role is a loop over every user: only worth it when some role goes.
    holders = _role_holders_after(desired, live, b.options) if removed else {}
    for name in removed:
        held_by = holders.get(name, [])
        if held_by:
            shown = first_few(sorted(held_by), 5)
            b.error(
                ("roles", name),
                f"role {name!r} is not in the file, so it would be deleted, "
                f"but it is still held by {shown}",
            )
            continue
        b.expect_role(name)
        b.add("role", (name,), "delete", role_record(live.roles[name]), None)


def _role_holders_after(
    desired: DesiredState, live: LiveState, options: PlanOptions
) -> dict[str, list[str]]:
    holders: dict[str, list[str]] = {}
    for email, user in desired.users.items():
        holders.setdefault(user.role, []).append(email)
    if not options.prune:
        for email, user in live.users.items():
            if email not in desired.users:
                holders.setdefault(user.role, []).append(email)
    return holders


def _plan_users(desired: DesiredState, live: LiveState, b: _Builder) -> None:
    role_exists = set(desired.roles) | (set() if b.options.prune else set(live.roles))
    # The one loop over every user (100,000 at scale), nearly all unchanged: lookups are bound
    # once, and an unchanged user costs one identity test here (the snapshot hands back the file's
    # own User for a row equal to it) or one tuple comparison, with no call to _plan_update. In
    # the file's order, not sorted: diff sorts the changes and the problems it returns (by
    # _order, by path; a tie is one user's own, made in one visit), so the order of the visits
    # never shows, and sorting 100,000 emails would cost more than the loop's other work.
    wanted, existing, to_replace = desired.users, live.users.get, b.options.replace
    expired = b.expired
    for email, want in wanted.items():
        if email in expired:
            # The file may still say active: after its expiry a user is planned inactive, and only
            # removing or extending the expiry (a grant, 2FA) gives the access back.
            want = replace(want, status="inactive")
        if want.role not in role_exists:
            b.error(
                ("users", email, "role"),
                f"unknown role {want.role!r}{did_you_mean(want.role, role_exists)}",
            )
            continue
        have = existing(email)
        if have is None:
            _plan_create(email, want, b)
        elif email in to_replace:
            _plan_replace(email, want, have, b)
        elif have is not want and _comparable(want) != _comparable(have):
            _plan_update(email, want, have, b)
    if b.options.prune:
        for email in sorted(e for e in live.users if e not in wanted):
            _plan_delete(email, live.users[email], b)
    elif b.today is not None:
        _plan_unnamed_expiries(desired, live, b)


def _plan_unnamed_expiries(desired: DesiredState, live: LiveState, b: _Builder) -> None:
    """Under --no-prune the file leaves alone the users it does not name, but not their expiry:
    it was confirmed when it was set, and every plan of the organization enforces it."""
    day = b.today or ""
    for email in sorted(set(live.users) - set(desired.users)):
        have = live.users[email]
        if have.expires is not None and have.expires < day and have.status != "inactive":
            b.expect_user(email)
            record = user_fields(have)
            b.add(
                "user",
                (email,),
                "expire",
                record,
                {**record, "status": "inactive"},
                note=_expired_note(have.expires),
            )


def _created(want: User) -> UserFields:
    """The record of a created user: one starts `invited` (the platform activates them when they
    register), with no bank account (assignments are changes of their own; a change's record
    holds none) and no authenticator."""
    # The fields set in place rather than through dataclasses.replace: the same record, in the
    # same key order, without building a second User per create.
    record = user_fields(want)
    record["status"] = "invited"
    record["totp_enrolled"] = False
    return record


def _created_inactive(email: str, want: User, b: _Builder) -> bool:
    if email in b.expired:
        b.error(
            ("users", email, "expires"),
            f"{email} expired on {want.expires}: a new user cannot be created expired; "
            "give a later date or leave them out",
        )
        return True
    if want.status == "inactive":
        b.error(
            ("users", email, "status"),
            "a new user cannot be created inactive: declare them active to "
            "invite them, or leave them out",
        )
    return want.status == "inactive"


def _plan_create(email: str, want: User, b: _Builder) -> None:
    if _created_inactive(email, want, b):
        return
    b.expect_user(email)
    b.expect_role(want.role)
    b.add(
        "user",
        (email,),
        "create",
        None,
        _created(want),
        note="an invitation is emailed; the user stays invited until they register",
    )
    _plan_deferred_assignments(email, want.bank_accounts, b, "the user is created invited")


def _plan_replace(email: str, want: User, have: User, b: _Builder) -> None:
    if _created_inactive(email, want, b):
        return
    b.expect_user(email)
    b.expect_role(want.role)
    note = "deletes the user and creates them again, invited"
    if have.bank_accounts:
        note += "; removes their bank accounts: " + ", ".join(sorted(have.bank_accounts))
    b.add("user", (email,), "replace", user_fields(have), _created(want), note=note)
    _plan_deferred_assignments(email, want.bank_accounts, b, "the user is re-created invited")


def _plan_deferred_assignments(email: str, keys: Iterable[str], b: _Builder, why: str) -> None:
    for key in sorted(keys):
        if _check_bank_account(email, key, b):
            _assign(
                email,
                key,
                b,
                deferred=True,
                note=f"deferred: bank accounts can only be assigned to active users ({why})",
            )


def _assign(
    email: str, key: str, b: _Builder, *, deferred: bool = False, note: str | None = None
) -> None:
    b.add(
        "assignment",
        (email, key),
        "assign",
        None,
        assignment_record(email, key),
        diff={"assigned": {"before": False, "after": True}},
        deferred=deferred,
        note=note,
    )


def _unassign(email: str, key: str, b: _Builder) -> None:
    b.add(
        "assignment",
        (email, key),
        "unassign",
        assignment_record(email, key),
        None,
        diff={"assigned": {"before": True, "after": False}},
    )


def _check_bank_account(email: str, key: str, b: _Builder) -> bool:
    if key not in b.live.bank_accounts:
        b.error(
            ("users", email, "bank_accounts"),
            f"unknown bank account {key!r}{did_you_mean(key, b.live.bank_accounts)} "
            "(see `userctl accounts list`)",
        )
        return False
    return True


def _comparable(user: User) -> tuple[object, ...]:
    # What the file declares of a user: all but the email (the key) and totp_enrolled (set by the
    # platform). A plain function on purpose: its attribute reads are specialised for slots,
    # where operator.attrgetter looks each name up.
    return (
        user.first_name,
        user.last_name,
        user.role,
        user.two_factor,
        user.force_password_reset,
        user.bank_accounts,
        user.status,
        user.id_type,
        user.id_number,
        user.phone,
        user.expires,
    )


def _plan_update(email: str, want: User, have: User, b: _Builder) -> None:
    """`want` differs from `have` in some declared field (the caller compared them)."""
    if not _immutable_fields_kept(email, want, have, b):
        return
    steps = _update_steps(want, have)
    if email in b.expired:
        steps = [
            ("expire" if action == "deactivate" else action, values) for action, values in steps
        ]
    to_assign = sorted(want.bank_accounts - have.bank_accounts)
    to_unassign = sorted(have.bank_accounts - want.bank_accounts)
    if have.status == "inactive" and want.status == "inactive":
        _refuse_inactive_changes(email, want, have, bool(to_assign or to_unassign), b)
        return
    # A pending user's deferred assignments write nothing, so they must not make the plan depend
    # on the user's row: the platform flips it to active when they register, and that alone
    # must not turn a reviewed plan stale.
    if steps or to_unassign or (to_assign and have.status != "invited"):
        b.expect_user(email)
    if want.role != have.role:
        b.expect_role(want.role)
    record = user_fields(have)
    for action, values in steps:
        # `values` are fields of the user (_update_steps reads them off User).
        after = cast(UserFields, {**record, **values})
        note = _expired_note(want.expires) if action == "expire" else None
        b.add("user", (email,), action, record, after, note=note)
        record = after
    if have.status == "invited" and want.status == "active":
        b.add(
            "user",
            (email,),
            "activate",
            user_fields(have),
            {**user_fields(have), "status": "active"},
            deferred=True,
            note=PENDING_NOTE,
        )
    for key in to_unassign:
        _unassign(email, key, b)
    _plan_assignments(email, to_assign, want, have, b)


def _expired_note(expires: str | None) -> str:
    return f"expired on {expires}: deactivated with no new code (the expiry was confirmed when set)"


def _immutable_fields_kept(email: str, want: User, have: User, b: _Builder) -> bool:
    bad = [f for f in IMMUTABLE_USER_FIELDS if getattr(want, f) != getattr(have, f)]
    for name in bad:
        b.error(
            ("users", email, name),
            f"{name} of {email} cannot be changed ({getattr(have, name)!r} -> "
            f"{getattr(want, name)!r}): it is fixed at creation; use --replace {email} "
            "to delete and re-create the user",
        )
    return not bad


def _update_steps(want: User, have: User) -> list[tuple[Action, dict[str, Any]]]:
    """The user changes that take `have` to `want`, each with the fields it sets, in order."""
    steps: list[tuple[Action, dict[str, Any]]] = []
    if have.status == "inactive" and want.status == "active":
        steps.append(("activate", {"status": "active"}))
    profile = {f: getattr(want, f) for f in PROFILE_FIELDS if getattr(want, f) != getattr(have, f)}
    if profile:
        steps.append(("update", profile))
    if want.role != have.role:
        steps.append(("change_role", {"role": want.role}))
    if want.two_factor != have.two_factor:
        if want.two_factor == "disabled":
            steps.append(("disable_two_factor", {"two_factor": "disabled", "totp_enrolled": False}))
        else:
            steps.append(("set_two_factor", {"two_factor": want.two_factor}))
    if want.expires != have.expires:
        steps.append(("set_expiry", {"expires": want.expires}))
    if want.status == "inactive" and have.status != "inactive":
        steps.append(("deactivate", {"status": "inactive"}))
    return steps


def _refuse_inactive_changes(
    email: str, want: User, have: User, accounts_changed: bool, b: _Builder
) -> None:
    """An inactive user who stays inactive cannot be modified, only deleted or reactivated."""
    changed = [
        f
        for f in (*PROFILE_FIELDS, "role", "two_factor", "expires")
        if getattr(want, f) != getattr(have, f)
    ]
    if accounts_changed:
        changed.append("bank_accounts")
    for name in changed:
        b.error(
            ("users", email, name),
            f"{email} is inactive: an inactive user cannot be modified, only deleted "
            "or reactivated (status: active)",
        )


def _plan_assignments(
    email: str, to_assign: list[str], want: User, have: User, b: _Builder
) -> None:
    """Bank accounts can only be assigned to active users: to a pending one the assignment is
    deferred, to one declared inactive it is an error."""
    for key in to_assign:
        if not _check_bank_account(email, key, b):
            continue
        if want.status != "active":
            b.error(
                ("users", email, "bank_accounts"),
                f"bank account {key!r}: bank accounts can only be assigned to active users",
            )
        elif have.status == "invited":
            _assign(email, key, b, deferred=True, note="deferred: " + PENDING_NOTE)
        else:
            b.expect_bank_account(key)
            _assign(email, key, b)


def _plan_delete(email: str, have: User, b: _Builder) -> None:
    b.expect_user(email)
    for key in sorted(have.bank_accounts):
        _unassign(email, key, b)
    b.add("user", (email,), "delete", user_fields(have), None)
