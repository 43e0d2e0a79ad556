"""Shared by the apply, approve and concurrency suites: a realistic live organization built with
the factory, the desired state that changes every kind of thing in it, saved plans, and a
snapshot of every table to prove that a refused apply wrote nothing."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Operator
from userctl.clock import unix_seconds, utcnow
from userctl.db import models as m
from userctl.db.engine import begin_read
from userctl.db.models import Base
from userctl.db.rows import insert_user
from userctl.db.snapshot import read_live_state
from userctl.plan import Plan, dumps, provenance
from userctl.planner import PlanOptions, diff
from userctl.state import DesiredState, LiveState, Role, User

ORG = "acme-payments"
ADMIN_PERMS = ("users.view", "users.add", "users.manage", "roles.manage", "audit.view")
ADMIN = Role("Admin", "Full access", frozenset(ADMIN_PERMS))
OPS = Role("Ops", "Payouts", frozenset({"payouts.view", "payouts.create"}))
SUPPORT = Role("Support", "Helps customers", frozenset({"customers.view", "users.view"}))
LEGACY = Role("Legacy", "Nobody holds it", frozenset({"audit.view"}))


@dataclass
class Org:
    """A live organization: its id, its role ids, the operator and the other users' ids."""

    id: int
    roles: dict[str, int]
    root: Operator
    users: dict[str, int]
    accounts: dict[str, int]


def build_org(
    factory: Factory,
    *,
    four_eyes: bool = False,
    min_admins: int = 1,
    policy: str = "destructive",
    extra_users: int = 0,
) -> Org:
    """acme-payments: roles Admin/Ops/Support/Legacy, the operator root@acme.co (Admin, enrolled),
    ten users in every state the apply test needs to change, and three bank accounts."""
    org = factory.org(
        ORG,
        name="ACME Payments",
        two_factor_policy=policy,
        min_admins=min_admins,
        four_eyes=four_eyes,
    )
    roles = {
        r.name: factory.role(org, r.name, sorted(r.permissions), r.description)
        for r in (ADMIN, OPS, SUPPORT, LEGACY)
    }
    root = factory.operator(
        org, "root@acme.co", roles["Admin"], first_name="Root", last_name="Admin"
    )
    accounts = {
        k: factory.bank_account(org, k, masked_number=f"****{i:04d}")
        for i, k in enumerate(("ops-main", "ops-backup", "payroll"))
    }
    ops = roles["Ops"]
    users = {
        "upd@acme.co": factory.user(org, "upd@acme.co", ops, first_name="Old"),
        "mover@acme.co": factory.user(org, "mover@acme.co", ops),
        "back@acme.co": factory.user(org, "back@acme.co", ops, status="inactive"),
        "leaver@acme.co": factory.user(org, "leaver@acme.co", ops),
        "tf@acme.co": factory.user(org, "tf@acme.co", ops, two_factor="optional"),
        "no2fa@acme.co": factory.user(org, "no2fa@acme.co", ops, two_factor="required"),
        "gone@acme.co": factory.user(org, "gone@acme.co", ops),
        "re@acme.co": factory.user(org, "re@acme.co", ops, phone="+573000000001"),
        "acct@acme.co": factory.user(org, "acct@acme.co", ops),
        "calm@acme.co": factory.user(org, "calm@acme.co", ops, first_name="Calm"),
    }
    for i in range(extra_users):
        users[f"extra{i}@acme.co"] = factory.user(org, f"extra{i}@acme.co", ops)
    factory.enrol(users["no2fa@acme.co"])
    factory.assign(users["gone@acme.co"], accounts["ops-main"])
    factory.assign(users["acct@acme.co"], accounts["ops-main"])
    return Org(org, roles, root, users, accounts)


def bulk_org(factory: Factory) -> tuple[int, Operator]:
    """acme-payments with only its operator root@acme.co (Admin) and the unprivileged Support role
    that `new_user` gives: the start of a plan of many plain creates."""
    org = factory.org(ORG)
    admin = factory.role(org, "Admin", ADMIN_PERMS)
    factory.role(org, SUPPORT.name, sorted(SUPPORT.permissions), SUPPORT.description)
    return org, factory.operator(org, "root@acme.co", admin)


def live_state(engine: Engine, slug: str = ORG) -> LiveState:
    with begin_read(engine) as conn:
        return read_live_state(conn, slug)


def exported(live: LiveState) -> DesiredState:
    """The desired state that matches `live` exactly (invited users are declared active)."""
    users = {
        e: replace(u, totp_enrolled=False, status="active" if u.status == "invited" else u.status)
        for e, u in live.users.items()
    }
    return DesiredState(
        live.organization.slug, dict(live.roles), users, policies=dict(live.policies)
    )


def with_users(desired: DesiredState, *changed: User, drop: Iterable[str] = ()) -> DesiredState:
    """`desired` with `changed` users set (by email) and the `drop` emails removed."""
    gone = set(drop)
    users = {e: u for e, u in desired.users.items() if e not in gone}
    users.update({u.email: u for u in changed})
    return replace(desired, users=users)


def new_user(email: str, n: int, role: str = "Support", **fields: Any) -> User:
    """A user to create. Support holds no privileged permission, so creating one is a plain change
    (no 2FA); a test that means a privileged user says role="Ops" or "Admin"."""
    values: dict[str, Any] = dict(
        email=email,
        first_name="New",
        last_name=f"Person{n}",
        id_type="CC",
        id_number=f"{7000000 + n}",
        phone=f"+5731100{n:05d}",
        role=role,
        status="active",
        two_factor="required",
    )
    values.update(fields)
    return User(**values)


def every_change(engine: Engine) -> tuple[DesiredState, dict[str, Any]]:
    """The desired state that makes every kind of change to `build_org`'s organization, and the
    planning options it needs (`--replace re@acme.co`, planned by the operator). It first gives the
    organization two policies (one to tighten, one to remove) and a user whose expiry has passed."""
    with engine.begin() as conn:
        org_id, support = conn.execute(
            sa.select(m.Role.organization_id, m.Role.id).where(m.Role.name == "Support")
        ).one()
        conn.execute(
            sa.insert(m.Policy),
            [
                {
                    "organization_id": org_id,
                    "rule": "max_holders",
                    "name": "users.manage",
                    "value": "5",
                },
                {"organization_id": org_id, "rule": "require_reason", "name": "", "value": "false"},
            ],
        )
        insert_user(
            conn, org_id, replace(new_user("temp@acme.co", 3), expires="2020-01-31"), support
        )
    live = live_state(engine)
    d = exported(live)
    users = dict(d.users)
    users["upd@acme.co"] = replace(
        users["upd@acme.co"], first_name="New", force_password_reset=True
    )
    users["mover@acme.co"] = replace(users["mover@acme.co"], role="Support")
    users["back@acme.co"] = replace(users["back@acme.co"], status="active")
    users["leaver@acme.co"] = replace(users["leaver@acme.co"], status="inactive")
    users["tf@acme.co"] = replace(users["tf@acme.co"], two_factor="required")
    users["no2fa@acme.co"] = replace(users["no2fa@acme.co"], two_factor="disabled")
    del users["gone@acme.co"]
    users["re@acme.co"] = replace(users["re@acme.co"], phone="+573009999999", role="Auditor")
    users["acct@acme.co"] = replace(users["acct@acme.co"], bank_accounts=frozenset({"ops-backup"}))
    users["new1@acme.co"] = new_user(
        "new1@acme.co", 1, role="Ops", bank_accounts=frozenset({"payroll"})
    )
    users["new2@acme.co"] = new_user("new2@acme.co", 2, role="Auditor")
    users["tf@acme.co"] = replace(
        users["tf@acme.co"], expires="2099-12-31"
    )  # a first expiry: plain
    roles = dict(d.roles)
    roles["Support"] = Role(
        "Support", "Helps customers and calls", frozenset({"customers.view", "calls.access"})
    )
    roles["Auditor"] = Role(
        "Auditor", "Reads the audit log", frozenset({"audit.view", "users.view"})
    )
    del roles["Legacy"]
    policies = {("max_holders", "users.manage"): 4, ("forbid_shared_mailboxes", ""): True}
    return DesiredState(d.organization, roles, users, policies=policies), {
        "replace": frozenset({"re@acme.co"}),
        "operator": "root@acme.co",
    }


def make_plan(engine: Engine, desired: DesiredState, options: PlanOptions = PlanOptions()) -> Plan:
    return diff(desired, live_state(engine, desired.organization), options, utcnow().date())


def stamped(plan: Plan, at: dt.datetime | None = None) -> Plan:
    """`plan` with the provenance `plan` gives it (made now, or `at`; from no file)."""
    return replace(plan, provenance=provenance(at or utcnow(), {}, None))


def save_plan(
    engine: Engine, desired: DesiredState, tmp_path: Path, name: str = "plan.json", **options: Any
) -> Path:
    """Plan `desired` against the live database and save it as `plan --out` would."""
    plan = stamped(make_plan(engine, desired, PlanOptions(**options)))
    path = tmp_path / name
    path.write_text(dumps(plan), encoding="utf-8")
    return path


def drop_gone(engine: Engine) -> DesiredState:
    """A small destructive plan's desired state (2FA under the default policy): gone@acme.co is
    deleted and unassigned."""
    return with_users(exported(live_state(engine)), drop=["gone@acme.co"])


def drop_gone_plan(engine: Engine, tmp_path: Path) -> Path:
    """The same, saved as plan.json in tmp_path."""
    return save_plan(engine, drop_gone(engine), tmp_path)


def rename(desired: DesiredState, email: str, first_name: str) -> DesiredState:
    return with_users(desired, replace(desired.users[email], first_name=first_name))


def tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: equal before and after means nothing was written."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out[table.name] = sorted((tuple(r) for r in conn.execute(sa.select(table))), key=repr)
    return out


def code_at(op: Operator, moment: dt.datetime, steps: int = 0) -> str:
    """The operator's TOTP code at `moment` (naive UTC), `steps` steps later."""
    return op.code(unix_seconds(moment) + 30 * steps)


CLEAN_ENV = (
    "USERCTL_OTP_CODE",
    "USERCTL_OPERATOR",
    "USERCTL_SMTP_URL",
    "USERCTL_AUDIT_KEY",
    "USERCTL_SECRET_KEY",
    "USERCTL_ORGANIZATION",
    "USERCTL_DATABASE_URL",
    "NO_COLOR",
)


def clean_environment(monkeypatch: Any) -> None:
    """A developer's shell (USERCTL_OTP_CODE, USERCTL_SMTP_URL...) must not change what a test sees:
    every option has a variable, so all of them go (but the test servers' URLs)."""
    for name in {
        *CLEAN_ENV,
        *(n for n in os.environ if n.startswith("USERCTL_") and not n.startswith("USERCTL_TEST_")),
    }:
        monkeypatch.delenv(name, raising=False)


def apply_args(plan: Path, operator: str, code: str | None = None, *extra: str) -> list[str]:
    args = ["apply", str(plan), "--operator", operator, "--yes", *extra]
    if code is not None:
        args += ["--otp-code", code]
    return args


def plan_of(path: Path) -> Plan:
    from userctl.plan import loads

    return loads(path.read_text(encoding="utf-8"))


def rows_of(engine: Engine, table: Any, *where: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).where(*where)).all())


def allow_imports(engine: Engine, org: Org) -> None:
    """Let build_org's Admin (root@acme.co) run `accounts import` too (bank_accounts.manage);
    `activity import` needs users.manage, which Admin holds already."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(m.RolePermission).values(
                role_id=org.roles["Admin"], permission="bank_accounts.manage"
            )
        )
