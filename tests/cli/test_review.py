"""`userctl review` joined to the audit log (a role granted by an approved plan shows the apply,
its operator, how it was verified and who approved it), `review attest` with a real TOTP code
(an audit event the chain still verifies), and `review status` (exit 4 when overdue: the
attestation's stored time moved back)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, build_org, exported, live_state
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Operator, Runner
from userctl.db import tables
from userctl.review import report_digest


@pytest.fixture
def applied(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> tuple[Org, Operator, dict[str, Any]]:
    """build_org, then a plan that makes mover@acme.co an Admin and assigns ops-backup to
    acct@acme.co, approved by a second operator with a real code and applied by root without
    one (on the approval). Returns the organization, the approver and the saved plan's data."""
    org = build_org(factory)
    approver = factory.operator(
        org.id, "approver@acme.co", org.roles["Admin"], first_name="Appro", last_name="Ver"
    )
    desired = exported(live_state(engine))
    users = dict(desired.users)
    users["mover@acme.co"] = replace(users["mover@acme.co"], role="Admin")
    users["acct@acme.co"] = replace(
        users["acct@acme.co"], bank_accounts=users["acct@acme.co"].bank_accounts | {"ops-backup"}
    )
    path = write_desired(tmp_path / "users.yaml", replace(desired, users=users))
    plan_file = tmp_path / "plan.json"
    planned = runner(
        "plan", "-f", str(path), "--out", str(plan_file), "--detailed-exitcode", "--reason", REASON
    )
    assert planned.exit_code == 3, planned.output
    approved = runner(
        "approve",
        "--yes",
        str(plan_file),
        "--operator",
        "approver@acme.co",
        "--otp-code",
        approver.code(),
        "--yes",
    )
    assert approved.exit_code == 0, approved.output
    done = runner("apply", str(plan_file), "--operator", "root@acme.co", "--yes")
    assert done.exit_code == 0, done.output
    return org, approver, json.loads(plan_file.read_text(encoding="utf-8"))


REASON = "OPS-42: mover promoted to Admin"


def _report(runner: Runner, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    result = runner("review", "--format", "json")
    assert result.exit_code == 0, result.output
    path = tmp_path / "review.json"
    path.write_text(result.stdout, encoding="utf-8")
    return path, json.loads(result.stdout)


def test_review_joins_each_grant_to_the_apply_and_approval(
    runner: Runner, applied: tuple[Org, Operator, dict[str, Any]], tmp_path: Path
) -> None:
    _org, _approver, plan = applied
    _, report = _report(runner, tmp_path)
    assert report["digest"] == report_digest(report)
    users = {u["email"]: u for u in report["users"]}
    assert len(users) == 12  # every user of the organization

    mover = users["mover@acme.co"]
    assert (mover["role"], mover["status"], mover["privileged_permissions"]) == (
        "Admin",
        "active",
        ["roles.manage", "users.add", "users.manage"],
    )
    role_grant = mover["grants"][0]
    granted = role_grant["granted_by"]
    assert (role_grant["kind"], role_grant["name"]) == ("role", "Admin")
    assert granted["action"] == "user.change_role"
    assert granted["plan_digest"] == plan["digest"]
    assert granted["operator"] == "root@acme.co"
    assert (granted["verified_by"], granted["operator_verified"]) == (
        "approval:approver@acme.co",
        False,
    )
    assert [a["approver"] for a in granted["approved_by"]] == ["approver@acme.co"]
    assert granted["reason"] == REASON  # the plan's --reason, carried by the apply's audit event

    accounts = {
        g["name"]: g["granted_by"]
        for g in users["acct@acme.co"]["grants"]
        if g["kind"] == "bank_account"
    }
    assert accounts["ops-backup"]["plan_digest"] == plan["digest"]
    assert accounts["ops-main"] is None  # assigned by the platform (the factory): no audit record

    # The root user was created outside userctl too; nobody's role is credited to another's event.
    assert users["calm@acme.co"]["grants"][0]["granted_by"] is None
    assert "mover@acme.co" in report["summary"]["privileged_users"]
    assert report["summary"]["policy_violations"] == []

    rows = list(csv.DictReader(io.StringIO(runner("review", "--format", "csv").stdout)))
    mover_role = next(r for r in rows if r["email"] == "mover@acme.co" and r["grant"] == "role")
    assert (mover_role["operator"], mover_role["plan_digest"], mover_role["reason"]) == (
        "root@acme.co",
        plan["digest"],
        REASON,
    )
    assert mover_role["approved_by"].startswith("approver@acme.co (")
    assert len(rows) == 12 + 3  # a role per user, and the three assignments
    page = runner("review", "--format", "html").stdout
    assert "approval:approver@acme.co" in page and plan["digest"] in page


def test_attest_with_a_real_code_is_an_audit_event(
    runner: Runner, applied: tuple[Org, Operator, dict[str, Any]], engine: Engine, tmp_path: Path
) -> None:
    org = applied[0]
    never = runner("review", "status")
    assert never.exit_code == 4 and "no access review was ever attested" in never.stdout

    path, report = _report(runner, tmp_path)
    # The rendered page of the saved report carries the digest the reviewer attests.
    assert report["digest"] in runner("review", "--format", "html", "--from", str(path)).stdout

    edited = tmp_path / "edited.json"
    edited.write_text(
        json.dumps({**report, "generated_at": "2020-01-01T00:00:00Z"}), encoding="utf-8"
    )
    refused = runner(
        "review", "attest", str(edited), "--reviewer", "root@acme.co", "--otp-code", org.root.code()
    )
    assert refused.exit_code == 4 and "does not match its digest" in refused.stderr
    other = {**report, "organization": "other-org"}
    other["digest"] = report_digest(other)
    (tmp_path / "other.json").write_text(json.dumps(other), encoding="utf-8")
    refused = runner(
        "review",
        "attest",
        str(tmp_path / "other.json"),
        "--reviewer",
        "root@acme.co",
        "--otp-code",
        org.root.code(),
    )
    assert refused.exit_code == 4 and "not of acme-payments" in refused.stderr

    wrong = "000000" if org.root.code() != "000000" else "111111"
    bad = runner("review", "attest", str(path), "--reviewer", "root@acme.co", "--otp-code", wrong)
    assert bad.exit_code == 4 and "4 attempt(s) left" in bad.stderr

    # The note goes into the audit log and onto the evidence pages: a hidden character is refused,
    # before the code is checked (it stays unused) and with nothing written.
    hidden = runner(
        "review",
        "attest",
        str(path),
        "--reviewer",
        "root@acme.co",
        "--otp-code",
        org.root.code(),
        "--note",
        "fine \u202eenif",
    )
    assert hidden.exit_code == 1 and "--note: the note" in hidden.stderr, hidden.output
    # One code for the attestation and its replay: read twice, a 30-second step could pass
    # between them and the replay would bring a fresh code.
    code = org.root.code()
    done = runner(
        "review",
        "attest",
        str(path),
        "--reviewer",
        "ROOT@acme.co",
        "--otp-code",
        code,
        "--note",
        "all fine",
    )
    assert done.exit_code == 0, done.output
    replay = runner("review", "attest", str(path), "--reviewer", "root@acme.co", "--otp-code", code)
    assert replay.exit_code == 4 and "already used" in replay.stderr

    events = json.loads(runner("audit", "log", "--format", "json").stdout)
    assert [e["action"] for e in events[-2:]] == ["otp.failure", "review.attest"]
    attested = events[-1]
    assert (attested["operator"], attested["verified_by"], attested["operator_verified"]) == (
        "root@acme.co",
        "totp",
        True,
    )
    assert attested["after"]["report_digest"] == report["digest"]
    assert attested["after"]["note"] == "all fine"
    verified = runner("audit", "verify")
    assert verified.exit_code == 0, verified.output

    status = runner("review", "status", "--format", "json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["report_digest"] == report["digest"]

    # Move the attestation back past the 182-day interval: overdue.
    a = tables.audit_events.c
    with engine.begin() as conn:
        stored = conn.execute(
            sa.select(a.created_at).where(a.action == "review.attest")
        ).scalar_one()
        conn.execute(
            sa.update(tables.audit_events)
            .where(a.action == "review.attest")
            .values(created_at=stored - dt.timedelta(days=183))
        )
    overdue = runner("review", "status")
    assert overdue.exit_code == 4
    assert "overdue" in overdue.stderr and "next due" in overdue.stdout


def test_evidence_pack_contents_and_manifest(
    runner: Runner, applied: tuple[Org, Operator, dict[str, Any]], tmp_path: Path
) -> None:
    import hashlib
    import re

    from userctl.clock import utcnow

    org, _approver, plan = applied
    path, report = _report(runner, tmp_path)
    assert (
        runner(
            "review",
            "attest",
            str(path),
            "--reviewer",
            "root@acme.co",
            "--otp-code",
            org.root.code(),
        ).exit_code
        == 0
    )
    today = utcnow().date()
    out = tmp_path / "evidence"
    result = runner(
        "evidence",
        "--since",
        (today - dt.timedelta(days=30)).isoformat(),
        "--until",
        today.isoformat(),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output

    # The manifest covers every other file, and its sums are right.
    names = sorted(p.name for p in out.iterdir())
    sums = dict(
        reversed(line.split("  ", 1))
        for line in (out / "SHA256SUMS").read_text(encoding="utf-8").splitlines()[1:]
    )
    assert sorted(sums) == sorted(n for n in names if n != "SHA256SUMS")
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name

    log = json.loads((out / "audit-log.json").read_text(encoding="utf-8"))
    head = runner("audit", "verify").stdout.split("head ")[1].strip()
    assert log["verification"]["ok"] is True and log["verification"]["chain_head"] == head
    assert [e["action"] for e in log["events"]][-1] == "review.attest"

    plans = json.loads((out / "plans.json").read_text(encoding="utf-8"))
    assert [
        (p["plan_digest"], p["operator"], [a["approver"] for a in p["approved_by"]], p["reasons"])
        for p in plans
    ] == [(plan["digest"], "root@acme.co", ["approver@acme.co"], [REASON])]
    assert {c["address"] for c in plans[0]["changes"]} == {
        'user["mover@acme.co"]',
        'assignment["acct@acme.co" -> "ops-backup"]',
    }

    jml = list(
        csv.DictReader(
            io.StringIO((out / "joiners-movers-leavers.csv").read_text(encoding="utf-8"))
        )
    )
    assert [
        (
            r["kind"],
            r["user"],
            r["role_before"],
            r["role_after"],
            r["operator"],
            r["approved_by"],
            r["reason"],
        )
        for r in jml
    ] == [
        (
            "mover",
            'user["mover@acme.co"]',
            "Ops",
            "Admin",
            "root@acme.co",
            "approver@acme.co",
            REASON,
        )
    ]
    attestations = json.loads((out / "attestations.json").read_text(encoding="utf-8"))
    assert [a["after"]["report_digest"] for a in attestations] == [report["digest"]]
    assert json.loads((out / "policy-results.json").read_text(encoding="utf-8"))["violations"] == []
    assert {
        f["code"]
        for f in json.loads((out / "hygiene.json").read_text(encoding="utf-8"))["findings"]
    } == {"privileged_without_2fa"}

    index = (out / "index.html").read_text(encoding="utf-8")
    assert set(re.findall(r'href="([^"]+)"', index)) == set(names) - {"index.html"}
    assert head in index and "intact" in index

    # A non-empty directory is refused (nothing changed) unless --force; a period without the apply
    # has no plan.
    refused = runner("evidence", "--since", "2020-01-01", "--until", "2020-12-31", "-o", str(out))
    assert refused.exit_code == 1 and "add --force to replace that pack" in refused.stderr
    assert json.loads((out / "plans.json").read_text(encoding="utf-8")) != []
    forced = runner(
        "evidence", "--since", "2020-01-01", "--until", "2020-12-31", "-o", str(out), "--force"
    )
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "plans.json").read_text(encoding="utf-8")) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".userctl-evidence")]
