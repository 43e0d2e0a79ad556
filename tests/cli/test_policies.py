"""Access policies through the real CLI, on every backend (issue 12): for each rule, a file that
breaks it (validate and plan name it at FILE:LINE:COL, plan exits 4), the fix that passes, a plan
that loosens it (2FA, with a real TOTP code), and apply refusing when the live rows changed under
the plan so that its result would break it. Then `policy check` on a database edited behind
userctl's back, and the export round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import ADMIN_PERMS, rows_of
from tests.conftest import Factory, Operator, Runner
from userctl.db import models as m
from userctl.plan import dumps, loads

ORG = "acme-payments"
ROLES: dict[str, list[str]] = {
    "Admin": list(ADMIN_PERMS),
    "Ops": ["payouts.view", "payouts.create"],
    "Approver": ["payouts.view", "payouts.approve"],
}


def person(n: int, role: str, **extra: str) -> dict[str, str]:
    return {
        "first_name": "Person",
        "last_name": f"N{n}",
        "id_type": "CC",
        "id_number": f"{5550000 + n}",
        "phone": f"+5731000{n:05d}",
        "role": role,
        "two_factor": "required",
        **extra,
    }


USERS: dict[str, dict[str, str]] = {
    "root@acme.co": person(0, "Admin"),
    "ops1@acme.co": person(1, "Ops"),
    "ops2@acme.co": person(2, "Ops"),
    "appr@acme.co": person(3, "Approver"),
}


@dataclass
class World:
    engine: Engine
    factory: Factory
    runner: Runner
    root: Operator
    path: Path
    org_id: int
    roles: dict[str, int]

    def write(
        self,
        policies: list[str],
        roles: dict[str, list[str]] | None = None,
        users: dict[str, dict[str, str]] | None = None,
    ) -> str:
        lines = ["version: 1", f"organization: {ORG}"]
        if policies:
            lines += ["policies:", *("  " + p for p in policies)]
        lines.append("roles:")
        for name, perms in (roles or ROLES).items():
            lines += [f"  {name}:", f"    permissions: [{', '.join(perms)}]"]
        lines.append("users:")
        for email, fields in (users or USERS).items():
            lines.append(f"  {email}:")
            lines += [f"    {k}: {json.dumps(v)}" for k, v in fields.items()]
        text = "\n".join(lines) + "\n"
        self.path.write_text(text, encoding="utf-8")
        return text

    def where(self, text: str, needle: str, *, at: str | None = None) -> str:
        """FILE:LINE:COL of `at` (default: the whole needle) inside the line holding `needle`."""
        for number, line in enumerate(text.splitlines(), 1):
            if needle in line:
                return f"{self.path}:{number}:{line.index(at or needle) + 1}"
        raise AssertionError(f"{needle!r} not in the file")

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Any:
        return self.runner(*args, env=env)

    def apply(self, *extra: str, code: bool = False) -> Any:
        args = ["apply", "-f", str(self.path), "--operator", self.root.email, "--yes", *extra]
        return self.run(*args, *(["--otp-code", self.root.code()] if code else []))

    def sql(self, statement: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(statement)

    def add_permission(self, role: str, permission: str) -> None:
        self.sql(
            sa.insert(m.RolePermission).values(role_id=self.roles[role], permission=permission)
        )


@pytest.fixture
def world(engine: Engine, factory: Factory, runner: Runner, tmp_path: Path) -> World:
    org = factory.org(ORG)
    roles = {name: factory.role(org, name, perms) for name, perms in ROLES.items()}
    root: Operator | None = None
    for email, fields in USERS.items():
        values = {k: v for k, v in fields.items() if k != "role"}
        if email == "root@acme.co":
            root = factory.operator(
                org, email, roles["Admin"], **{k: v for k, v in values.items() if k != "two_factor"}
            )
        else:
            factory.user(org, email, roles[fields["role"]], **values)
    assert root is not None
    return World(engine, factory, runner, root, tmp_path / "users.yaml", org, roles)


@dataclass(frozen=True)
class Rule:
    name: str
    tight: list[str]
    loose: list[str]
    # The file that breaks the rule: (roles, users), the line naming what is at fault and where on
    # it.
    breaking: Callable[[], tuple[dict[str, list[str]], dict[str, dict[str, str]]]]
    needle: str
    at: str | None
    said: str
    # A change to the live rows, made between plan and apply, after which the plan's result breaks
    # the rule.
    drift: Callable[[World], None]
    extra: dict[str, str] = field(default_factory=dict)


def _sod_breaking() -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    return {**ROLES, "Ops": ["payouts.view", "payouts.create", "payouts.approve"]}, USERS


def _two_factor_breaking() -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    return ROLES, {**USERS, "ops1@acme.co": person(1, "Ops", two_factor="optional")}


def _holders_breaking() -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    return ROLES, {**USERS, "boss@acme.co": person(9, "Admin")}


def _mailbox_breaking() -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    return ROLES, {**USERS, "payments@acme.co": person(9, "Approver")}


RULES = [
    Rule(
        "separation_of_duties",
        ["separation_of_duties:", "  maker_checker: [payouts.create, payouts.approve]"],
        [],
        _sod_breaking,
        "payouts.view, payouts.create, payouts.approve",
        "[",
        "holds payouts.approve and payouts.create together",
        lambda w: w.add_permission("Ops", "payouts.approve"),
    ),
    Rule(
        "require_two_factor",
        ["require_two_factor: [payouts.create, users.manage]"],
        ["require_two_factor: [users.manage]"],
        _two_factor_breaking,
        'two_factor: "optional"',
        '"optional"',
        "ops1@acme.co holds payouts.create",
        lambda w: w.sql(
            sa.update(m.User).where(m.User.email == "ops2@acme.co").values(two_factor="optional")
        ),
    ),
    Rule(
        "max_holders",
        ["max_holders:", "  users.manage: 1"],
        ["max_holders:", "  users.manage: 2"],
        _holders_breaking,
        "users.manage: 1",
        "1",
        "2 active users would hold users.manage, more than 1",
        lambda w: w.factory.user(w.org_id, "boss@acme.co", w.roles["Admin"]),
    ),
    Rule(
        "forbid_shared_mailboxes",
        ["forbid_shared_mailboxes: true"],
        ["forbid_shared_mailboxes: false"],
        _mailbox_breaking,
        "payments@acme.co:",
        "payments",
        "payments@acme.co is a shared role mailbox",
        lambda w: w.factory.user(w.org_id, "payments@acme.co", w.roles["Approver"]),
    ),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_a_file_breaking_a_rule_is_named_at_its_line_by_validate_and_plan(
    world: World, rule: Rule
) -> None:
    text = world.write(rule.tight, *rule.breaking())
    place = world.where(text, rule.needle, at=rule.at)

    validated = world.run("validate", "-f", str(world.path))
    assert validated.exit_code == 1, validated.output
    assert f"{place}: " in validated.stderr and rule.said in validated.stderr, validated.stderr

    planned = world.run("plan", "-f", str(world.path))
    assert planned.exit_code == 4, planned.output
    assert (
        f"BLOCKED [policy.{rule.name}]: {place}: " in planned.stdout and rule.said in planned.stdout
    ), planned.stdout
    applied = world.apply(code=True)
    assert applied.exit_code == 4, applied.output
    assert rows_of(world.engine, m.Policy) == []

    world.write(rule.tight)  # the fix: the file as the organization is
    assert world.run("validate", "-f", str(world.path)).exit_code == 0
    fixed = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert fixed.exit_code == 2, fixed.output  # creating a policy only tightens: no 2FA
    assert "+ policy[" in fixed.stdout and "BLOCKED" not in fixed.stdout


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_loosening_a_rule_needs_2fa(world: World, rule: Rule) -> None:
    world.write(rule.tight)
    assert world.apply().exit_code == 0  # tightening: no code
    stored = rows_of(world.engine, m.Policy)
    assert stored and {r.rule for r in stored} == {rule.name}

    world.write(rule.loose)
    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output
    assert "~ policy[" in planned.stdout or "- policy[" in planned.stdout
    assert "[destructive, 2FA]" in planned.stdout, planned.stdout

    refused = world.apply()
    assert refused.exit_code == 4 and "2FA" in refused.output, refused.output
    assert rows_of(world.engine, m.Policy) == stored

    applied = world.apply(code=True)
    assert applied.exit_code == 0, applied.output
    assert "verified by totp" in applied.stdout
    assert world.run("plan", "-f", str(world.path), "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_apply_refuses_when_the_live_rows_changed_so_that_the_result_breaks_a_rule(
    world: World, rule: Rule
) -> None:
    world.write(rule.tight)
    assert world.apply().exit_code == 0
    # A reviewed plan that changes nothing the rule looks at...
    users = {**USERS, "appr@acme.co": person(3, "Approver", first_name="Renamed")}
    world.write(rule.tight, ROLES, users)
    saved = world.path.parent / "plan.json"
    assert (
        world.run(
            "plan", "-f", str(world.path), "--out", str(saved), "--detailed-exitcode"
        ).exit_code
        == 2
    )
    # ...while the platform (or someone with SQL) changes what it does look at.
    rule.drift(world)
    before = rows_of(world.engine, m.User)

    refused = world.run(
        "apply",
        str(saved),
        "--operator",
        world.root.email,
        "--yes",
        "--otp-code",
        world.root.code(),
    )

    assert refused.exit_code == 4, refused.output
    assert "would break its policies" in refused.output and rule.name in refused.output, (
        refused.output
    )
    assert rows_of(world.engine, m.User) == before  # nothing written: appr keeps its name


def test_a_forged_tightening_flag_on_a_loosening_plan_is_refused(world: World) -> None:
    rule = RULES[0]
    world.write(rule.tight)
    assert world.apply().exit_code == 0
    world.write(rule.loose)
    saved = world.path.parent / "plan.json"
    assert world.run("plan", "-f", str(world.path), "--out", str(saved)).exit_code == 0
    plan = loads(saved.read_text(encoding="utf-8"))
    forged = replace(
        plan, changes=tuple(replace(c, destructive=False, requires_2fa=False) for c in plan.changes)
    )
    saved.write_text(dumps(forged), encoding="utf-8")

    refused = world.run("apply", str(saved), "--operator", world.root.email, "--yes")

    assert refused.exit_code == 4, refused.output
    assert "forged" in refused.output and "policy[" in refused.output, refused.output
    assert len(rows_of(world.engine, m.Policy)) == 1


def test_require_reason_refuses_a_plan_without_one_at_plan_and_at_apply(world: World) -> None:
    world.write(["require_reason: true"])
    assert world.apply("--reason", "SEC-1 turn on reasons").exit_code == 0
    users = {**USERS, "appr@acme.co": person(3, "Approver", first_name="Renamed")}
    world.write(["require_reason: true"], ROLES, users)

    planned = world.run("plan", "-f", str(world.path))
    assert planned.exit_code == 4, planned.output
    assert "BLOCKED [policy.require_reason]" in planned.stdout and "--reason" in planned.stdout
    assert world.apply().exit_code == 4

    given = world.run(
        "plan", "-f", str(world.path), "--detailed-exitcode", env={"USERCTL_REASON": "OPS-7 rename"}
    )
    assert given.exit_code == 2, given.output
    assert "Reason: OPS-7 rename" in given.stdout


def test_apply_refuses_a_reasonless_plan_when_require_reason_was_turned_on_under_it(
    world: World,
) -> None:
    world.write(["require_reason: false"])
    assert world.apply().exit_code == 0
    users = {**USERS, "appr@acme.co": person(3, "Approver", first_name="Renamed")}
    world.write(["require_reason: false"], ROLES, users)
    saved = world.path.parent / "plan.json"
    assert world.run("plan", "-f", str(world.path), "--out", str(saved)).exit_code == 0
    world.sql(sa.update(m.Policy).where(m.Policy.rule == "require_reason").values(value="true"))

    refused = world.run("apply", str(saved), "--operator", world.root.email, "--yes")

    assert refused.exit_code == 4, refused.output
    assert "require_reason" in refused.output


def test_loosening_require_reason_needs_2fa(world: World) -> None:
    world.write(["require_reason: true"])
    assert world.apply("--reason", "SEC-1").exit_code == 0
    world.write(["require_reason: false"])
    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode", "--reason", "SEC-2")
    assert planned.exit_code == 3, planned.output
    assert '~ policy["require_reason"] update  [destructive, 2FA]' in planned.stdout
    assert world.apply("--reason", "SEC-2").exit_code == 4
    assert world.apply("--reason", "SEC-2", code=True).exit_code == 0


def test_policy_check_finds_drift_made_behind_userctls_back(world: World) -> None:
    world.write([*RULES[0].tight, *RULES[1].tight])
    assert world.apply().exit_code == 0
    clean = world.run("policy", "check")
    assert clean.exit_code == 0, clean.output
    assert "2 policies checked, none broken" in clean.stdout

    world.add_permission("Ops", "payouts.approve")
    world.sql(sa.update(m.User).where(m.User.email == "ops2@acme.co").values(two_factor="optional"))

    text = world.run("policy", "check")
    assert text.exit_code == 4, text.output
    assert "role 'Ops' holds payouts.approve and payouts.create together" in text.stdout
    assert "ops2@acme.co holds payouts.create" in text.stdout
    as_json = world.run("policy", "check", "--format", "json")
    assert as_json.exit_code == 4
    report = json.loads(as_json.stdout)
    assert {v["rule"] for v in report["violations"]} == {
        "separation_of_duties",
        "require_two_factor",
    }
    assert {p["policy"] for p in report["policies"]} == {
        "separation_of_duties.maker_checker",
        "require_two_factor",
    }


def test_export_round_trips_policies_and_expiries(world: World) -> None:
    users = {**USERS, "ops2@acme.co": person(2, "Ops", expires="2099-12-31")}
    world.write(
        [
            *RULES[0].tight,
            *RULES[1].tight,
            *RULES[2].loose,
            *RULES[3].tight,
            "require_reason: false",
        ],
        ROLES,
        users,
    )
    assert world.apply(code=True).exit_code == 0  # setting an expiry schedules a loss: 2FA
    exported = world.path.parent / "exported.yaml"
    assert world.run("export", "-o", str(exported)).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert (
        "maker_checker: [payouts.approve, payouts.create]" in text
        and 'expires: "2099-12-31"' in text
    )

    again = world.run("plan", "-f", str(exported), "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes" in again.stdout


def test_policy_check_shows_the_gate_and_every_setting_in_force(world: World) -> None:
    # A pipeline reading the JSON sees the gate a plan would be judged under, and which value in
    # force is a default and which was declared (DESIGN §8 invariant 4: a default is a value).
    world.write(["two_factor_policy: all", "review_every_days: 30"])
    assert world.apply().exit_code == 0
    as_json = world.run("policy", "check", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["gate"] == {"two_factor_policy": "all", "four_eyes": False, "min_admins": 1}
    assert report["in_force"] == [
        {"policy": "four_eyes", "value": False, "default": True},
        {"policy": "max_inactive_days", "value": 90, "default": True},
        {"policy": "min_admins", "value": 1, "default": True},
        {"policy": "review_every_days", "value": 30, "default": False},
        {"policy": "two_factor_policy", "value": "all", "default": False},
    ]
    text = world.run("policy", "check")
    assert text.exit_code == 0, text.output
    # The plan's own header line, and the defaults marked as the plan marks them.
    assert "Gate: 2FA for every change · four eyes off · min_admins 1\n" in text.stdout
    assert (
        "In force: four_eyes false (default), max_inactive_days 90 (default), "
        'min_admins 1 (default), review_every_days 30, two_factor_policy "all"\n'
    ) in text.stdout
