"""TOTP confirmation with real pyotp codes on every backend: drift window, ASCII-only codes,
single use per step (also across two transactions racing), and the lockout, booked in the
confirming transaction while everything else it did is rolled back. The clock is always passed
in, never read."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userctl.apply import otp
from userctl.clock import unix_seconds
from userctl.db.engine import begin_write
from userctl.db.models import AuditEvent, OtpUse, TotpSecret, User
from userctl.errors import TwoFactorFailed

T0 = dt.datetime(2026, 3, 1, 12, 0, 10)  # 10 s into a 30 s step


def code_at(secret: str, moment: dt.datetime, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(unix_seconds(moment) + 30 * steps)


def wrong_code(secret: str, moment: dt.datetime) -> str:
    valid = {code_at(secret, moment, s) for s in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


@pytest.fixture
def op(factory: Any) -> Any:
    org = factory.org()
    role = factory.role(org, "Admin", ["users.manage"])
    operator = factory.operator(org, "Ana@Acme.co", role)
    operator.org_id = org
    return operator


def confirm(
    engine: Engine, op: Any, code: str, now: dt.datetime, *, also: sa.Executable | None = None
) -> None:
    """The calling pattern of every command: the check inside otp.locked_write, which books a
    wrong code in the same locked transaction (and undoes `also`, run before the check)."""

    def work(conn: sa.Connection, _org_id: int) -> None:
        if also is not None:
            conn.execute(also)
        otp.verify_operator_code(conn, op.user_id, code, now, read_at=now)

    otp.locked_write(engine, "acme-payments", work, now=now, lock_timeout_s=5)


def totp_row(engine: Engine, user_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(TotpSecret).where(TotpSecret.user_id == user_id)).one()


def audit_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(AuditEvent).order_by(AuditEvent.seq)).all())


# --- pure -----------------------------------------------------------------------------------


def test_secrets_are_160_bit_base32() -> None:
    secret = otp.generate_secret()
    assert len(secret) == 32 and len(base64.b32decode(secret)) == 20
    assert secret != otp.generate_secret()


def test_provisioning_uri_names_the_account_and_issuer() -> None:
    uri = otp.provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "ana@acme.co", "acme-payments")
    assert uri.startswith("otpauth://totp/userctl%20%28acme-payments%29:ana%40acme.co?")
    assert (
        "secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" in uri
        and "issuer=userctl%20%28acme-payments%29" in uri
    )


def test_failure_outcome_messages() -> None:
    outcome = otp.FailureOutcome("ana@acme.co", 3, None)
    assert "2 attempt(s) left" in outcome.message()
    locked = otp.FailureOutcome("ana@acme.co", 0, dt.datetime(2026, 3, 1, 12, 15))
    assert "locked out of confirmations until 2026-03-01T12:15:00Z" in locked.message()


# --- against the database -------------------------------------------------------------------


def test_failure_messages_never_contain_the_code(engine: Engine, op: Any) -> None:
    """Every way a real code can be refused: wrong (real codes of this secret, far outside the
    drift window), the lockout, a locked-out right code, a replay, and malformed versions of a
    real code. None of the messages, nor the audit trail, repeats the code."""
    refused: list[tuple[str, str]] = []

    def refuse(code: str, moment: dt.datetime) -> str:
        with pytest.raises(TwoFactorFailed) as caught:
            confirm(engine, op, code, moment)
        refused.append((code, str(caught.value)))
        return str(caught.value)

    for steps in (5, 9, 13, 17):
        assert "attempt(s) left" in refuse(code_at(op.secret, T0, steps), T0)
    assert "locked out of confirmations until" in refuse(code_at(op.secret, T0, 21), T0)
    assert "is locked out" in refuse(code_at(op.secret, T0), T0)
    later = T0 + dt.timedelta(minutes=20)
    used = code_at(op.secret, later)
    confirm(engine, op, used, later)
    assert "already used" in refuse(used, later)
    assert "six digits" in refuse(used + "7", later)
    assert "six digits" in refuse(
        used.translate(str.maketrans("0123456789", "０１２３４５６７８９")), later
    )

    trail = " ".join(
        str(v) for e in audit_rows(engine) for v in (e.operator, e.address, e.before, e.after)
    )
    for code, message in refused:
        assert code not in message, message
        assert code not in trail


def test_current_code_is_accepted_and_its_step_recorded(engine: Engine, op: Any) -> None:
    confirm(engine, op, code_at(op.secret, T0), T0)
    with engine.connect() as conn:
        steps = list(
            conn.execute(sa.select(OtpUse.time_step).where(OtpUse.user_id == op.user_id)).scalars()
        )
    assert steps == [unix_seconds(T0) // 30]


@pytest.mark.parametrize("drift", [-1, 1])
def test_one_step_of_drift_is_accepted_and_the_matching_step_recorded(
    engine: Engine, op: Any, drift: int
) -> None:
    confirm(engine, op, code_at(op.secret, T0, drift), T0)
    with engine.connect() as conn:
        step = conn.execute(sa.select(OtpUse.time_step)).scalar_one()
    assert step == unix_seconds(T0) // 30 + drift


@pytest.mark.parametrize("drift", [-2, 2])
def test_two_steps_away_is_a_wrong_code(engine: Engine, op: Any, drift: int) -> None:
    code = code_at(op.secret, T0, drift)
    with pytest.raises(TwoFactorFailed, match="wrong one-time code") as err:
        confirm(engine, op, code, T0)
    assert code not in str(err.value)
    assert totp_row(engine, op.user_id).failed_attempts == 1


def test_aware_and_naive_utc_clocks_agree(engine: Engine, op: Any) -> None:
    aware = T0.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5))) + dt.timedelta(hours=-5)
    assert aware.astimezone(dt.UTC).replace(tzinfo=None) == T0
    confirm(engine, op, code_at(op.secret, T0), aware)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c.translate(str.maketrans("0123456789", "０１２３４５６７８９")),  # full-width
        lambda c: c.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),  # Arabic-Indic
        lambda c: " " + c,
        lambda c: c + "\n",
        lambda c: c[:5],
        lambda c: c + "0",
        lambda c: "",
    ],
    ids=["fullwidth", "arabic-indic", "leading-space", "newline", "short", "long", "empty"],
)
def test_only_six_ascii_digits_are_a_code_and_malformed_input_does_not_count(
    engine: Engine, op: Any, mangle: Any
) -> None:
    real = code_at(op.secret, T0)
    with pytest.raises(TwoFactorFailed, match="exactly six digits"):
        confirm(engine, op, mangle(real), T0)
    assert totp_row(engine, op.user_id).failed_attempts == 0
    confirm(engine, op, real, T0)  # the genuine code was not burnt


def test_a_code_is_usable_once(engine: Engine, op: Any) -> None:
    code = code_at(op.secret, T0)
    confirm(engine, op, code, T0)
    with pytest.raises(TwoFactorFailed, match="already used; wait for the next one") as err:
        confirm(engine, op, code, T0 + dt.timedelta(seconds=5))
    assert code not in str(err.value)
    assert totp_row(engine, op.user_id).failed_attempts == 0  # a replay is not a guess
    confirm(engine, op, code_at(op.secret, T0, 1), T0 + dt.timedelta(seconds=30))


def test_an_older_code_is_refused_once_a_newer_one_was_used(engine: Engine, op: Any) -> None:
    confirm(engine, op, code_at(op.secret, T0, 1), T0)
    with pytest.raises(TwoFactorFailed, match="already used"):
        confirm(engine, op, code_at(op.secret, T0), T0)


def test_a_rolled_back_confirmation_does_not_burn_the_code(engine: Engine, op: Any) -> None:
    code = code_at(op.secret, T0)
    with pytest.raises(RuntimeError):
        with begin_write(engine) as conn:
            otp.verify_operator_code(conn, op.user_id, code, T0, read_at=T0)
            raise RuntimeError("a later step of the command failed")
    confirm(engine, op, code, T0)


# Not on SQLite: its writers are serialised by BEGIN IMMEDIATE, so there is no race to lose.
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_two_transactions_racing_with_one_code_only_one_wins(
    engine: Engine, op: Any, backend: str
) -> None:
    """The second transaction does not see the first one's (then uncommitted) use: only the
    unique key stops it, and its own transaction stays usable thanks to the savepoint."""
    code = code_at(op.secret, T0)
    first = engine.connect()
    second = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    try:
        first.begin()
        otp.verify_operator_code(first, op.user_id, code, T0, read_at=T0)
        second.begin()
        second.execute(sa.select(OtpUse.id)).all()  # its snapshot predates the first's commit
        first.commit()
        with pytest.raises(TwoFactorFailed, match="already used"):
            otp.verify_operator_code(second, op.user_id, code, T0, read_at=T0)
        second.execute(
            sa.update(User).where(User.id == op.user_id).values(first_name="Still usable")
        )
        second.commit()
    finally:
        first.close()
        second.close()
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(User.first_name).where(User.id == op.user_id)).scalar_one()
            == "Still usable"
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(OtpUse)).scalar_one() == 1


def test_a_wrong_code_rolls_back_the_work_but_its_failure_persists(engine: Engine, op: Any) -> None:
    rename = sa.update(User).where(User.id == op.user_id).values(first_name="Changed")
    with pytest.raises(TwoFactorFailed, match="4 attempt\\(s\\) left"):
        confirm(engine, op, wrong_code(op.secret, T0), T0, also=rename)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(User.first_name).where(User.id == op.user_id)).scalar_one()
            == "Test"
        )
    assert totp_row(engine, op.user_id).failed_attempts == 1
    [event] = audit_rows(engine)
    assert (event.operator, event.action, event.address, event.verified_by) == (
        "ana@acme.co",
        "otp.failure",
        'user["ana@acme.co"]',
        "none",
    )


def test_a_correct_code_resets_the_failure_count(engine: Engine, op: Any) -> None:
    for _ in range(3):
        with pytest.raises(TwoFactorFailed):
            confirm(engine, op, wrong_code(op.secret, T0), T0)
    assert totp_row(engine, op.user_id).failed_attempts == 3
    confirm(engine, op, code_at(op.secret, T0), T0)
    assert totp_row(engine, op.user_id).failed_attempts == 0


def test_five_wrong_codes_lock_out_for_fifteen_minutes(engine: Engine, op: Any) -> None:
    codes = []
    for i in range(4):
        codes.append(wrong_code(op.secret, T0))
        with pytest.raises(TwoFactorFailed, match=f"{4 - i} attempt\\(s\\) left"):
            confirm(engine, op, codes[-1], T0)
    with pytest.raises(
        TwoFactorFailed, match="locked out of confirmations until 2026-03-01T12:15:10Z"
    ):
        confirm(engine, op, wrong_code(op.secret, T0), T0)
    assert totp_row(engine, op.user_id).locked_until == T0 + dt.timedelta(minutes=15)

    # While locked, even the right code is refused — and does not extend the lockout.
    later = T0 + dt.timedelta(minutes=14, seconds=59)
    with pytest.raises(TwoFactorFailed, match="is locked out"):
        confirm(engine, op, code_at(op.secret, later), later)
    assert totp_row(engine, op.user_id).locked_until == T0 + dt.timedelta(minutes=15)

    expired = T0 + dt.timedelta(minutes=15)
    confirm(engine, op, code_at(op.secret, expired), expired)
    row = totp_row(engine, op.user_id)
    assert (row.failed_attempts, row.locked_until) == (0, None)

    events = audit_rows(engine)
    assert [e.action for e in events] == ["otp.failure"] * 5 + ["otp.lockout"]
    assert [e.seq for e in events] == list(range(1, 7))
    for e in events:  # neither codes nor the secret in the audit trail
        text = " ".join(str(v) for v in (e.operator, e.action, e.address, e.before, e.after))
        assert op.secret not in text and not any(c in text for c in codes)


def test_enroll_replaces_the_secret_and_stores_it_encrypted(
    engine: Engine, op: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERCTL_SECRET_KEY", "test-secret-key")
    with begin_write(engine) as conn:
        new = otp.enroll(conn, op.user_id)
    assert new != op.secret
    stored = totp_row(engine, op.user_id).secret
    assert stored.startswith("fernet:") and new not in stored
    with pytest.raises(TwoFactorFailed, match="wrong one-time code"):
        confirm(engine, op, code_at(op.secret, T0), T0)
    confirm(engine, op, code_at(new, T0), T0)


def test_an_operator_without_authenticator_is_refused(engine: Engine, factory: Any) -> None:
    org = factory.org()
    user = factory.user(org, "bob@acme.co", factory.role(org, "R"))
    with pytest.raises(TwoFactorFailed, match="no authenticator"):
        with begin_write(engine) as conn:
            otp.verify_operator_code(conn, user, "123456", T0, read_at=T0)
