"""TOTP secrets at rest: encrypted with USERCTL_SECRET_KEY when set, refused with a clear
message when the key is missing or wrong."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userctl.apply import otp
from userctl.apply.secret_store import ENV_KEY, decrypt_secret, encrypt_secret
from userctl.clock import unix_seconds
from userctl.db.models import TotpSecret
from userctl.errors import UsageError

SECRET = pyotp.random_base32(32)


def test_without_a_key_the_secret_is_stored_tagged_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    stored = encrypt_secret(SECRET)
    assert stored == "plain:" + SECRET
    assert decrypt_secret(stored) == SECRET


def test_with_a_key_the_secret_is_encrypted_and_round_trips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_KEY, "a long random key from the vault")
    stored = encrypt_secret(SECRET)
    assert stored.startswith("fernet:") and SECRET not in stored
    assert encrypt_secret(SECRET) != stored  # a fresh IV each time
    assert decrypt_secret(stored) == SECRET


def test_an_encrypted_secret_without_the_key_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = encrypt_secret(SECRET, "k1")
    monkeypatch.delenv(ENV_KEY, raising=False)
    with pytest.raises(UsageError, match=f"set {ENV_KEY}"):
        decrypt_secret(stored)


def test_the_wrong_key_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="not the key used at enrolment"):
        decrypt_secret(encrypt_secret(SECRET, "k1"), "k2")


def test_a_value_of_unknown_format_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown format"):
        decrypt_secret(SECRET)


def test_a_secret_in_clear_is_refused_once_a_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, "a long random key from the vault")
    with pytest.raises(UsageError, match="stored in clear although USERCTL_SECRET_KEY is set"):
        decrypt_secret("plain:" + SECRET)
    with pytest.raises(UsageError, match="userctl db seal-secrets"):
        decrypt_secret("plain:" + SECRET, "k1")


# --- against the database: who can write the table but holds no key -------------------------

T0 = dt.datetime(2026, 3, 1, 12, 0, 10)


def _code(secret: str) -> str:
    return pyotp.TOTP(secret).at(unix_seconds(T0))


def _confirm(engine: Engine, user_id: int, code: str) -> None:
    def work(conn: sa.Connection, _org_id: int) -> None:
        otp.verify_operator_code(conn, user_id, code, T0, read_at=T0)

    otp.locked_write(engine, "acme-payments", work, now=T0, lock_timeout_s=5)


def _stored(engine: Engine, user_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(TotpSecret.secret).where(TotpSecret.user_id == user_id)
            ).scalar_one()
        )


def _operator(factory: Any) -> Any:
    org = factory.org()
    return factory.operator(org, "ana@acme.co", factory.role(org, "Admin", ["users.manage"]))


def _admins(factory: Any, *emails: str) -> list[Any]:
    """Operators of one organization, each with an enrolled authenticator."""
    org = factory.org()
    role = factory.role(org, "Admin", ["users.manage"])
    return [factory.operator(org, email, role) for email in emails]


def _overwrite(engine: Engine, user_id: int, stored: str) -> None:
    """What whoever can write the table (but not read the key) does to a user's secret."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(TotpSecret).where(TotpSecret.user_id == user_id).values(secret=stored)
        )


def test_a_secret_planted_in_clear_passes_no_one_s_2fa(
    engine: Engine, factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The key is set, the operator's secret encrypted; someone who can write the table (but not
    # read the key) replaces it with one they know, to pass as the operator.
    monkeypatch.setenv(ENV_KEY, "a long random key from the vault")
    op = _operator(factory)
    assert _stored(engine, op.user_id).startswith("fernet:")
    planted = pyotp.random_base32(32)
    _overwrite(engine, op.user_id, "plain:" + planted)
    with pytest.raises(UsageError, match="stored in clear although"):
        _confirm(engine, op.user_id, _code(planted))


def test_sealing_never_launders_a_secret_planted_in_clear_once_secrets_are_encrypted(
    engine: Engine, factory: Any, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The key is in use (the operators' secrets encrypted); someone who can write the table
    # plants a secret they know in clear, then waits for an admin to run `db seal-secrets`.
    monkeypatch.setenv(ENV_KEY, "a long random key from the vault")
    admin, _other = _admins(factory, "admin@acme.co", "other@acme.co")
    planted = pyotp.random_base32(32)
    _overwrite(engine, admin.user_id, "plain:" + planted)
    sealed = runner("db", "seal-secrets")
    assert sealed.exit_code == 0, sealed.output
    assert sealed.stdout.startswith("Sealed 0 TOTP secret(s)")
    assert (
        "Left alone: the TOTP secret of admin@acme.co is stored in clear beside encrypted ones"
        in sealed.stderr
    )
    assert _stored(engine, admin.user_id) == "plain:" + planted
    with pytest.raises(UsageError, match="stored in clear although"):
        _confirm(engine, admin.user_id, _code(planted))


def test_no_secret_is_stored_in_clear_beside_encrypted_ones(
    engine: Engine, factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An enrolment run without the key where the others are encrypted: stored in clear it could
    # never be taken (nor sealed, see above), so it is refused before anything is written.
    monkeypatch.setenv(ENV_KEY, "a long random key from the vault")
    first, second = _admins(factory, "first@acme.co", "second@acme.co")
    before = _stored(engine, second.user_id)
    monkeypatch.delenv(ENV_KEY)
    with pytest.raises(UsageError, match=f"set {ENV_KEY}: the other TOTP secrets are encrypted"):
        with engine.begin() as conn:
            otp.enroll(conn, second.user_id)
    assert _stored(engine, second.user_id) == before


def test_secrets_enrolled_before_the_key_are_sealed_once_and_then_taken(
    engine: Engine, factory: Any, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    op = _operator(factory)
    assert _stored(engine, op.user_id).startswith("plain:")
    refused = runner("db", "seal-secrets")
    assert refused.exit_code == 1 and "set USERCTL_SECRET_KEY first" in refused.stderr
    monkeypatch.setenv(ENV_KEY, "a long random key from the vault")
    with pytest.raises(UsageError, match="userctl db seal-secrets"):
        _confirm(engine, op.user_id, _code(op.secret))
    sealed = runner("db", "seal-secrets")
    assert sealed.exit_code == 0, sealed.output
    assert sealed.stdout.startswith("Sealed 1 TOTP secret(s) at ")
    stored = _stored(engine, op.user_id)
    assert stored.startswith("fernet:") and op.secret not in stored
    _confirm(engine, op.user_id, _code(op.secret))  # taken now
    again = runner("db", "seal-secrets")
    assert again.exit_code == 0 and again.stdout.startswith("Sealed 0 TOTP secret(s)")


def test_a_ciphertext_copied_into_another_users_row_passes_no_one_s_2fa(
    engine: Engine, factory: Any, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One person, two authenticators: an operator who can write the table copies their own
    # encrypted secret over an admin's, to confirm as the admin too (four eyes with one person).
    monkeypatch.setenv(ENV_KEY, "a long random key from the vault")
    mallory, admin = _admins(factory, "mallory@acme.co", "admin@acme.co")
    _overwrite(engine, admin.user_id, _stored(engine, mallory.user_id))
    with pytest.raises(UsageError, match="admin@acme.co is not sealed to that user"):
        _confirm(engine, admin.user_id, _code(mallory.secret))
    # Sealing never launders it: it is left alone, and said so.
    sealed = runner("db", "seal-secrets")
    assert sealed.exit_code == 0, sealed.output
    assert "Left alone: the stored TOTP secret of admin@acme.co is sealed to another user" in (
        sealed.stderr
    )
    with pytest.raises(UsageError, match="not sealed to that user"):
        _confirm(engine, admin.user_id, _code(mallory.secret))
    _confirm(engine, mallory.user_id, _code(mallory.secret))  # hers is still hers


def test_a_secret_an_earlier_userctl_encrypted_is_sealed_to_its_user_once(
    engine: Engine, factory: Any, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "a long random key from the vault"
    monkeypatch.setenv(ENV_KEY, key)
    op = _operator(factory)
    # As userctl stored it before secrets were sealed to users.
    _overwrite(engine, op.user_id, encrypt_secret(op.secret, key))
    with pytest.raises(UsageError, match="userctl db seal-secrets"):
        _confirm(engine, op.user_id, _code(op.secret))
    assert runner("db", "seal-secrets").stdout.startswith("Sealed 1 TOTP secret(s)")
    _confirm(engine, op.user_id, _code(op.secret))
