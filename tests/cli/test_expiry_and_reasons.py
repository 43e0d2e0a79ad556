"""Expiring access and reasons through the real CLI, on every backend (issue 12). The clock cannot
be moved (no option or variable does it): the tests move the stored expiry instead, by writing
the user's row."""

from __future__ import annotations

import datetime as dt
import json
import time

import sqlalchemy as sa

from tests.apply.apply_helpers import rows_of
from tests.cli.test_policies import ROLES, USERS, World, person, world  # noqa: F401 - the fixture
from userctl.clock import utcnow
from userctl.db import models as m

TODAY = utcnow().date()


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def expiring(offset: int | None, **extra: str) -> dict[str, dict[str, str]]:
    """USERS with ops1's expiry `offset` days from today (None: no expiry)."""
    fields = {"expires": day(offset)} if offset is not None else {}
    return {**USERS, "ops1@acme.co": person(1, "Ops", **fields, **extra)}


def _ops1(w: World) -> object:
    return rows_of(w.engine, m.User, m.User.email == "ops1@acme.co")[0]


def test_a_user_expiring_soon_is_named_in_every_format(world: World) -> None:  # noqa: F811
    world.write([], ROLES, expiring(5))

    text = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    # A first expiry schedules a loss of access that will need no further code: 2FA now.
    assert text.exit_code == 3, text.output
    assert f'set_expiry  [destructive, 2FA]\n    expires: null -> "{day(5)}"' in text.stdout
    assert f"ops1@acme.co expires in 5 days ({day(5)})" in text.stdout
    assert f"{world.path}:" in text.stdout  # the note points at the declaration

    data = json.loads(world.run("plan", "-f", str(world.path), "--format", "json").stdout)
    # (beside the hygiene notes on this organization's privileged users without an authenticator)
    expiry = [f for f in data["findings"] if f["code"] == "expiry"]
    assert (
        len(expiry) == 1
        and not expiry[0]["blocking"]
        and "ops1@acme.co expires in 5 days" in expiry[0]["message"]
    )
    assert {f["code"] for f in data["findings"]} <= {"expiry", "privileged_without_2fa"}
    for fmt in ("markdown", "html"):
        assert (
            "ops1@acme.co expires in 5 days"
            in world.run("plan", "-f", str(world.path), "--format", fmt).stdout
        ), fmt


def test_after_the_date_the_plan_deactivates_with_no_code_and_the_audit_names_the_expirys_event(
    world: World,  # noqa: F811
) -> None:
    world.write([], ROLES, expiring(5))
    assert world.apply().exit_code == 4  # setting the expiry is confirmed when it is set
    assert world.apply(code=True).exit_code == 0
    # The date passes: the stored expiry is moved into the past, as the calendar would.
    world.sql(
        sa.update(m.User)
        .where(m.User.email == "ops1@acme.co")
        .values(expires=dt.date.fromisoformat(day(-1)))
    )
    world.write([], ROLES, expiring(-1))  # the file still says status active

    planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert planned.exit_code == 2, (
        planned.output
    )  # destructive, yet no 2FA: the expiry was confirmed
    assert '~ user["ops1@acme.co"] deactivate [expired]  [destructive]' in planned.stdout, (
        planned.stdout
    )

    applied = world.apply()
    assert applied.exit_code == 0, applied.output
    assert "verified by none" in applied.stdout
    assert _ops1(world).status == "inactive"  # type: ignore[attr-defined]

    events = json.loads(
        world.run("audit", "log", "--user", "ops1@acme.co", "--format", "json").stdout
    )
    set_by = [e for e in events if e["action"] == "user.set_expiry"]
    expired = [e for e in events if e["action"] == "user.expire"]
    assert len(set_by) == 1 and len(expired) == 1
    assert expired[0]["refers_to"] == set_by[0]["seq"]
    assert f"(follows #{set_by[0]['seq']})" in world.run("audit", "log").stdout

    # The file saying active does not fight the expiry: nothing more to do.
    assert world.run("plan", "-f", str(world.path), "--detailed-exitcode").exit_code == 0
    # Giving the access back means extending the expiry: a grant, with 2FA.
    world.write([], ROLES, expiring(10))
    back = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert back.exit_code == 3, back.output
    assert (
        "activate  [privilege, 2FA]" in back.stdout or "set_expiry  [privilege, 2FA]" in back.stdout
    )


def test_extending_or_removing_an_expiry_needs_2fa_and_so_does_bringing_it_forward(
    world: World,  # noqa: F811
) -> None:
    world.write([], ROLES, expiring(5))
    assert world.apply(code=True).exit_code == 0

    world.write([], ROLES, expiring(4))  # one day sooner: a loss of access scheduled, 2FA
    sooner = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
    assert sooner.exit_code == 3 and "set_expiry  [destructive, 2FA]" in sooner.stdout
    for later in (expiring(30), expiring(None)):
        world.write([], ROLES, later)
        planned = world.run("plan", "-f", str(world.path), "--detailed-exitcode")
        assert planned.exit_code == 3, planned.output
        assert "set_expiry  [privilege, 2FA]" in planned.stdout

    world.write([], ROLES, expiring(30))
    refused = world.apply()
    assert refused.exit_code == 4 and "2FA" in refused.output
    assert str(_ops1(world).expires) == day(5)  # type: ignore[attr-defined]
    # The next time step's code (within the drift allowed): this step's was used above.
    later = world.root.code(time.time() + 30)
    assert world.apply("--otp-code", later).exit_code == 0
    assert str(_ops1(world).expires) == day(30)  # type: ignore[attr-defined]


def test_a_new_user_cannot_be_created_expired(world: World) -> None:  # noqa: F811
    users = {**USERS, "temp@acme.co": person(8, "Approver", expires=day(-3))}
    text = world.write([], ROLES, users)
    planned = world.run("plan", "-f", str(world.path))
    assert planned.exit_code == 1
    line = next(n for n, row in enumerate(text.splitlines(), 1) if day(-3) in row)
    assert (
        f"{world.path}:{line}:" in planned.stderr and "cannot be created expired" in planned.stderr
    )


def test_the_reason_is_in_every_format_and_every_audit_event(world: World) -> None:  # noqa: F811
    reason = "JIRA-42 rename the approver"
    users = {**USERS, "appr@acme.co": person(3, "Approver", first_name="Renamed")}
    world.write([], ROLES, users)

    data = json.loads(
        world.run("plan", "-f", str(world.path), "--format", "json", "--reason", reason).stdout
    )
    assert data["options"]["reason"] == reason
    for fmt in ("text", "markdown", "html"):
        shown = world.run(
            "plan", "-f", str(world.path), "--format", fmt, env={"USERCTL_REASON": reason}
        ).stdout
        assert f"Reason: {reason}" in shown, fmt

    saved = world.path.parent / "plan.json"
    assert (
        world.run("plan", "-f", str(world.path), "--out", str(saved), "--reason", reason).exit_code
        == 0
    )
    assert json.loads(saved.read_text(encoding="utf-8"))["options"]["reason"] == reason
    other = world.run(
        "apply", str(saved), "--operator", world.root.email, "--yes", "--reason", "something else"
    )
    assert other.exit_code == 1 and "--reason differs" in other.output
    applied = world.run("apply", str(saved), "--operator", world.root.email, "--yes")
    assert applied.exit_code == 0, applied.output

    events = json.loads(world.run("audit", "log", "--format", "json").stdout)
    assert events and all(e["reason"] == reason for e in events)
    assert f"reason: {reason}" in world.run("audit", "log").stdout
    assert world.run("audit", "verify").exit_code == 0  # the reason is covered by the chain


def test_apply_f_takes_a_reason_too(world: World) -> None:  # noqa: F811
    users = {**USERS, "appr@acme.co": person(3, "Approver", first_name="Renamed")}
    world.write([], ROLES, users)
    assert world.apply("--reason", "OPS-9").exit_code == 0
    events = json.loads(world.run("audit", "log", "--format", "json").stdout)
    assert [e["reason"] for e in events] == ["OPS-9"]
