"""Every JSON output a pipeline reads, produced by the real CLI against real databases (every
backend) and validated against its published schema, its instants in the one RFC 3339 form:
init, plan, show, apply, approve, audit log and verify, the views, accounts import,
notifications list and send, mfa enroll."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyotp
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    apply_args,
    drop_gone,
    every_change,
    make_plan,
    plan_of,
    rows_of,
    save_plan,
    stamped,
)
from tests.apply.test_notify import SmtpServer
from tests.cli.json_outputs import RFC3339_UTC, checked
from tests.conftest import Factory, Runner
from userctl.db import models as m
from userctl.plan import dumps
from userctl.planner import PlanOptions

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "users.yaml")
ADMIN = "ana.perez@acme.co"
events_t = m.AuditEvent.__table__


def test_the_demo_walkthrough_in_json(runner: Runner, engine: Engine, tmp_path: Path) -> None:
    """The README's demo with --format json at every step, invitations delivered to a real SMTP
    server: each document validates, and the numbers agree with each other and the database."""
    init = runner("init", "-f", EXAMPLE, "--admin", ADMIN, "--demo", "--json")
    assert init.exit_code == 0, init.output
    admin = checked("init.schema.json", init.stdout)
    totp = pyotp.TOTP(admin["totp_secret"])

    planned = runner(
        "plan", "-f", EXAMPLE, "--format", "json", "--out", str(tmp_path / "plan.json")
    )
    plan = checked("plan.schema.json", planned.stdout)
    assert RFC3339_UTC.match(plan["provenance"]["created_at"])
    shown = runner("show", str(tmp_path / "plan.json"), "--format", "json")
    assert checked("plan.schema.json", shown.stdout) == plan

    smtp = SmtpServer()
    smtp.start()
    try:
        env = {"USERCTL_SMTP_URL": smtp.url, "USERCTL_INVITE_BASE_URL": "https://app.acme.co/join"}
        applied = runner(
            *apply_args(
                tmp_path / "plan.json", ADMIN, totp.now(), "-f", EXAMPLE, "--format", "json"
            ),
            env=env,
        )
    finally:
        smtp.stop()
    assert applied.exit_code == 0, applied.output
    result = checked(
        "apply.schema.json", applied.stdout
    )  # stdout is the one document, nothing else
    active = [c for c in plan["changes"] if not c["deferred"]]
    assert result["applied"] == len(active) == sum(result["changes"].values())
    assert result["changes"] == dict(Counter(f"{c['kind']}.{c['action']}" for c in active))
    assert (
        result["operator"],
        result["verified_by"],
        result["verification"],
        result["approvals_used"],
    ) == (ADMIN, ADMIN, "code", [])
    assert result["plan_digest"] == plan["digest"] and result["serial"] == 1
    created = sorted(c["key"][0] for c in active if (c["kind"], c["action"]) == ("user", "create"))
    assert (
        sorted(result["invitations"]["recipients"]) == created
        and result["invitations"]["queued"] == len(created) > 0
    )
    assert result["invitations"]["delivery"] == {"sent": len(created), "still_queued": 0}
    assert len(smtp.inbox.messages) == len(created)
    assert admin["totp_secret"] not in applied.output

    log = checked("audit-log.schema.json", runner("audit", "log", "--format", "json").stdout)
    seqs = result["audit_events"]
    assert [e["seq"] for e in log if e["plan_digest"] == plan["digest"]] == list(
        range(seqs["first_seq"], seqs["last_seq"] + 1)
    )
    assert log[-1]["hash"] == result["audit_head"]

    verified = runner("audit", "verify", "--head", result["audit_head"], "--format", "json")
    assert verified.exit_code == 0, verified.output
    assert checked("audit-verify.schema.json", verified.stdout) == {
        "organization": "acme-payments",
        "ok": True,
        "events": len(log),
        "head": result["audit_head"],
        "expected_head": result["audit_head"],
        "events_after_head": 0,
        "hmac_checked": False,
        "broken": None,
        "signed": None,  # no --public-key
    }

    users = checked("users-list.schema.json", runner("users", "list", "--format", "json").stdout)
    other = next(u["email"] for u in users if u["status"] == "active" and u["email"] != ADMIN)
    checked("users-show.schema.json", runner("users", "show", other, "--format", "json").stdout)
    checked("roles-list.schema.json", runner("roles", "list", "--format", "json").stdout)
    checked("accounts-list.schema.json", runner("accounts", "list", "--format", "json").stdout)
    outbox = checked(
        "notifications-list.schema.json", runner("notifications", "list", "--format", "json").stdout
    )
    assert sorted(n["recipient"] for n in outbox if n["status"] == "sent") == created

    # The next TOTP step: the step apply used is spent for this operator.
    enrolled = runner(
        "mfa",
        "enroll",
        other,
        "--operator",
        ADMIN,
        "--otp-code",
        totp.at(time.time() + 30),
        "--json",
    )
    assert enrolled.exit_code == 0, enrolled.output
    checked("mfa-enroll.schema.json", enrolled.stdout)


def test_apply_with_approvals_says_whose_and_approve_reports_its_approval(
    runner: Runner, engine: Engine, factory: Factory, org: Org, tmp_path: Path
) -> None:
    lead = factory.operator(org.id, "lead@acme.co", org.roles["Admin"])
    plan = save_plan(engine, drop_gone(engine), tmp_path)
    approved = runner(
        "approve",
        "--yes",
        str(plan),
        "--operator",
        org.root.email,
        "--otp-code",
        org.root.code(),
        "--format",
        "json",
    )
    assert approved.exit_code == 0, approved.output
    approval = checked("approve.schema.json", approved.stdout)
    [row] = rows_of(engine, m.Approval)
    assert (approval["approver"], approval["approval_id"], approval["plan_digest"]) == (
        "root@acme.co",
        row.id,
        plan_of(plan).digest,
    )
    assert approval["valid_until"] == row.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "gone@acme.co" in approved.stderr  # what the code confirmed is shown, on stderr

    applied = runner(*apply_args(plan, lead.email, None, "--format", "json"))
    assert applied.exit_code == 0, applied.output
    result = checked("apply.schema.json", applied.stdout)
    assert (
        result["operator"],
        result["verified_by"],
        result["verification"],
        result["approvals_used"],
    ) == ("lead@acme.co", None, "approvals", ["root@acme.co"])
    head = runner("audit", "verify", "--format", "json")
    assert (
        checked("audit-verify.schema.json", head.stdout)["head"]
        == result["audit_head"]
        != approval["audit_head"]
    )


def test_apply_of_a_plan_with_nothing_to_do(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    from tests.apply.apply_helpers import exported, live_state

    plan = save_plan(engine, exported(live_state(engine)), tmp_path)
    applied = runner(*apply_args(plan, org.root.email, None, "--format", "json"))
    assert applied.exit_code == 0, applied.output
    result = checked("apply.schema.json", applied.stdout)
    assert (
        result["applied"],
        result["changes"],
        result["serial"],
        result["audit_head"],
        result["verification"],
    ) == (0, {}, None, None, "none")


def test_every_kind_of_change_counted_by_action(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    desired, options = every_change(engine)
    plan = save_plan(engine, desired, tmp_path, **options)
    applied = runner(*apply_args(plan, org.root.email, org.root.code(), "--format", "json"))
    assert applied.exit_code == 0, applied.output
    result = checked("apply.schema.json", applied.stdout)
    expected = Counter(f"{c.kind}.{c.action}" for c in plan_of(plan).active_changes)
    assert result["changes"] == dict(expected) and len(expected) >= 8
    assert (
        result["audit_events"]["last_seq"] - result["audit_events"]["first_seq"] + 1
        == result["applied"]
    )
    assert sorted(result["invitations"]["recipients"]) == [
        "new1@acme.co",
        "new2@acme.co",
        "re@acme.co",
    ]


def test_a_plan_saved_by_the_previous_format_still_applies(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    """Plans written before instants were cut to whole seconds carry microseconds in their
    provenance, under the digest: they are read as they are, and show reproduces them verbatim."""
    old = stamped(make_plan(engine, drop_gone(engine), PlanOptions()))
    made = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=123456) - dt.timedelta(
        minutes=1
    )
    old = replace(old, provenance={**old.provenance, "created_at": made.isoformat() + "Z"})
    path = tmp_path / "old.json"
    path.write_text(dumps(old), encoding="utf-8")
    shown = runner("show", str(path), "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["provenance"]["created_at"].endswith(".123456Z")
    applied = runner(*apply_args(path, org.root.email, org.root.code(), "--format", "json"))
    assert applied.exit_code == 0, applied.output
    assert checked("apply.schema.json", applied.stdout)["plan_digest"] == old.digest


def test_accounts_import_reports_each_key(runner: Runner, factory: Factory, tmp_path: Path) -> None:
    org = factory.org("acme-payments")
    factory.operator(org, "root@acme.co", factory.role(org, "Treasury", ["bank_accounts.manage"]))
    factory.bank_account(org, "ops-main", masked_number="****1234")
    csv = tmp_path / "accounts.csv"
    csv.write_text(
        "key,bank,account_type,masked_number,currency\n"
        "payroll,Bancolombia,savings,****9876,COP\n"
        "ops-main,Bancolombia,savings,****1234,COP\n",
        encoding="utf-8",
    )
    result = runner(
        "accounts", "import", str(csv), "--operator", "root@acme.co", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    data = checked("accounts-import.schema.json", result.stdout)
    assert data["accounts"] == [
        {"key": "ops-main", "status": "already_present"},
        {"key": "payroll", "status": "registered"},
    ]
    assert (data["registered"], data["already_present"]) == (1, 1)
    assert (
        checked("audit-verify.schema.json", runner("audit", "verify", "--format", "json").stdout)[
            "head"
        ]
        == data["audit_head"]
    )


def test_notifications_send_reports_each_email_and_no_token(
    runner: Runner, engine: Engine, factory: Factory
) -> None:
    from userctl.apply import outbox
    from userctl.db.engine import begin_write

    org = factory.org("acme-payments", name="Acme Payments")
    role = factory.role(org, "Viewer", ["users.view"])
    invitees = {
        email: factory.user(org, email, role, status="invited")
        for email in ("nuevo@acme.co", "gone@acme.co")
    }
    with begin_write(engine) as conn:
        for email, user_id in invitees.items():
            outbox.queue_invitation(conn, org, user_id, email, dt.datetime(2026, 3, 1))
    gone_id = invitees["gone@acme.co"]
    with engine.begin() as conn:  # the invitee deleted before delivery: the row is cancelled
        conn.execute(
            sa.update(m.Notification).where(m.Notification.user_id == gone_id).values(user_id=None)
        )

    smtp = SmtpServer()  # not started: delivery fails, with the reason
    down = runner(
        "notifications",
        "send",
        "--format",
        "json",
        "--invite-base-url",
        "https://app.acme.co/register",
        env={"USERCTL_SMTP_URL": smtp.url},
    )
    assert down.exit_code == 1
    failed = checked("notifications-send.schema.json", down.stdout)
    assert (failed["sent"], failed["failed"], failed["cancelled"]) == (0, 1, 1)
    [fail] = [n for n in failed["notifications"] if n["status"] == "failed"]
    assert fail["recipient"] == "nuevo@acme.co" and fail["reason"]

    smtp.start()
    try:
        up = runner(
            "notifications",
            "send",
            "--format",
            "json",
            "--invite-base-url",
            "https://app.acme.co/register",
            env={"USERCTL_SMTP_URL": smtp.url},
        )
    finally:
        smtp.stop()
    assert up.exit_code == 0, up.output
    sent = checked("notifications-send.schema.json", up.stdout)
    assert sent["notifications"] == [
        {
            "id": fail["id"],
            "organization": "acme-payments",
            "recipient": "nuevo@acme.co",
            "status": "sent",
            "reason": None,
        }
    ]
    [message] = smtp.inbox.messages
    token = re.search(r"token=([A-Za-z0-9_-]{20,})", message.as_string())
    assert token is not None and token.group(1) not in up.output


# --- audit verify's exit codes, against real tampered rows -------------------------------------


def _applied_org(runner: Runner, engine: Engine, org: Org, tmp_path: Path) -> str:
    plan = save_plan(engine, drop_gone(engine), tmp_path)
    applied = runner(*apply_args(plan, org.root.email, org.root.code(), "--format", "json"))
    assert applied.exit_code == 0, applied.output
    head: str = checked("apply.schema.json", applied.stdout)["audit_head"]
    return head


def _broken(runner: Runner, *args: str, env: dict[str, str | None] | None = None) -> dict[str, Any]:
    result = runner("audit", "verify", "--format", "json", *args, env=env)
    assert result.exit_code == 4, result.output
    data: dict[str, Any] = checked("audit-verify.schema.json", result.stdout)
    assert data["ok"] is False and data["broken"]["reason"] in result.stderr
    return data


def test_audit_verify_exits_4_on_a_tampered_row(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    _applied_org(runner, engine, org, tmp_path)
    [first] = rows_of(engine, events_t, events_t.c.seq == 1)
    with engine.begin() as conn:
        conn.execute(
            events_t.update().where(events_t.c.seq == 1).values(address='user["eve@acme.co"]')
        )
    data = _broken(runner)
    assert (data["broken"]["seq"], data["broken"]["id"]) == (1, first.id) and "altered" in data[
        "broken"
    ]["reason"]


def test_audit_verify_exits_4_on_a_missing_event(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    _applied_org(runner, engine, org, tmp_path)
    with engine.begin() as conn:
        conn.execute(events_t.delete().where(events_t.c.seq == 1))
    assert "missing" in _broken(runner)["broken"]["reason"]


def test_audit_verify_exits_4_on_a_wrong_hmac(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    plan = save_plan(engine, drop_gone(engine), tmp_path)
    key = {"USERCTL_AUDIT_KEY": "the-right-key"}
    assert runner(*apply_args(plan, org.root.email, org.root.code()), env=key).exit_code == 0
    intact = runner("audit", "verify", "--format", "json", env=key)
    assert (
        intact.exit_code == 0
        and checked("audit-verify.schema.json", intact.stdout)["hmac_checked"] is True
    )
    data = _broken(runner, env={"USERCTL_AUDIT_KEY": "a-wrong-key"})
    assert data["broken"]["seq"] == 1 and "HMAC" in data["broken"]["reason"]


def test_audit_verify_exits_4_when_the_head_does_not_match(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    head = _applied_org(runner, engine, org, tmp_path)
    with engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(events_t.c.seq))).scalar_one()
        conn.execute(events_t.delete().where(events_t.c.seq == last))
    data = _broken(runner, "--head", head.upper())
    assert (
        data["broken"]["seq"] is None
        and data["expected_head"] == head
        and "removed from the end" in data["broken"]["reason"]
    )


def test_audit_verify_exits_1_when_it_cannot_check(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    head = _applied_org(runner, engine, org, tmp_path)
    for args in (["--head", "not-a-hash"], ["--head", head[:-1]]):
        result = runner("audit", "verify", "--format", "json", *args)
        assert (
            result.exit_code == 1 and "is not a chain head" in result.stderr and result.stdout == ""
        )
    unknown = runner("--organization", "nope", "audit", "verify", "--format", "json")
    assert (
        unknown.exit_code == 1
        and "'nope' does not exist" in unknown.stderr
        and unknown.stdout == ""
    )


def test_audit_verify_exits_1_without_a_database(tmp_path: Path) -> None:
    missing = Runner(f"sqlite:///{tmp_path / 'nowhere.db'}")("audit", "verify", "--format", "json")
    assert missing.exit_code == 1 and missing.stdout == "" and "Traceback" not in missing.output
    assert not (tmp_path / "nowhere.db").exists()


def test_json_apply_without_a_terminal_asks_nothing_new(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    plan = save_plan(engine, drop_gone(engine), tmp_path)
    unconfirmed = runner("apply", str(plan), "--operator", org.root.email, "--format", "json")
    assert (
        unconfirmed.exit_code == 4
        and unconfirmed.stdout == ""
        and "pass --yes" in unconfirmed.stderr
    )
    no_code = runner(*apply_args(plan, org.root.email, None, "--format", "json"))
    assert no_code.exit_code == 4 and no_code.stdout == "" and "TOTP code" not in no_code.stderr
    unsigned = runner(
        "approve", "--yes", str(plan), "--operator", org.root.email, "--format", "json"
    )
    assert (
        unsigned.exit_code == 1 and unsigned.stdout == "" and "needs --otp-code" in unsigned.stderr
    )


def test_the_auditor_commands_in_json(runner: Runner, tmp_path: Path) -> None:
    """policy check, hygiene, review and review status on the applied demo: each document
    validates against its schema, and they agree with each other."""
    init = runner("init", "-f", EXAMPLE, "--admin", ADMIN, "--demo", "--json")
    totp = pyotp.TOTP(checked("init.schema.json", init.stdout)["totp_secret"])
    applied = runner(
        "apply",
        "-f",
        EXAMPLE,
        "--operator",
        ADMIN,
        "--yes",
        "--otp-code",
        totp.now(),
        "--reason",
        "TICKET-7: onboarding",
    )
    assert applied.exit_code == 0, applied.output

    policy = runner("policy", "check", "--format", "json")
    assert policy.exit_code == 0, policy.output
    checks = checked("policy-check.schema.json", policy.stdout)
    assert {p["policy"] for p in checks["policies"]} >= {
        "separation_of_duties.maker_checker",
        "max_holders.users.manage",
    }
    assert checks["violations"] == []

    hygiene = checked("hygiene.schema.json", runner("hygiene", "--format", "json").stdout)
    review = runner("review", "--format", "json")
    assert review.exit_code == 0, review.output
    report = checked("review.schema.json", review.stdout)
    assert report["findings"] == hygiene["findings"] and report["settings"] == hygiene["settings"]
    grants = [
        g["granted_by"]
        for u in report["users"]
        for g in u["grants"]
        if g["granted_by"] and g["granted_by"]["plan_digest"]
    ]
    assert grants and {g["reason"] for g in grants} == {"TICKET-7: onboarding"}

    status = runner("review", "status", "--format", "json")
    assert status.exit_code == 4  # never attested
    assert checked("review-status.schema.json", status.stdout)["overdue"] is True
