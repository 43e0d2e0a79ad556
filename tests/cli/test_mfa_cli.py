"""`userctl mfa enroll` through the real CLI on every backend, with real TOTP codes."""

from __future__ import annotations

import json
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userctl.db.models import AuditEvent, TotpSecret, User


@pytest.fixture
def org(factory: Any) -> dict[str, Any]:
    org_id = factory.org("acme-payments")
    admin = factory.role(org_id, "Admin", ["users.view", "users.manage"])
    viewer = factory.role(org_id, "Viewer", ["users.view"])
    return {
        "id": org_id,
        "ana": factory.operator(org_id, "ana@acme.co", admin),
        "bob": factory.operator(org_id, "bob@acme.co", admin),
        "vic": factory.operator(org_id, "vic@acme.co", viewer),
        "carl": factory.user(org_id, "carl@acme.co", viewer),
        "ivy": factory.user(org_id, "ivy@acme.co", viewer, status="invited"),
    }


def stored_secret(engine: Engine, user_id: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(TotpSecret.secret).where(TotpSecret.user_id == user_id)
        ).scalar_one_or_none()


def actions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).scalars())


def test_enrol_another_user_issues_a_working_secret(
    engine: Engine, org: dict[str, Any], runner: Any
) -> None:
    ana, bob = org["ana"], org["bob"]
    result = runner(
        "mfa", "enroll", "Bob@Acme.co", "--operator", ana.email, "--otp-code", ana.code(), "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "organization",
        "user",
        "totp_secret",
        "otpauth_uri",
        "audit_head",
        "checkpoint",  # null: no signing key
    }
    assert data["checkpoint"] is None
    assert (data["organization"], data["user"]) == ("acme-payments", "bob@acme.co")
    new_secret = data["totp_secret"]
    assert new_secret != bob.secret and f"secret={new_secret}" in data["otpauth_uri"]

    with engine.connect() as conn:
        event = conn.execute(sa.select(AuditEvent)).one()
    assert (event.operator, event.verified_by, event.action, event.address) == (
        "ana@acme.co",
        "totp",
        "mfa.enroll",
        'user["bob@acme.co"]',
    )
    assert json.loads(event.after) == {"totp_enrolled": True, "enrolled_by": "ana@acme.co"}
    assert event.hash == data["audit_head"]
    assert new_secret not in " ".join(str(v) for v in event)

    # Bob's old authenticator is dead, the new one confirms his next action (enrolling carl).
    # (carl is active but never enrolled: a first enrolment.)
    old = runner("mfa", "enroll", "carl@acme.co", "--operator", bob.email, "--otp-code", bob.code())
    assert old.exit_code == 4 and "wrong one-time code for operator bob@acme.co" in old.stderr
    new = runner(
        "mfa",
        "enroll",
        "carl@acme.co",
        "--operator",
        bob.email,
        "--otp-code",
        pyotp.TOTP(new_secret).now(),
    )
    assert new.exit_code == 0, new.output
    assert "otpauth://totp/" in new.stdout and "shown ONCE" in new.stdout
    assert actions(engine) == ["mfa.enroll", "otp.failure", "mfa.enroll"]
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(User.totp_enrolled).where(User.id == org["carl"])).scalar_one()
            is True
        )
    # The head printed at enrolment is still in the chain, with two events since: intact.
    since = runner("audit", "verify", "--head", data["audit_head"])
    assert since.exit_code == 0 and "2 event(s) were appended after it" in since.stdout
    assert runner("audit", "verify").exit_code == 0


def test_a_wrong_code_changes_nothing_but_counts(
    engine: Engine, org: dict[str, Any], runner: Any
) -> None:
    ana, bob = org["ana"], org["bob"]
    before = stored_secret(engine, bob.user_id)
    valid = {pyotp.TOTP(ana.secret).now()}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in valid)
    result = runner("mfa", "enroll", bob.email, "--operator", ana.email, "--otp-code", wrong)
    assert result.exit_code == 4
    assert "4 attempt(s) left" in result.stderr and wrong not in result.output
    assert stored_secret(engine, bob.user_id) == before
    assert actions(engine) == ["otp.failure"]
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(TotpSecret.failed_attempts).where(TotpSecret.user_id == ana.user_id)
            ).scalar_one()
            == 1
        )


def test_an_operator_without_users_manage_is_refused(
    engine: Engine, org: dict[str, Any], runner: Any
) -> None:
    vic, bob = org["vic"], org["bob"]
    before = stored_secret(engine, bob.user_id)
    result = runner("mfa", "enroll", bob.email, "--operator", vic.email, "--otp-code", vic.code())
    assert result.exit_code == 4
    assert "operator vic@acme.co (role Viewer) lacks users.manage" in result.stderr
    assert stored_secret(engine, bob.user_id) == before and actions(engine) == []


def test_self_enrolment_is_refused(engine: Engine, org: dict[str, Any], runner: Any) -> None:
    ana = org["ana"]
    before = stored_secret(engine, ana.user_id)
    result = runner(
        "mfa", "enroll", "ANA@acme.co", "--operator", ana.email, "--otp-code", ana.code()
    )
    assert (
        result.exit_code == 4
        and "cannot confirm the enrolment of their own authenticator" in result.stderr
    )
    assert stored_secret(engine, ana.user_id) == before and actions(engine) == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ivy@acme.co", "user ivy@acme.co is invited"),
        ("nobody@acme.co", "user nobody@acme.co does not exist"),
    ],
)
def test_the_target_must_be_an_active_user_of_the_organization(
    engine: Engine, org: dict[str, Any], runner: Any, target: str, message: str
) -> None:
    ana = org["ana"]
    result = runner("mfa", "enroll", target, "--operator", ana.email, "--otp-code", ana.code())
    assert result.exit_code == 1 and message in result.stderr
    assert actions(engine) == []


def test_an_operator_from_another_organization_is_refused(
    engine: Engine, org: dict[str, Any], factory: Any, runner: Any
) -> None:
    other = factory.org("other")
    mallory = factory.operator(
        other, "mallory@other.co", factory.role(other, "Admin", ["users.manage"])
    )
    result = runner(
        "--organization",
        "acme-payments",
        "mfa",
        "enroll",
        org["bob"].email,
        "--operator",
        mallory.email,
        "--otp-code",
        mallory.code(),
    )
    assert (
        result.exit_code == 4
        and "mallory@other.co is not a user of this organization" in result.stderr
    )


def test_without_a_code_and_without_a_terminal_it_says_what_to_give(
    org: dict[str, Any], runner: Any
) -> None:
    result = runner(
        "mfa",
        "enroll",
        org["bob"].email,
        "--operator",
        org["ana"].email,
        env={"USERCTL_OTP_CODE": None},
    )
    assert result.exit_code == 1 and "--otp-code (or USERCTL_OTP_CODE)" in result.stderr
