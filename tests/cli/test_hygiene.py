"""Hygiene findings (issue 13): dormant users, invitations expired unused, privileged users
without 2FA, through `userctl hygiene` and on every plan. Time is controlled by moving the stored
timestamps (last login, creation, invitation expiry), never the clock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyotp
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import ADMIN_PERMS, exported, live_state
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl.apply import outbox
from userctl.apply.secret_store import decrypt_secret
from userctl.clock import utcnow
from userctl.db import tables

ORG = "acme-payments"


def _set(engine: Engine, table: sa.Table, where: Any, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(where).values(**values))


# The root operator's TOTP secret, by database: a plan that loosens a policy needs their code.
ROOT_SECRETS: dict[str, str] = {}


def _org(factory: Factory, engine: Engine) -> int:
    org = factory.org(ORG)
    admin = factory.role(org, "Admin", ADMIN_PERMS)
    support = factory.role(org, "Support", ["users.view"])
    ROOT_SECRETS[engine.url.render_as_string()] = factory.operator(
        org, "root@acme.co", admin
    ).secret
    for email in ("fresh@acme.co", "sleepy@acme.co", "ghost@acme.co", "edge@acme.co"):
        factory.user(org, email, support)
    factory.user(org, "bare-admin@acme.co", admin)  # privileged, no authenticator
    invited = factory.user(org, "late@acme.co", support, status="invited")
    factory.user(org, "pending@acme.co", support, status="invited")
    now = utcnow().replace(microsecond=0)
    u = tables.users.c
    _set(engine, tables.users, u.organization_id == org, last_login_at=now - dt.timedelta(days=1))
    _set(
        engine,
        tables.users,
        u.email == "sleepy@acme.co",
        last_login_at=now - dt.timedelta(days=120),
    )
    _set(engine, tables.users, u.email == "edge@acme.co", last_login_at=now - dt.timedelta(days=89))
    _set(
        engine,
        tables.users,
        u.email == "ghost@acme.co",
        last_login_at=None,
        created_at=now - dt.timedelta(days=200),
    )
    with engine.begin() as conn:
        outbox.queue_invitation(conn, org, invited, "late@acme.co", now)
    # As delivery leaves a sent invitation, expired yesterday.
    n = tables.notifications.c
    _set(
        engine,
        tables.notifications,
        n.recipient == "late@acme.co",
        status="sent",
        sent_at=now - dt.timedelta(days=8),
        expires_at=now - dt.timedelta(days=1),
    )
    return org


def test_hygiene_lists_each_kind_of_finding(
    runner: Runner, factory: Factory, engine: Engine
) -> None:
    _org(factory, engine)
    result = runner("hygiene", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["settings"] == {"max_inactive_days": 90, "review_every_days": 182, "blocking": []}
    found = [
        (f["code"], f["message"].split(" ")[0].rstrip(":"), f["blocking"])
        for f in report["findings"]
    ]
    assert found == [
        ("dormant_user", "ghost@acme.co", False),
        ("dormant_user", "sleepy@acme.co", False),
        ("stale_invitation", "late@acme.co", False),
        ("privileged_without_2fa", "bare-admin@acme.co", False),
    ]
    messages = {f["message"].split(" ")[0].rstrip(":"): f["message"] for f in report["findings"]}
    assert "no login for 120 days" in messages["sleepy@acme.co"]
    # The advice never asks to change a `status:` line the user may not have.
    assert (
        "deactivate them (`status: inactive` under `sleepy@acme.co:` in the file) or remove them "
        "from the file" in messages["sleepy@acme.co"]
    )
    assert "status: active" not in messages["sleepy@acme.co"]
    assert "never logged in since created 200 days ago" in messages["ghost@acme.co"]
    assert "`userctl notifications resend late@acme.co`" in messages["late@acme.co"]
    assert "roles.manage, users.add, users.manage" in messages["bare-admin@acme.co"]

    text = runner("hygiene").stdout
    assert text.splitlines()[1].startswith("dormant_user: sleepy@acme.co: no login for 120 days")


def test_resend_clears_the_stale_invitation(
    runner: Runner, factory: Factory, engine: Engine
) -> None:
    org = _org(factory, engine)
    with engine.connect() as conn:
        secret = conn.execute(
            sa.select(tables.totp_secrets.c.secret)
            .join(tables.users, tables.users.c.id == tables.totp_secrets.c.user_id)
            .where(tables.users.c.email == "root@acme.co")
        ).scalar_one()
    resend = (
        "notifications",
        "resend",
        "--operator",
        "root@acme.co",
        "--otp-code",
        pyotp.TOTP(decrypt_secret(secret)).now(),
        "--invite-base-url",
        "https://app.acme.co/join",
    )
    resent = runner(*resend, "LATE@acme.co")
    assert resent.exit_code == 0, resent.output
    assert "a new invitation for late@acme.co is queued" in resent.stdout
    codes = [
        f["code"] for f in json.loads(runner("hygiene", "--format", "json").stdout)["findings"]
    ]
    assert "stale_invitation" not in codes
    with engine.connect() as conn:
        n = tables.notifications.c
        assert conn.execute(
            sa.select(n.status).where(n.recipient == "late@acme.co").order_by(n.id)
        ).scalars().all() == ["revoked", "queued"]  # the earlier link no longer registers
    refused = runner(*resend, "fresh@acme.co")
    assert refused.exit_code == 1 and "is active, not invited" in refused.stderr
    assert runner("audit", "verify").exit_code == 0
    del org


def test_every_plan_shows_the_findings_without_blocking(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    _org(factory, engine)
    desired = exported(live_state(engine, ORG))
    same = write_desired(tmp_path / "users.yaml", desired)
    planned = runner("plan", "-f", str(same), "--format", "json", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output  # no changes: findings inform, they do not block
    codes = [(f["code"], f["blocking"]) for f in json.loads(planned.stdout)["findings"]]
    assert codes == [
        ("dormant_user", False),
        ("dormant_user", False),
        ("stale_invitation", False),
        ("privileged_without_2fa", False),
    ]
    text = runner("plan", "-f", str(same)).stdout
    # The same notes on every plan are one line by default; --verbose shows each.
    assert "sleepy@acme.co" not in text
    assert (
        "4 note(s) (dormant_user ×2, privileged_without_2fa ×1, stale_invitation ×1). "
        "See them: --verbose, or `userctl hygiene`." in text.splitlines()
    )
    verbose = runner("plan", "-f", str(same), "--verbose").stdout
    assert "sleepy@acme.co: no login for 120 days" in verbose

    # A plan that deactivates the dormant user is not told to deactivate them.
    from dataclasses import replace

    users = dict(desired.users)
    users["sleepy@acme.co"] = replace(users["sleepy@acme.co"], status="inactive")
    fixing = write_desired(tmp_path / "fix.yaml", replace(desired, users=users))
    data = json.loads(runner("plan", "-f", str(fixing), "--format", "json").stdout)
    assert [
        f["message"].split(":")[0] for f in data["findings"] if f["code"] == "dormant_user"
    ] == ["ghost@acme.co"]


def test_a_plan_shows_ten_findings_of_a_kind_then_counts_the_rest(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    org = factory.org(ORG)
    admin = factory.role(org, "Admin", ADMIN_PERMS)
    factory.operator(org, "root@acme.co", admin)
    for i in range(13):
        factory.user(org, f"admin{i:02d}@acme.co", admin)
    path = write_desired(tmp_path / "users.yaml", exported(live_state(engine, ORG)))
    found = json.loads(runner("plan", "-f", str(path), "--format", "json").stdout)["findings"]
    assert [f["message"].split(" ")[0] for f in found] == [
        f"admin{i:02d}@acme.co" for i in range(10)
    ] + ["and"]
    assert (
        found[-1]["message"]
        == "and 3 more privileged_without_2fa finding(s): `userctl hygiene` lists them all"
    )
    assert len(json.loads(runner("hygiene", "--format", "json").stdout)["findings"]) == 13


def test_declared_review_policies_set_the_days_and_make_dormant_users_block(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    """`max_inactive_days` and `review_every_days` are policies like the others: applied through a
    plan, then hygiene, plans and `review status` follow them, and a declared dormancy limit
    blocks a plan that leaves a dormant user active."""
    _org(factory, engine)
    path = write_desired(tmp_path / "users.yaml", exported(live_state(engine, ORG)))
    path.write_text(
        path.read_text(encoding="utf-8")
        + "policies:\n  max_inactive_days: 100\n  review_every_days: 30\n",
        encoding="utf-8",
    )
    # Undeclared until this apply: the defaults inform, nothing blocks it. A dormancy limit of 100
    # days where the default 90 was in force loosens it: a code (DESIGN §1, a default is a value).
    code = pyotp.TOTP(ROOT_SECRETS[engine.url.render_as_string()]).now()
    refused = runner("apply", "-f", str(path), "--operator", "root@acme.co", "--yes")
    assert refused.exit_code == 4 and "2FA" in refused.output, refused.output
    applied = runner(
        "apply", "-f", str(path), "--operator", "root@acme.co", "--yes", "--otp-code", code
    )
    assert applied.exit_code == 0, applied.output

    report = json.loads(runner("hygiene", "--format", "json").stdout)
    assert report["settings"] == {
        "max_inactive_days": 100,
        "review_every_days": 30,
        "blocking": ["dormant_user"],
    }
    dormant = [
        (f["message"].split(":")[0], f["blocking"])
        for f in report["findings"]
        if f["code"] == "dormant_user"
    ]
    assert dormant == [
        ("ghost@acme.co", True),
        ("sleepy@acme.co", True),
    ]  # edge@ (89 days) is not, at 100

    planned = runner("plan", "-f", str(path), "--detailed-exitcode")
    assert planned.exit_code == 4, planned.output
    assert "sleepy@acme.co: no login for 120 days" in planned.stdout
    status = json.loads(runner("review", "status", "--format", "json").stdout)
    assert status["review_every_days"] == 30

    # A saved plan's findings are outside its digest: deleting the blocking ones from the file
    # does not get its change applied, since apply judges the dormant users again under its lock.
    path.write_text(
        path.read_text(encoding="utf-8").replace('first_name: "', 'first_name: "Re', 1),
        encoding="utf-8",
    )
    saved = tmp_path / "plan.json"
    assert runner("plan", "-f", str(path), "--out", str(saved)).exit_code == 4
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["changes"] and any(f["blocking"] for f in data["findings"])
    data["findings"] = [f for f in data["findings"] if not f["blocking"]]
    saved.write_text(json.dumps(data), encoding="utf-8")

    def rows() -> list[Any]:
        with engine.connect() as conn:
            return [
                tuple(r) for r in conn.execute(sa.select(tables.users).order_by(tables.users.c.id))
            ]

    before = rows()
    refused = runner("apply", str(saved), "--operator", "root@acme.co", "--yes")
    assert refused.exit_code == 4, refused.output
    assert (
        "sleepy@acme.co: no login for 120 days" in refused.stderr
        and "Nothing was written" in refused.stderr
    )
    assert rows() == before


def test_a_plan_reads_invitations_only_while_someone_is_invited(
    factory: Factory, engine: Engine
) -> None:
    """The invitations query aggregates every notification ever sent; a plan's snapshot knows
    every user's status, so with nobody invited the query is not run (and nothing is lost: only
    an invited user's invitation can be stale)."""
    from userctl.db import plan_read
    from userctl.db.engine import begin_read
    from userctl.db.snapshot import core_rows, read_live_state

    _org(factory, engine)

    def read() -> tuple[list[str], list[str]]:
        asked: list[str] = []
        with begin_read(engine) as conn:
            run = core_rows(conn)

            def rows(name: str, **params: Any) -> Any:
                asked.append(name)
                return run(name, **params)

            facts, _ = plan_read.hygiene(rows, read_live_state(conn, ORG), utcnow())
        return asked, [i.email for i in facts.invitations]

    asked, invitations = read()
    assert "invitations" in asked and invitations == ["late@acme.co"]
    u = tables.users.c
    _set(engine, tables.users, u.status == "invited", status="active")
    asked, invitations = read()
    assert "invitations" not in asked and invitations == []
    _set(engine, tables.users, u.email == "late@acme.co", status="invited")
    assert read()[1] == ["late@acme.co"]
