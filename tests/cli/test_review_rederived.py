"""A saved access review is evidence, never authority (DESIGN §8 invariant 5), on every backend:
`review attest` re-derives the report from the database under the lock and refuses (exit 4,
nothing written, one sentence naming what differs) a forged report whose digest was recomputed,
one made before an access-changing event, one whose audit head is not in the log or whose
generated_at lies outside [its head's event, now]; and accepts an honest report when only
events that change no access (an attestation, an approval, a refused code) came after it. The
attacker is a reviewer who edits review.json before attesting it, or attests an old one."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    drop_gone_plan,
    exported,
    live_state,
    tables,
    with_users,
)
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Operator, Runner
from userctl.clock import unix_seconds, utcnow
from userctl.db import models as m
from userctl.review import NO_ACCESS_ACTIONS, report_digest


class Codes:
    """One operator's codes at successive TOTP steps (each step is usable once), each taken when
    it is used: the current step, or the next one when the current one was used, and never one
    the drift window will have left behind by the time the command reads it (starting one step
    back made a slow machine's first code two steps old by then)."""

    def __init__(self, op: Operator) -> None:
        self.op = op
        self.last: int | None = None

    def next(self) -> str:
        now = unix_seconds(utcnow()) // 30
        step = now if self.last is None else max(self.last + 1, now)
        if step > now + 1:  # beyond the window ahead: wait until it is within it
            time.sleep((step - 1) * 30 - unix_seconds(utcnow()) + 0.1)
        self.last = step
        return self.op.code(step * 30)


def _report(
    runner: Runner, tmp_path: Path, name: str = "review.json"
) -> tuple[Path, dict[str, Any]]:
    result = runner("review", "--format", "json")
    assert result.exit_code == 0, result.output
    path = tmp_path / name
    path.write_text(result.stdout, encoding="utf-8")
    return path, json.loads(result.stdout)


def _forged(tmp_path: Path, report: dict[str, Any], **changes: Any) -> Path:
    """`report` edited and its digest recomputed, as anyone can."""
    data = {**report, **changes}
    data["digest"] = report_digest(data)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _attest(runner: Runner, path: Path, reviewer: str, code: str) -> Any:
    return runner("review", "attest", str(path), "--reviewer", reviewer, "--otp-code", code)


def _refused(result: Any, *phrases: str) -> None:
    assert result.exit_code == 4, result.output
    assert "cannot attest this report" in result.stderr and "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1  # one sentence


def test_a_forged_report_without_an_owner_back_dated_is_refused(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    _, report = _report(runner, tmp_path)
    users = [u for u in report["users"] if u["email"] != "root@acme.co"]
    summary = {
        **report["summary"],
        "users": len(users),
        "privileged_users": [
            e for e in report["summary"]["privileged_users"] if e != "root@acme.co"
        ],
    }
    path = _forged(
        tmp_path, report, users=users, summary=summary, generated_at="2020-01-01T00:00:00Z"
    )
    before = tables(engine)

    result = _attest(runner, path, "root@acme.co", org.root.code())

    _refused(result)
    assert tables(engine) == before
    # Dated where the database can be re-derived, the omission itself is named.
    path = _forged(tmp_path, report, users=users, summary=summary)
    result = _attest(runner, path, "root@acme.co", org.root.code())
    _refused(result, "the report omits Admin root@acme.co", "its summary differs")
    assert tables(engine) == before


def test_a_forged_field_is_named(runner: Runner, engine: Engine, org: Org, tmp_path: Path) -> None:
    _, report = _report(runner, tmp_path)
    users = [
        {**u, "role": "Ops", "permissions": ["payouts.view"]} if u["email"] == "root@acme.co" else u
        for u in report["users"]
    ]
    path = _forged(tmp_path, report, users=users)
    before = tables(engine)

    result = _attest(runner, path, "root@acme.co", org.root.code())

    _refused(result, 'the report shows root@acme.co\'s role as "Ops", the database "Admin"')
    assert tables(engine) == before


def test_a_report_made_before_the_latest_grant_is_refused(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    codes = Codes(org.root)
    path, _ = _report(runner, tmp_path)
    desired = exported(live_state(engine))
    mover = replace(desired.users["mover@acme.co"], role="Admin")
    file = write_desired(tmp_path / "users.yaml", with_users(desired, mover))
    applied = runner(
        "apply", "-f", str(file), "--operator", "root@acme.co", "--otp-code", codes.next(), "--yes"
    )
    assert applied.exit_code == 0, applied.output
    before = tables(engine)

    result = _attest(runner, path, "root@acme.co", codes.next())

    _refused(result, "access changed since it was made", "user.change_role")
    assert tables(engine) == before
    # A new report is attested.
    fresh, _ = _report(runner, tmp_path, "fresh.json")
    assert _attest(runner, fresh, "root@acme.co", codes.next()).exit_code == 0


def test_an_enrolment_after_the_report_makes_it_stale(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    codes = Codes(org.root)
    path, _ = _report(runner, tmp_path)
    enrolled = runner(
        "mfa", "enroll", "calm@acme.co", "--operator", "root@acme.co", "--otp-code", codes.next()
    )
    assert enrolled.exit_code == 0, enrolled.output

    _refused(_attest(runner, path, "root@acme.co", codes.next()), "mfa.enroll")


def test_a_write_outside_userctl_is_a_difference(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    """The platform (or anyone with SQL) changes a role: no audit event, but the report
    re-derived from the rows no longer matches."""
    path, _ = _report(runner, tmp_path)
    with engine.begin() as conn:
        conn.execute(
            sa.update(m.User)
            .where(m.User.email == "mover@acme.co")
            .values(role_id=org.roles["Admin"])
        )

    _refused(
        _attest(runner, path, "root@acme.co", org.root.code()),
        'the report shows mover@acme.co\'s role as "Ops", the database "Admin"',
    )


@pytest.mark.parametrize(
    "changes, phrase",
    [
        ({"audit_head": "f" * 64}, "is not in the audit log"),
        ({"generated_at": "2099-01-01T00:00:00Z"}, "is not between"),
        ({"generated_at": "2000-01-01T00:00:00Z"}, "is not between"),
        ({"generated_at": "yesterday"}, "is not an instant"),
    ],
)
def test_a_report_that_cannot_be_re_derived_is_refused(
    runner: Runner,
    engine: Engine,
    org: Org,
    tmp_path: Path,
    changes: dict[str, Any],
    phrase: str,
) -> None:
    # One applied plan, so that the head is an event with a time.
    plan = drop_gone_plan(engine, tmp_path)
    codes = Codes(org.root)
    done = runner(
        "apply", str(plan), "--operator", "root@acme.co", "--otp-code", codes.next(), "--yes"
    )
    assert done.exit_code == 0, done.output
    _, report = _report(runner, tmp_path)
    path = _forged(tmp_path, report, **changes)
    before = tables(engine)

    _refused(_attest(runner, path, "root@acme.co", codes.next()), phrase)
    assert tables(engine) == before


def test_events_that_change_no_access_leave_an_honest_report_attestable(
    runner: Runner, engine: Engine, factory: Factory, org: Org, tmp_path: Path
) -> None:
    lead = factory.operator(org.id, "lead@acme.co", org.roles["Admin"])
    codes, lead_codes = Codes(org.root), Codes(lead)
    path, report = _report(runner, tmp_path)

    # An attestation, a refused code, an approval: none changes who has access.
    assert _attest(runner, path, "root@acme.co", codes.next()).exit_code == 0
    wrong = "000000" if lead.code() != "000000" else "111111"
    assert _attest(runner, path, "lead@acme.co", wrong).exit_code == 4
    plan = drop_gone_plan(engine, tmp_path)
    approved = runner(
        "approve", str(plan), "--operator", "lead@acme.co", "--otp-code", lead_codes.next(), "--yes"
    )
    assert approved.exit_code == 0, approved.output
    actions = [r.action for r in sa_rows(engine)]
    assert actions[-3:] == ["review.attest", "otp.failure", "plan.approve"]
    assert set(actions[-3:]) <= set(NO_ACCESS_ACTIONS)

    result = _attest(runner, path, "lead@acme.co", lead_codes.next())

    assert result.exit_code == 0, result.output
    status = runner("review", "status", "--format", "json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["report_digest"] == report["digest"]
    assert json.loads(status.stdout)["reviewer"] == "lead@acme.co"


def sa_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(m.AuditEvent.action).order_by(m.AuditEvent.seq)))


def test_a_report_of_an_earlier_format_is_refused_as_one_to_make_again(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    # Format 1 reports carry no `expires` per user: rather than refusing them as "differing" on
    # a field they could not hold, attest names their version and says to run the review again.
    _, report = _report(runner, tmp_path)
    users = [{k: v for k, v in u.items() if k != "expires"} for u in report["users"]]
    path = _forged(tmp_path, report, users=users, format_version=1)
    before = tables(engine)

    result = _attest(runner, path, "root@acme.co", org.root.code())

    _refused(result, "format_version 1", "another version of userctl", "userctl review")
    assert tables(engine) == before
