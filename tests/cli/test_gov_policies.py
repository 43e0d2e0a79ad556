"""Issue 18, invariants 3, 4 and 7 through the real CLI, on every backend: each "Why" case in
scope and its variants, with real TOTP codes. The clock cannot be moved, so a date passing is
the stored expiry moved into the past."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.apply.apply_helpers import rows_of
from tests.cli.json_outputs import checked
from tests.cli.test_policies import ORG, ROLES, USERS, World, person, world  # noqa: F401
from tests.conftest import Operator
from userctl.clock import utcnow
from userctl.db import models as m

TODAY = utcnow().date()
GATE_OFF = "Gate: 2FA for destructive changes · four eyes off · min_admins 1"


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def _user(w: World, email: str) -> Any:
    return rows_of(w.engine, m.User, m.User.email == email)[0]


def _org(w: World) -> Any:
    return rows_of(w.engine, m.Organization, m.Organization.id == w.org_id)[0]


def _set_org(w: World, **values: Any) -> None:
    w.sql(sa.update(m.Organization).where(m.Organization.id == w.org_id).values(**values))


def _lead(w: World) -> Operator:
    """A second admin with an authenticator, declared in LEAD_USERS with the same fields."""
    fields = {k: v for k, v in person(7, "Admin").items() if k not in ("role", "two_factor")}
    return w.factory.operator(w.org_id, "lead@acme.co", w.roles["Admin"], **fields)


LEAD_USERS = {**USERS, "lead@acme.co": person(7, "Admin")}


def _events(w: World, action: str) -> list[dict[str, Any]]:
    events = json.loads(w.run("audit", "log", "--format", "json").stdout)
    return [e for e in events if e["action"] == action]


def _next_code(op: Operator) -> str:
    """The next time step's code (within the drift allowed): this step's may be spent."""
    return op.code(time.time() + 30)


# --- invariant 3 ----------------------------------------------------------------------------


def test_an_admins_expiry_needs_a_code_when_set_and_none_when_it_comes(world: World) -> None:  # noqa: F811
    """The "two steps, zero proofs" case: now one proof, given when the loss was scheduled."""
    _lead(world)
    world.write([], ROLES, {**LEAD_USERS, "lead@acme.co": person(7, "Admin", expires=day(1))})

    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output
    assert '~ user["lead@acme.co"] set_expiry  [destructive, 2FA]' in planned.stdout
    refused = world.apply()
    assert refused.exit_code == 4 and "need 2FA" in refused.stderr, refused.output
    assert "Traceback" not in refused.output
    assert _user(world, "lead@acme.co").expires is None  # nothing written
    assert world.apply(code=True).exit_code == 0
    assert str(_user(world, "lead@acme.co").expires) == day(1)

    # The day passes.
    world.sql(
        sa.update(m.User)
        .where(m.User.email == "lead@acme.co")
        .values(expires=dt.date.fromisoformat(day(-1)))
    )
    world.write([], ROLES, {**LEAD_USERS, "lead@acme.co": person(7, "Admin", expires=day(-1))})
    expired = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert expired.exit_code == 2, expired.output
    assert '~ user["lead@acme.co"] deactivate [expired]  [destructive]' in expired.stdout
    applied = world.apply()
    assert applied.exit_code == 0, applied.output
    assert _user(world, "lead@acme.co").status == "inactive"


def test_bringing_an_expiry_forward_by_one_day_needs_a_code(world: World) -> None:  # noqa: F811
    def expiring(offset: int) -> dict[str, dict[str, str]]:
        return {**USERS, "ops1@acme.co": person(1, "Ops", expires=day(offset))}

    world.write([], ROLES, expiring(10))
    assert world.apply(code=True).exit_code == 0
    world.write([], ROLES, expiring(9))
    refused = world.apply()
    assert refused.exit_code == 4 and "need 2FA" in refused.stderr, refused.output
    assert str(_user(world, "ops1@acme.co").expires) == day(10)
    assert world.apply("--otp-code", _next_code(world.root)).exit_code == 0
    assert str(_user(world, "ops1@acme.co").expires) == day(9)


def test_the_operator_cannot_schedule_their_own_expiry(world: World) -> None:  # noqa: F811
    world.write([], ROLES, {**USERS, "root@acme.co": person(0, "Admin", expires=day(30))})
    planned = world.run(
        "plan", "-f", str(world.path), "--operator", world.root.email, "--detailed-exitcode"
    )
    assert planned.exit_code == 4, planned.output
    assert "operator root@acme.co cannot set or bring forward their own expiry" in planned.stdout
    refused = world.apply(code=True)
    assert refused.exit_code == 4 and "their own expiry" in refused.output, refused.output
    assert _user(world, "root@acme.co").expires is None


def test_no_prune_deactivates_an_expired_user_the_file_does_not_name(world: World) -> None:  # noqa: F811
    world.sql(
        sa.update(m.User)
        .where(m.User.email == "ops2@acme.co")
        .values(expires=dt.date.fromisoformat(day(-1)))
    )
    world.write([], ROLES, {e: u for e, u in USERS.items() if e != "ops2@acme.co"})
    planned = world.run("plan", "-f", str(world.path), "--no-prune", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output  # destructive, confirmed when it was set
    assert '~ user["ops2@acme.co"] deactivate [expired]  [destructive]' in planned.stdout
    applied = world.apply("--no-prune")
    assert applied.exit_code == 0, applied.output
    assert _user(world, "ops2@acme.co").status == "inactive"
    assert [e["address"] for e in _events(world, "user.expire")] == ['user["ops2@acme.co"]']
    assert world.run("plan", "-f", str(world.path), "--no-prune").exit_code == 0


def test_hygiene_policy_check_and_the_review_show_who_expires_and_who_is_past_it(
    world: World,  # noqa: F811
) -> None:
    world.sql(
        sa.update(m.User)
        .where(m.User.email == "ops1@acme.co")
        .values(expires=dt.date.fromisoformat(day(5)))
    )
    world.sql(
        sa.update(m.User)
        .where(m.User.email == "ops2@acme.co")
        .values(expires=dt.date.fromisoformat(day(-2)))
    )
    soon = f"ops1@acme.co expires in 5 days ({day(5)})"
    past = f"ops2@acme.co expired on {day(-2)} and is still active"

    text = world.run("hygiene")
    assert text.exit_code == 4, text.output
    assert f"BLOCKING expired_user: {past}" in text.stdout
    assert f"expiring_user: {soon}" in text.stdout
    report = checked("hygiene.schema.json", world.run("hygiene", "--format", "json").stdout)
    assert {(f["code"], f["blocking"]) for f in report["findings"]} >= {
        ("expired_user", True),
        ("expiring_user", False),
    }

    judged = world.run("policy", "check")
    assert judged.exit_code == 4, judged.output
    assert past in judged.stdout and f"note: {soon}" in judged.stdout
    data = checked(
        "policy-check.schema.json", world.run("policy", "check", "--format", "json").stdout
    )
    assert [v["rule"] for v in data["violations"]] == ["expires"]
    assert [(x["email"], x["expires"]) for x in data["expiring"]] == [("ops1@acme.co", day(5))]

    review = checked("review.schema.json", world.run("review", "--format", "json").stdout)
    messages = [f["message"] for f in review["findings"]]
    assert any(past in msg for msg in messages) and any(soon in msg for msg in messages)
    page = world.run("review", "--format", "html").stdout
    assert soon in page


def test_the_review_shows_each_users_expiry_where_the_reviewer_decides(
    world: World,  # noqa: F811
) -> None:
    # An expiry beyond every horizon makes no finding: before, the review did not show it at all,
    # so a reviewer keeping a contractor's access could not see that it ends.
    world.sql(
        sa.update(m.User)
        .where(m.User.email == "ops1@acme.co")
        .values(expires=dt.date.fromisoformat(day(45)))
    )
    review = checked("review.schema.json", world.run("review", "--format", "json").stdout)
    rows = {u["email"]: u for u in review["users"]}
    assert rows["ops1@acme.co"]["expires"] == day(45)
    assert rows["ops2@acme.co"]["expires"] is None
    assert not [f for f in review["findings"] if f["code"] in ("expiring_user", "expired_user")]

    listed = list(csv.DictReader(io.StringIO(world.run("review", "--format", "csv").stdout)))
    assert {r["email"]: r["expires"] for r in listed if r["grant"] == "role"} == {
        "appr@acme.co": "",
        "ops1@acme.co": day(45),
        "ops2@acme.co": "",
        "root@acme.co": "",
    }

    page = world.run("review", "--format", "html").stdout
    assert "<th>last day</th>" in page
    row = re.search(r'<tr [^>]*data-email="ops1@acme\.co">(.*?)</tr>', page, re.S)
    assert row is not None and f"<td>{day(45)}</td>" in row.group(1)
    other = re.search(r'<tr [^>]*data-email="ops2@acme\.co">(.*?)</tr>', page, re.S)
    assert other is not None and "<td>none</td>" in other.group(1)


# --- invariant 4 ----------------------------------------------------------------------------


def test_declaring_a_looser_dormancy_limit_than_the_default_needs_a_code(world: World) -> None:  # noqa: F811
    world.write(["max_inactive_days: 3650"])
    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output
    assert '+ policy["max_inactive_days"] create  [destructive, 2FA]' in planned.stdout
    assert "value: 90 (default) -> 3650" in planned.stdout
    refused = world.apply()
    assert refused.exit_code == 4 and "need 2FA" in refused.stderr, refused.output
    assert rows_of(world.engine, m.Policy) == []
    assert world.apply(code=True).exit_code == 0
    assert [(p.rule, p.value) for p in rows_of(world.engine, m.Policy)] == [
        ("max_inactive_days", "3650")
    ]


def test_removing_a_declared_value_stricter_than_the_default_needs_a_code(world: World) -> None:  # noqa: F811
    world.write(["review_every_days: 30"])
    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output  # tighter than the default 182: plain
    assert "value: 182 (default) -> 30" in planned.stdout
    assert world.apply().exit_code == 0

    world.write([])
    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output
    assert '- policy["review_every_days"] delete  [destructive, 2FA]' in planned.stdout
    assert "value: 30 -> 182 (default)" in planned.stdout
    refused = world.apply()
    assert refused.exit_code == 4 and "need 2FA" in refused.stderr, refused.output
    assert [p.rule for p in rows_of(world.engine, m.Policy)] == ["review_every_days"]
    assert world.apply(code=True).exit_code == 0
    assert rows_of(world.engine, m.Policy) == []


# --- invariant 7 ----------------------------------------------------------------------------


def test_turning_off_four_eyes_needs_two_people(world: World, tmp_path: Path) -> None:  # noqa: F811
    _set_org(world, four_eyes=True)
    lead = _lead(world)
    world.write(["four_eyes: false"], ROLES, LEAD_USERS)
    saved = tmp_path / "plan.json"
    planned = world.run("plan", "-f", str(world.path), "--out", str(saved), "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output
    assert '~ policy["four_eyes"] update  [destructive, 2FA]' in planned.stdout
    assert "value: true -> false" in planned.stdout
    assert "Gate: 2FA for destructive changes · four eyes on · min_admins 1" in planned.stdout

    # One person's proof: judged under the four eyes in force, it is not enough.
    one = world.run(
        "apply",
        str(saved),
        "--operator",
        world.root.email,
        "--yes",
        "--otp-code",
        world.root.code(),
    )
    assert one.exit_code == 4 and "four eyes" in one.stderr, one.output
    assert "Traceback" not in one.output
    assert _org(world).four_eyes is True or _org(world).four_eyes == 1

    approved = world.run(
        "approve", str(saved), "--operator", lead.email, "--otp-code", lead.code(), "--yes"
    )
    assert approved.exit_code == 0, approved.output
    two = world.run(
        "apply",
        str(saved),
        "--operator",
        world.root.email,
        "--yes",
        "--otp-code",
        _next_code(world.root),
    )
    assert two.exit_code == 0, two.output
    assert not _org(world).four_eyes
    (event,) = _events(world, "policy.update")
    assert (event["address"], event["verified_by"]) == (
        'policy["four_eyes"]',
        "totp+approval:lead@acme.co",
    )
    assert (event["before"]["value"], event["after"]["value"]) == (True, False)


def test_a_file_that_omits_four_eyes_keeps_it_on(world: World) -> None:  # noqa: F811
    _set_org(world, four_eyes=True, min_admins=2, two_factor_policy="all")
    world.write([])
    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "Gate: 2FA for every change · four eyes on · min_admins 2" in planned.stdout
    org = _org(world)
    assert (bool(org.four_eyes), org.min_admins, org.two_factor_policy) == (True, 2, "all")


def test_tightening_the_gate_is_plain_and_applied_with_no_code(world: World) -> None:  # noqa: F811
    world.write(["four_eyes: true", "two_factor_policy: all", "min_admins: 2"])
    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert planned.stdout.count("update\n") == 3  # three plain policy updates, no flags
    applied = world.apply()
    assert applied.exit_code == 0, applied.output
    org = _org(world)
    assert (bool(org.four_eyes), org.min_admins, org.two_factor_policy) == (True, 2, "all")
    assert {e["address"] for e in _events(world, "policy.update")} == {
        'policy["four_eyes"]',
        'policy["two_factor_policy"]',
        'policy["min_admins"]',
    }
    # The file now says what is in force: no changes, and export writes the same.
    assert world.run("plan", "-f", str(world.path), "--detailed-exitcode").exit_code == 0
    exported = world.run("export").stdout
    assert "  two_factor_policy: all\n  four_eyes: true\n  min_admins: 2\n" in exported


def test_lowering_min_admins_or_the_2fa_policy_needs_a_code(world: World) -> None:  # noqa: F811
    _set_org(world, min_admins=2, two_factor_policy="all")
    for setting, column, before, after in (
        ("min_admins: 1", "min_admins", 2, 1),
        ("two_factor_policy: destructive", "two_factor_policy", "all", "destructive"),
    ):
        world.write([setting])
        planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
        assert planned.exit_code == 3, planned.output
        assert "update  [destructive, 2FA]" in planned.stdout
        refused = world.apply()
        assert refused.exit_code == 4 and "2FA" in refused.stderr, refused.output
        assert getattr(_org(world), column) == before
    world.write(["min_admins: 1", "two_factor_policy: destructive"])
    assert world.apply(code=True).exit_code == 0
    org = _org(world)
    assert (org.min_admins, org.two_factor_policy) == (1, "destructive")


def test_every_format_shows_the_gate_in_force(world: World, tmp_path: Path) -> None:  # noqa: F811
    world.write([], ROLES, {**USERS, "appr@acme.co": person(3, "Approver", first_name="R")})
    text = world.run("plan", "-f", str(world.path))
    assert text.exit_code == 0 and GATE_OFF in text.stdout.splitlines()[1]
    assert GATE_OFF in world.run("plan", "-f", str(world.path), "--format", "markdown").stdout
    assert GATE_OFF in world.run("plan", "-f", str(world.path), "--format", "html").stdout
    data = checked(
        "plan.schema.json", world.run("plan", "-f", str(world.path), "--format", "json").stdout
    )
    assert data["gate"] == {"two_factor_policy": "destructive", "four_eyes": False, "min_admins": 1}
    saved = tmp_path / "plan.json"
    assert world.run("plan", "-f", str(world.path), "--out", str(saved)).exit_code == 0
    assert GATE_OFF in world.run("show", str(saved)).stdout

    # A saved plan's gate is under its digest and re-derived at apply: once the organization's
    # gate moved, the plan no longer applies.
    _set_org(world, min_admins=2)
    stale = world.run("apply", str(saved), "--operator", world.root.email, "--yes")
    assert stale.exit_code == 4, stale.output
    assert _user(world, "appr@acme.co").first_name != "R"


def test_init_from_a_file_with_gate_settings_sets_them(world: World, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "beta.yaml"
    path.write_text(
        "version: 1\norganization: beta-co\npolicies:\n  four_eyes: true\n  min_admins: 2\n"
        "  two_factor_policy: all\nroles:\n  Admin:\n    permissions: [users.view, users.add, "
        "users.manage, roles.manage, audit.view]\nusers:\n  boss@beta.co:\n    first_name: B\n"
        '    last_name: C\n    id_type: CC\n    id_number: "77770001"\n    phone: "+573000000001"\n'
        "    role: Admin\n    two_factor: required\n",
        encoding="utf-8",
    )
    result = world.run("init", "-f", str(path), "--admin", "boss@beta.co", "--json")
    assert result.exit_code == 0, result.output
    (org,) = rows_of(world.engine, m.Organization, m.Organization.slug == "beta-co")
    assert (bool(org.four_eyes), org.min_admins, org.two_factor_policy) == (True, 2, "all")
    planned = world.run("--organization", "beta-co", "plan", "-f", str(path), "--detailed-exitcode")
    assert "Gate: 2FA for every change · four eyes on · min_admins 2" in planned.stdout
    assert 'policy["four_eyes"]' not in planned.stdout  # in force as the file says
