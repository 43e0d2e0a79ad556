"""`userctl apply PLAN` end to end on every backend, through the real CLI with real TOTP codes:
every kind of change in one audited transaction, stale plans, one-time codes and the lockout,
operators, guards re-checked on the state found at apply time, confirmation, and the invitation
outbox delivered to a real SMTP server after commit."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    ADMIN_PERMS,
    Org,
    apply_args,
    build_org,
    code_at,
    drop_gone,
    every_change,
    exported,
    live_state,
    make_plan,
    new_user,
    plan_of,
    rename,
    rows_of,
    save_plan,
    tables,
    with_users,
)
from tests.apply.test_notify import send_env
from tests.conftest import Factory, Operator, Runner
from userctl.apply import apply_plan, audit, outbox
from userctl.db import models as m
from userctl.errors import TwoFactorFailed
from userctl.plan import ACTIONS
from userctl.planner import PlanOptions
from userctl.state import DesiredState, Role

T0 = dt.datetime(2026, 3, 1, 12, 0, 10)  # 10 s into a 30 s step
ALL_ACTIONS = {(kind, action) for kind, actions in ACTIONS.items() for action in actions}
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
HEAD = re.compile(r"Audit chain head: ([0-9a-f]{64})")


def domain_tables(engine: Engine) -> dict[str, Any]:
    """The tables a refused apply must leave alone (a wrong code is booked in the others)."""
    everything = tables(engine)
    return {
        name: rows
        for name, rows in everything.items()
        if name not in ("totp_secrets", "audit_events")
    }


def wrong_code(op: Operator) -> str:
    """Six digits that are no code of `op` anywhere near now."""
    near = {op.code(code_time) for code_time in _around_now()}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in near)


def _around_now() -> list[float]:
    import time

    now = time.time()
    return [now + 30 * s for s in range(-3, 4)]


# --- every kind of change ---------------------------------------------------------------------


def test_apply_makes_every_kind_of_change_in_one_audited_transaction(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    desired, options = every_change(engine)
    path = save_plan(engine, desired, tmp_path, **options)
    plan = plan_of(path)
    # The scenario really covers every action, including a role update that adds and one that
    # removes.
    assert {(c.kind, c.action) for c in plan.active_changes} == ALL_ACTIONS
    role_updates = [
        c.diff["permissions"]
        for c in plan.active_changes
        if c.kind == "role" and c.action == "update"
    ]
    assert [bool(p["added"]) for p in role_updates] == [True, False]
    assert [bool(p["removed"]) for p in role_updates] == [False, True]

    # The saved plan is all apply needs: no desired-state file anywhere near.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner(*apply_args(path, "root@acme.co", org.root.code()))

    assert result.exit_code == 0, result.output
    n = len(plan.active_changes)
    assert f"Applied {n} change(s) to acme-payments (serial 1), verified by totp." in result.stdout
    assert "Queued 3 invitation email(s)." in result.stdout
    printed = HEAD.search(result.stdout)
    assert printed is not None, result.stdout

    # Planning the same desired state again finds nothing left to do (only deferred work).
    again = make_plan(engine, desired, PlanOptions(operator="root@acme.co"))
    assert again.active_changes == ()
    assert {(c.key[0], c.action) for c in again.changes} == {
        ("new1@acme.co", "activate"),
        ("new1@acme.co", "assign"),
        ("new2@acme.co", "activate"),
        ("re@acme.co", "activate"),
    }

    users = {u.email: u for u in rows_of(engine, m.User)}
    assert {
        e: users[e].status for e in ("new1@acme.co", "new2@acme.co", "re@acme.co")
    } == dict.fromkeys(("new1@acme.co", "new2@acme.co", "re@acme.co"), "invited")
    assert (
        users["re@acme.co"].id != org.users["re@acme.co"]
        and users["re@acme.co"].phone == "+573009999999"
    )
    assert "gone@acme.co" not in users
    assert (users["upd@acme.co"].first_name, users["upd@acme.co"].force_password_reset) == (
        "New",
        True,
    )
    assert users["mover@acme.co"].role_id == org.roles["Support"]
    assert users["back@acme.co"].status == "active" and users["leaver@acme.co"].status == "inactive"
    assert users["tf@acme.co"].two_factor == "required"
    assert (users["no2fa@acme.co"].two_factor, users["no2fa@acme.co"].totp_enrolled) == (
        "disabled",
        False,
    )
    # Disabling 2FA removed the enrolled authenticator; the operator's is untouched.
    assert {r.user_id for r in rows_of(engine, m.TotpSecret)} == {org.root.user_id}

    with engine.connect() as conn:
        assigned = set(
            conn.execute(
                sa.select(m.User.email, m.BankAccount.key)
                .join(m.UserBankAccount, m.UserBankAccount.user_id == m.User.id)
                .join(m.BankAccount, m.BankAccount.id == m.UserBankAccount.bank_account_id)
            ).all()
        )
        roles: dict[str, tuple[str, set[str]]] = {
            name: (desc, set())
            for name, desc in conn.execute(sa.select(m.Role.name, m.Role.description))
        }
        for name, permission in conn.execute(
            sa.select(m.Role.name, m.RolePermission.permission).join(m.RolePermission)
        ):
            roles[name][1].add(permission)
        serial = conn.execute(sa.select(m.Organization.serial)).scalar_one()
    assert assigned == {("acct@acme.co", "ops-backup")}
    assert roles == {
        "Admin": ("Full access", set(ADMIN_PERMS)),
        "Ops": ("Payouts", {"payouts.view", "payouts.create"}),
        "Support": ("Helps customers and calls", {"customers.view", "calls.access"}),
        "Auditor": ("Reads the audit log", {"audit.view", "users.view"}),
    }
    assert serial == 1

    queued = rows_of(engine, m.Notification)
    assert sorted((q.recipient, q.status, q.user_id) for q in queued) == [
        ("new1@acme.co", "queued", users["new1@acme.co"].id),
        ("new2@acme.co", "queued", users["new2@acme.co"].id),
        ("re@acme.co", "queued", users["re@acme.co"].id),
    ]

    events = sorted(rows_of(engine, m.AuditEvent), key=lambda e: e.seq)
    assert [(e.action, e.address) for e in events] == [
        (f"{c.kind}.{c.action}", c.address) for c in plan.active_changes
    ]
    assert {(e.operator, e.verified_by, e.plan_digest) for e in events} == {
        ("root@acme.co", "totp", plan.digest)
    }
    assert printed.group(1) == events[-1].hash
    with engine.connect() as conn:
        verified = audit.verify_chain(conn, org.id, head=printed.group(1))
    assert verified.ok, verified.problem
    assert verified.events == n


def test_apply_bumps_the_serial_once_per_apply(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    first = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "One"), tmp_path, name="1.json"
    )
    assert runner(*apply_args(first, "root@acme.co")).exit_code == 0
    second = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Two"), tmp_path, name="2.json"
    )
    result = runner(*apply_args(second, "root@acme.co"))
    assert result.exit_code == 0, result.output
    assert "(serial 2), verified by none." in result.stdout  # a rename needs no 2FA
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(m.User.first_name).where(m.User.email == "calm@acme.co")
            ).scalar_one()
            == "Two"
        )
        assert audit.verify_chain(conn, org.id).events == 2


def desired_yaml(desired: DesiredState) -> str:
    """`desired` as a desired-state file (PyYAML quotes digit strings such as id numbers)."""
    import yaml

    document = {
        "version": 1,
        "organization": desired.organization,
        "roles": {
            r.name: {"description": r.description, "permissions": sorted(r.permissions)}
            for r in desired.roles.values()
        },
        "users": {
            u.email: {
                "first_name": u.first_name,
                "last_name": u.last_name,
                "id_type": u.id_type,
                "id_number": u.id_number,
                "phone": u.phone,
                "role": u.role,
                "status": u.status,
                "two_factor": u.two_factor,
                "force_password_reset": u.force_password_reset,
                "bank_accounts": sorted(u.bank_accounts),
            }
            for u in desired.users.values()
        },
    }
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True)


def test_file_planned_saved_and_applied_without_it_then_apply_f(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    """The pipeline's path: `plan -f FILE --out`, the file is gone, `apply PLAN`; then the
    one-step `apply -f FILE`, and a second `apply -f` finds nothing to do."""
    desired = with_users(drop_gone(engine), new_user("yaml.new@acme.co", 3))
    source = tmp_path / "users.yaml"
    source.write_text(desired_yaml(desired), encoding="utf-8")
    saved = tmp_path / "plan.json"
    planned = runner("plan", "-f", str(source), "--out", str(saved), "--operator", "root@acme.co")
    assert planned.exit_code == 0, planned.output
    source.unlink()

    applied = runner(*apply_args(saved, "root@acme.co", org.root.code()))

    assert applied.exit_code == 0, applied.output
    assert "Applied 3 change(s)" in applied.stdout  # unassign + delete gone, create yaml.new
    assert not rows_of(engine, m.User, m.User.email == "gone@acme.co")
    assert [u.status for u in rows_of(engine, m.User, m.User.email == "yaml.new@acme.co")] == [
        "invited"
    ]

    source.write_text(desired_yaml(rename(desired, "calm@acme.co", "Serena")), encoding="utf-8")
    direct = runner("apply", "-f", str(source), "--operator", "root@acme.co", "--yes")
    assert direct.exit_code == 0, direct.output
    assert "Applied 1 change(s) to acme-payments (serial 2), verified by none." in direct.stdout
    assert [u.first_name for u in rows_of(engine, m.User, m.User.email == "calm@acme.co")] == [
        "Serena"
    ]
    again = runner("apply", "-f", str(source), "--operator", "root@acme.co", "--yes")
    assert again.exit_code == 0, again.output
    assert "No changes" in again.stdout


def test_apply_f_reports_bad_input_with_its_location(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    desired = drop_gone(engine)
    source = tmp_path / "users.yaml"
    text = desired_yaml(desired).replace("role: Ops", "role: Nope", 1)
    source.write_text(text, encoding="utf-8")
    before = tables(engine)
    result = runner("apply", "-f", str(source), "--operator", "root@acme.co", "--yes")
    assert result.exit_code == 1, result.output
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "role: Nope" in row)
    assert f"{source}:{line}:" in result.stderr and "unknown role 'Nope'" in result.stderr
    assert tables(engine) == before


# --- stale plans ------------------------------------------------------------------------------


def _sql(statement: Callable[[Org], sa.Executable]) -> Callable[[Engine, Factory, Org], None]:
    def edit(engine: Engine, factory: Factory, org: Org) -> None:
        with engine.begin() as conn:
            conn.execute(statement(org))

    return edit


def _create_new1(engine: Engine, factory: Factory, org: Org) -> None:
    factory.user(org.id, "new1@acme.co", org.roles["Ops"])


def _assign_upd(engine: Engine, factory: Factory, org: Org) -> None:
    factory.assign(org.users["upd@acme.co"], org.accounts["payroll"])


def _delete_tf(engine: Engine, factory: Factory, org: Org) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(m.User).where(m.User.id == org.users["tf@acme.co"]))


STALE_EDITS = {
    "user renamed": (
        _sql(
            lambda o: (
                sa.update(m.User)
                .where(m.User.id == o.users["upd@acme.co"])
                .values(first_name="Sneaky")
            )
        ),
        'user["upd@acme.co"]',
    ),
    "user the plan creates appeared": (_create_new1, 'user["new1@acme.co"]'),
    "user the plan updates was deleted": (_delete_tf, 'user["tf@acme.co"]'),
    "bank account given to a touched user": (_assign_upd, 'user["upd@acme.co"]'),
    "role the plan relies on changed": (
        _sql(
            lambda o: sa.insert(m.RolePermission).values(
                role_id=o.roles["Ops"], permission="payouts.approve"
            )
        ),
        'role["Ops"]',
    ),
    "bank account the plan assigns changed": (
        _sql(
            lambda o: (
                sa.update(m.BankAccount)
                .where(m.BankAccount.id == o.accounts["ops-backup"])
                .values(masked_number="****9999")
            )
        ),
        'bank_account["ops-backup"]',
    ),
    "organization policy tightened": (
        _sql(
            lambda o: (
                sa.update(m.Organization)
                .where(m.Organization.id == o.id)
                .values(two_factor_policy="all")
            )
        ),
        'organization["acme-payments"]',
    ),
}


@pytest.mark.parametrize("edit", sorted(STALE_EDITS))
def test_stale_plan_is_refused_naming_the_row_and_writes_nothing(
    engine: Engine, factory: Factory, org: Org, runner: Runner, tmp_path: Path, edit: str
) -> None:
    desired, options = every_change(engine)
    path = save_plan(engine, desired, tmp_path, **options)
    change_row, address = STALE_EDITS[edit]
    change_row(engine, factory, org)
    before = tables(engine)

    result = runner(*apply_args(path, "root@acme.co", org.root.code()))

    assert result.exit_code == 4, result.output
    assert "stale" in result.stderr and address in result.stderr
    assert "Traceback" not in result.output
    assert tables(engine) == before


def test_plan_survives_unrelated_activity(
    engine: Engine, factory: Factory, org: Org, runner: Runner, tmp_path: Path
) -> None:
    desired, options = every_change(engine)
    path = save_plan(engine, desired, tmp_path, **options)
    # A busy organization: other users, accounts, organizations and applies move on meanwhile.
    with engine.begin() as conn:
        conn.execute(
            sa.update(m.User).where(m.User.email == "calm@acme.co").values(first_name="Renamed")
        )
        conn.execute(
            sa.update(m.Organization)
            .where(m.Organization.id == org.id)
            .values(serial=41, name="ACME Renamed")
        )
    factory.assign(org.users["calm@acme.co"], org.accounts["payroll"])
    factory.bank_account(org.id, "fx-usd", currency="USD")
    factory.user(org.id, "newcomer@acme.co", org.roles["Ops"])
    other = factory.org("other-co")
    factory.user(other, "upd@acme.co", factory.role(other, "Ops"), first_name="Elsewhere")

    result = runner(*apply_args(path, "root@acme.co", org.root.code()))

    assert result.exit_code == 0, result.output
    assert "(serial 42)" in result.stdout
    with engine.connect() as conn:
        names = dict(
            conn.execute(
                sa.select(m.User.email, m.User.first_name).where(m.User.organization_id == org.id)
            ).all()
        )
        elsewhere = conn.execute(
            sa.select(m.User.first_name).where(m.User.organization_id == other)
        ).scalar_one()
    assert (
        names["calm@acme.co"] == "Renamed"
        and names["upd@acme.co"] == "New"
        and "newcomer@acme.co" in names
    )
    assert elsewhere == "Elsewhere"


def test_plan_for_an_organization_that_is_gone_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    with engine.begin() as conn:  # the organization the plan was made for is renamed away
        conn.execute(sa.update(m.Organization).values(slug="acme-renamed"))
    before = tables(engine)
    result = runner(*apply_args(path, "root@acme.co", org.root.code()))
    assert result.exit_code == 1, result.output
    assert "'acme-payments' does not exist" in result.stderr
    assert tables(engine) == before


# --- one-time codes ---------------------------------------------------------------------------

CODES: dict[str, Callable[[Operator], str]] = {
    "full-width digits of a valid code": lambda op: op.code().translate(FULL_WIDTH),
    "five digits": lambda op: op.code()[:5],
    "seven digits": lambda op: op.code() + "0",
    "empty": lambda op: "",
    "spaces around a valid code": lambda op: f" {op.code()} ",
}


@pytest.mark.parametrize("kind", sorted(CODES))
def test_malformed_codes_are_refused_without_counting(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, kind: str
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    before = tables(engine)
    result = runner(*apply_args(path, "root@acme.co", CODES[kind](org.root)))
    assert result.exit_code == 4, result.output
    assert "six digits" in result.stderr
    assert tables(engine) == before  # not even booked as a wrong guess


def test_wrong_code_is_refused_and_only_the_failure_is_recorded(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    before = domain_tables(engine)
    code = wrong_code(org.root)
    result = runner(*apply_args(path, "root@acme.co", code))
    assert result.exit_code == 4, result.output
    assert "wrong one-time code" in result.stderr and "4 attempt(s) left" in result.stderr
    assert code not in result.output
    assert domain_tables(engine) == before
    assert [
        r.failed_attempts
        for r in rows_of(engine, m.TotpSecret, m.TotpSecret.user_id == org.root.user_id)
    ] == [1]
    assert [e.action for e in rows_of(engine, m.AuditEvent)] == ["otp.failure"]


def test_code_from_the_environment_is_used(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    result = runner(*apply_args(path, "root@acme.co"), env={"USERCTL_OTP_CODE": org.root.code()})
    assert result.exit_code == 0, result.output
    assert "verified by totp" in result.stdout


def test_missing_code_is_refused(engine: Engine, org: Org, runner: Runner, tmp_path: Path) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    before = tables(engine)
    result = runner(*apply_args(path, "root@acme.co"))
    assert result.exit_code == 4, result.output
    assert "--otp-code" in result.stderr and "approve" in result.stderr
    assert tables(engine) == before


def test_under_policy_all_every_change_to_an_existing_user_needs_a_code(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    org = build_org(factory, policy="all")
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Strict"), tmp_path
    )
    before = tables(engine)
    refused = runner(*apply_args(path, "root@acme.co"))
    assert refused.exit_code == 4 and "1 step(s) of this plan need 2FA" in refused.stderr
    assert tables(engine) == before
    applied = runner(*apply_args(path, "root@acme.co", org.root.code()))
    assert applied.exit_code == 0, applied.output
    assert "verified by totp" in applied.stdout


def test_replayed_code_is_refused_for_the_next_plan(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    code = org.root.code()
    first = save_plan(engine, drop_gone(engine), tmp_path, name="first.json")
    assert runner(*apply_args(first, "root@acme.co", code)).exit_code == 0
    live = live_state(engine)
    second = save_plan(
        engine, with_users(exported(live), drop=["leaver@acme.co"]), tmp_path, name="second.json"
    )
    before = tables(engine)

    result = runner(*apply_args(second, "root@acme.co", code))

    assert result.exit_code == 4, result.output
    assert "already used" in result.stderr
    assert tables(engine) == before


def test_five_wrong_codes_lock_the_operator_out_until_the_lockout_expires(
    engine: Engine, org: Org
) -> None:
    plan = make_plan(engine, drop_gone(engine))
    valid_near_t0 = {code_at(org.root, T0, s) for s in range(-2, 30)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid_near_t0)
    before = domain_tables(engine)
    messages = []
    for attempt in range(5):
        with pytest.raises(TwoFactorFailed) as refused:
            apply_plan(
                engine, plan, "root@acme.co", otp_code=wrong, now=T0 + dt.timedelta(seconds=attempt)
            )
        messages.append(str(refused.value))
    assert "1 attempt(s) left" in messages[3]
    assert "locked out of confirmations until 2026-03-01T12:15:14Z" in messages[4]

    # The right code does not help while locked out, and is not counted either.
    locked = tables(engine)
    during = T0 + dt.timedelta(minutes=5)
    with pytest.raises(TwoFactorFailed, match="locked out"):
        apply_plan(engine, plan, "root@acme.co", otp_code=code_at(org.root, during), now=during)
    assert tables(engine) == locked
    assert domain_tables(engine) == before
    assert [e.action for e in rows_of(engine, m.AuditEvent)] == ["otp.failure"] * 5 + [
        "otp.lockout"
    ]

    after = T0 + dt.timedelta(minutes=16)
    result = apply_plan(engine, plan, "root@acme.co", otp_code=code_at(org.root, after), now=after)
    assert (result.applied, result.verified_by) == (2, "totp")
    assert not rows_of(engine, m.User, m.User.email == "gone@acme.co")
    # A success resets the counter: the next wrong code starts again at one.
    assert [
        (r.failed_attempts, r.locked_until)
        for r in rows_of(engine, m.TotpSecret, m.TotpSecret.user_id == org.root.user_id)
    ] == [(0, None)]


# --- operators --------------------------------------------------------------------------------


def _ops_operator(factory: Factory, org: Org) -> tuple[str, str | None]:
    op = factory.operator(org.id, "opsy@acme.co", org.roles["Ops"])
    return op.email, op.code()


def _not_enrolled(factory: Factory, org: Org) -> tuple[str, str | None]:
    factory.user(org.id, "fresh.admin@acme.co", org.roles["Admin"])
    return "fresh.admin@acme.co", "123456"


def _unknown(factory: Factory, org: Org) -> tuple[str, str | None]:
    return "nobody@acme.co", "123456"


def _inactive(factory: Factory, org: Org) -> tuple[str, str | None]:
    op = factory.operator(org.id, "former@acme.co", org.roles["Admin"])
    with factory.engine.begin() as conn:
        conn.execute(sa.update(m.User).where(m.User.id == op.user_id).values(status="inactive"))
    return op.email, op.code()


def _other_org(factory: Factory, org: Org) -> tuple[str, str | None]:
    other = factory.org("other-co")
    op = factory.operator(other, "boss@other.co", factory.role(other, "Admin", ADMIN_PERMS))
    return op.email, op.code()


OPERATORS = {
    "without users.manage": (_ops_operator, "lacks users.manage"),
    "without an enrolled authenticator": (_not_enrolled, "no authenticator enrolled"),
    "unknown": (_unknown, "not a user of this organization"),
    "inactive": (_inactive, "is inactive"),
    "of another organization": (_other_org, "not a user of this organization"),
}


@pytest.mark.parametrize("who", sorted(OPERATORS))
def test_ineligible_operator_is_refused(
    engine: Engine, factory: Factory, org: Org, runner: Runner, tmp_path: Path, who: str
) -> None:
    make_operator, reason = OPERATORS[who]
    path = save_plan(engine, drop_gone(engine), tmp_path)
    operator, code = make_operator(factory, org)
    before = tables(engine)
    result = runner(*apply_args(path, operator, code))
    assert result.exit_code == 4, result.output
    assert reason in result.stderr
    assert tables(engine) == before


def test_operator_needs_the_permissions_of_what_the_plan_changes(
    engine: Engine, factory: Factory, org: Org, runner: Runner, tmp_path: Path
) -> None:
    """users.add to create users, users.manage for other user changes, roles.manage for roles."""
    inviter = factory.operator(
        org.id, "inviter@acme.co", factory.role(org.id, "Inviter", ["users.add", "users.view"])
    )
    role_admin = factory.operator(
        org.id, "roles@acme.co", factory.role(org.id, "RoleAdmin", ["roles.manage"])
    )
    live = exported(live_state(engine))
    creates = save_plan(
        engine, with_users(live, new_user("invitee@acme.co", 5)), tmp_path, name="creates.json"
    )
    roles = dict(live.roles)
    roles["Viewer"] = Role("Viewer", "Reads", frozenset({"users.view"}))
    role_only = save_plan(
        engine, DesiredState(live.organization, roles, live.users), tmp_path, name="roles.json"
    )
    renames = save_plan(
        engine, rename(live, "calm@acme.co", "Renamed"), tmp_path, name="renames.json"
    )

    refused = runner(*apply_args(renames, inviter.email))
    assert refused.exit_code == 4 and "lacks users.manage" in refused.stderr
    refused = runner(*apply_args(creates, role_admin.email))
    assert refused.exit_code == 4 and "lacks users.add" in refused.stderr
    refused = runner(*apply_args(role_only, inviter.email))
    assert refused.exit_code == 4 and "lacks roles.manage" in refused.stderr

    created = runner(*apply_args(creates, inviter.email))
    assert created.exit_code == 0, created.output
    role_made = runner(*apply_args(role_only, role_admin.email))
    assert role_made.exit_code == 0, role_made.output
    assert {r.name for r in rows_of(engine, m.Role)} >= {"Viewer"}
    assert rows_of(engine, m.User, m.User.email == "invitee@acme.co")


# --- guards -----------------------------------------------------------------------------------


def test_plan_blocked_at_plan_time_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    desired = with_users(
        exported(live_state(engine)),
        drop=["gone@acme.co", "calm@acme.co", "tf@acme.co", "upd@acme.co"],
    )
    path = save_plan(engine, desired, tmp_path)
    assert plan_of(path).blocked  # 4 of 11 users
    before = tables(engine)
    result = runner(*apply_args(path, "root@acme.co", org.root.code()))
    assert result.exit_code == 4, result.output
    assert "blocking" in result.stderr and "4 of 11 users" in result.stderr
    assert tables(engine) == before


def test_blocked_plan_with_its_findings_edited_out_is_still_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    """Findings are derived data outside the digest: apply must judge the changes themselves."""
    desired = with_users(
        exported(live_state(engine)),
        drop=["gone@acme.co", "calm@acme.co", "tf@acme.co", "upd@acme.co"],
    )
    path = save_plan(engine, desired, tmp_path)
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    data["findings"] = []
    path.write_text(json.dumps(data), encoding="utf-8")
    before = tables(engine)
    result = runner(*apply_args(path, "root@acme.co", org.root.code()))
    assert result.exit_code == 4, result.output
    assert "4 of 11 users" in result.stderr
    assert tables(engine) == before


def test_guard_failing_on_the_state_found_at_apply_time_refuses_the_plan(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    """The plan deletes one of three admins (two must remain). Before it is applied, another admin
    — a row the plan does not touch, so the plan is not stale — is deactivated directly: applying
    now would leave a single admin."""
    org = build_org(factory, min_admins=2)
    factory.operator(org.id, "admin2@acme.co", org.roles["Admin"])
    admin3 = factory.operator(org.id, "admin3@acme.co", org.roles["Admin"])
    path = save_plan(
        engine, with_users(exported(live_state(engine)), drop=["admin2@acme.co"]), tmp_path
    )
    assert not plan_of(path).blocked
    with engine.begin() as conn:
        conn.execute(sa.update(m.User).where(m.User.id == admin3.user_id).values(status="inactive"))
    before = tables(engine)

    result = runner(*apply_args(path, "root@acme.co", org.root.code()))

    assert result.exit_code == 4, result.output
    assert "guards on the current state" in result.stderr and "at least 2" in result.stderr
    assert tables(engine) == before


def test_self_guard_applies_to_whoever_applies(
    engine: Engine, factory: Factory, org: Org, runner: Runner, tmp_path: Path
) -> None:
    admin2 = factory.operator(org.id, "admin2@acme.co", org.roles["Admin"])
    path = save_plan(
        engine,
        with_users(exported(live_state(engine)), drop=["admin2@acme.co"]),
        tmp_path,
        operator="root@acme.co",
    )
    assert not plan_of(path).blocked
    before = tables(engine)
    result = runner(*apply_args(path, admin2.email, admin2.code()))
    assert result.exit_code == 4, result.output
    assert "admin2@acme.co cannot delete themselves" in result.stderr
    assert tables(engine) == before


# --- confirmation -----------------------------------------------------------------------------


def test_without_yes_and_without_a_terminal_apply_refuses(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    before = tables(engine)
    result = runner("apply", str(path), "--operator", "root@acme.co", "--otp-code", org.root.code())
    assert result.exit_code == 4, result.output
    assert "pass --yes" in result.stderr
    assert tables(engine) == before


def test_plan_without_changes_applies_nothing(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, exported(live_state(engine)), tmp_path)
    before = tables(engine)
    result = runner(*apply_args(path, "root@acme.co"))
    assert result.exit_code == 0, result.output
    assert "No changes" in result.stdout
    assert tables(engine) == before


def test_saved_plan_that_is_not_a_plan_is_bad_input(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"format_version": 1,\n "changes": [', encoding="utf-8")
    result = runner(*apply_args(path, "root@acme.co"))
    assert result.exit_code == 1
    assert f"{path}:2:" in result.stderr and "Traceback" not in result.output
    missing = runner(*apply_args(tmp_path / "missing.json", "root@acme.co"))
    assert missing.exit_code == 1 and "cannot read the saved plan" in missing.stderr


# --- invitations ------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def links(self) -> dict[str, str]:
        """recipient -> the registration token in its email."""
        out = {}
        for recipients, message in self.messages:
            body = message.get_body(("plain",))
            assert body is not None
            found = re.search(r"[?&]token=([A-Za-z0-9_-]+)", body.get_content())
            assert found is not None, body.get_content()
            out[recipients[0]] = found.group(1)
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, Controller]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller
    controller.stop()


def _smtp_env(controller: Controller) -> dict[str, str | None]:
    return send_env(f"smtp://127.0.0.1:{controller.port}")


def test_apply_delivers_invitations_over_smtp_after_commit(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, controller = smtp
    desired, options = every_change(engine)
    path = save_plan(engine, desired, tmp_path, **options)

    result = runner(*apply_args(path, "root@acme.co", org.root.code()), env=_smtp_env(controller))

    assert result.exit_code == 0, result.output
    assert "Invitations: 3 sent, 0 still queued." in result.stdout
    tokens = inbox.links()
    assert sorted(tokens) == ["new1@acme.co", "new2@acme.co", "re@acme.co"]
    stored = {n.recipient: n for n in rows_of(engine, m.Notification)}
    for recipient, token in tokens.items():
        assert stored[recipient].status == "sent"
        assert stored[recipient].token_hash == outbox.token_hash(token)
        assert token not in result.output  # the token lives only in the email
    assert all(
        subject.startswith("You are invited to ACME Payments")
        for subject in (msg["Subject"] for _, msg in inbox.messages)
    )


def test_invitations_stay_queued_while_smtp_is_down_and_are_sent_later(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet
    path = save_plan(
        engine, with_users(exported(live_state(engine)), new_user("late@acme.co", 9)), tmp_path
    )

    result = runner(*apply_args(path, "root@acme.co"), env=send_env(f"smtp://127.0.0.1:{port}"))

    assert result.exit_code == 0, result.output  # the apply itself is committed
    assert "0 sent, 1 still queued" in result.stdout and "notifications send" in result.stderr
    [row] = rows_of(engine, m.Notification)
    assert (row.recipient, row.status, row.attempts, row.token_hash) == (
        "late@acme.co",
        "queued",
        1,
        None,
    )
    assert rows_of(engine, m.User, m.User.email == "late@acme.co")

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        later = runner("notifications", "send", env=send_env(f"smtp://127.0.0.1:{port}"))
    finally:
        controller.stop()
    assert later.exit_code == 0, later.output
    token = inbox.links()["late@acme.co"]
    [row] = rows_of(engine, m.Notification)
    assert (row.status, row.token_hash) == ("sent", outbox.token_hash(token))


@pytest.mark.parametrize("why", ["stale", "wrong code"])
def test_rolled_back_apply_queues_and_sends_nothing(
    engine: Engine,
    org: Org,
    runner: Runner,
    tmp_path: Path,
    smtp: tuple[Inbox, Controller],
    why: str,
) -> None:
    inbox, controller = smtp
    desired, options = every_change(engine)
    path = save_plan(engine, desired, tmp_path, **options)
    code = org.root.code()
    if why == "stale":
        with engine.begin() as conn:
            conn.execute(
                sa.update(m.User).where(m.User.email == "upd@acme.co").values(last_name="Changed")
            )
    else:
        code = wrong_code(org.root)
    before = domain_tables(engine)

    result = runner(*apply_args(path, "root@acme.co", code), env=_smtp_env(controller))

    assert result.exit_code == 4, result.output
    assert domain_tables(engine) == before
    assert rows_of(engine, m.Notification) == []
    assert inbox.messages == []
