"""TOTP secrets at rest (DESIGN §1b): encrypted with USERCTL_SECRET_KEY when it is set.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) rather than a home-made construction.
The Fernet key is derived from USERCTL_SECRET_KEY with SHA-256, so any high-entropy string
works as a key. Stored values carry a scheme prefix, `fernet:` or `plain:`, so a reader knows
without guessing whether a key is needed.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import TYPE_CHECKING

from userctl.errors import UsageError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

ENV_KEY = "USERCTL_SECRET_KEY"
_FERNET = "fernet:"
_PLAIN = "plain:"


def secret_key_from_env() -> str | None:
    return os.environ.get(ENV_KEY) or None


def encrypt_secret(secret: str, key: str | None = None) -> str:
    """The stored form of `secret`: encrypted with `key` (default: USERCTL_SECRET_KEY), or
    tagged plain text when no key is configured."""
    key = key if key is not None else secret_key_from_env()
    if not key:
        return _PLAIN + secret
    return _FERNET + _fernet(key).encrypt(secret.encode("ascii")).decode("ascii")


def decrypt_secret(stored: str, key: str | None = None) -> str:
    """The secret back from its stored form. Raises UsageError when the key is missing or wrong,
    and for a secret stored in clear while a key is set: whoever can write the database but
    does not hold the key could have put it there, to pass an operator's 2FA and have userctl
    record that operator as having confirmed (`userctl db seal-secrets` encrypts the secrets
    enrolled before the key was set)."""
    key = key if key is not None else secret_key_from_env()
    if stored.startswith(_PLAIN):
        if key:
            raise UsageError(
                f"a TOTP secret is stored in clear although {ENV_KEY} is set, so it is not "
                "taken: anyone who can write the database could have put it there. If it was "
                "enrolled before the key was set, run `userctl db seal-secrets` once"
            )
        return stored[len(_PLAIN) :]
    if not stored.startswith(_FERNET):
        raise UsageError(
            "a stored TOTP secret has an unknown format; was the totp_secrets table edited by hand?"
        )
    if not key:
        raise UsageError(
            "TOTP secrets in this database are encrypted: set "
            f"{ENV_KEY} to the key used at enrolment"
        )
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(key).decrypt(stored[len(_FERNET) :].encode("ascii")).decode("ascii")
    except InvalidToken:
        raise UsageError(
            f"{ENV_KEY} does not decrypt the stored TOTP secret: it "
            "is not the key used at enrolment"
        ) from None


def _fernet(key: str) -> "Fernet":
    from cryptography.fernet import Fernet

    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode("utf-8")).digest()))


def is_plain(stored: str) -> bool:
    """Whether `stored` is a secret kept in clear (enrolled while no key was set)."""
    return stored.startswith(_PLAIN)
