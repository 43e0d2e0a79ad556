"""TOTP secrets at rest: encrypted with USERCTL_SECRET_KEY when set, refused with a clear
message when the key is missing or wrong."""

from __future__ import annotations

import pyotp
import pytest

from userctl.apply.secret_store import ENV_KEY, decrypt_secret, encrypt_secret
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
