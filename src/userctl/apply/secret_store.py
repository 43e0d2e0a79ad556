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
from userctl.printable import shell_command

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

ENV_KEY = "USERCTL_SECRET_KEY"
_FERNET = "fernet:"
ENCRYPTED_PREFIX = _FERNET  # how an encrypted stored value starts (a query can look for it)
_PLAIN = "plain:"


def secret_key_from_env() -> str | None:
    return os.environ.get(ENV_KEY) or None


def encrypt_secret(secret: str, key: str | None = None, *, owner: str | None = None) -> str:
    """The stored form of `secret`: encrypted with `key` (default: USERCTL_SECRET_KEY), or
    tagged plain text when no key is configured. `owner` (`owner_of`): the user it is sealed to,
    inside the ciphertext, so that a ciphertext copied into another user's row is refused."""
    key = key if key is not None else secret_key_from_env()
    if not key:
        return _PLAIN + secret
    plaintext = secret if owner is None else f"{owner}{_OWNER_END}{secret}"
    return _FERNET + _fernet(key).encrypt(plaintext.encode("utf-8")).decode("ascii")


def owner_of(user_id: int, email: str) -> str:
    """Whom a secret is sealed to: the user's row and identity (a row id alone can come back
    for another user once the last row is deleted, on SQLite)."""
    return f"{int(user_id)}/{email}"


# Between the owner and the secret: no email holds it, and a TOTP secret is base32.
_OWNER_END = "|"
# What seals the secrets written before sealing (or before the key).
SEAL_COMMAND = "db seal-secrets"


def decrypt_secret(stored: str, key: str | None = None, *, owner: str | None = None) -> str:
    """The secret back from its stored form. Raises UsageError when the key is missing or wrong,
    and, with `owner` (an operator's code being checked), for a secret not sealed to that user:
    stored in clear while a key is set, sealed to another user, or to none. Whoever can write
    the database without holding the key could otherwise plant a secret they know, or copy
    their own authenticator's ciphertext into an admin's row, pass that operator's 2FA and have
    userctl record them as confirming. `userctl db seal-secrets` seals, once, the secrets
    written before the key was set or before secrets were sealed to their users."""
    key = key if key is not None else secret_key_from_env()
    if stored.startswith(_PLAIN):
        if key:
            raise UsageError(
                f"a TOTP secret is stored in clear although {ENV_KEY} is set, so it is not "
                "taken: anyone who can write the database could have put it there. If it was "
                f"enrolled before the key was set, run `userctl {SEAL_COMMAND}` once"
            )
        return stored[len(_PLAIN) :]
    sealed_to, secret = _opened(stored, key)
    if owner is not None and sealed_to != owner:
        raise UsageError(
            f"the stored TOTP secret of {owner.partition('/')[2]} is not sealed to that user "
            "(copied from another user's row, or written before secrets were sealed to their "
            f"users), so it is not taken. If it was enrolled by an earlier userctl, run "
            f"`userctl {SEAL_COMMAND}` once"
        )
    return secret


def sealed(stored: str, owner: str, key: str, *, clear_taken: bool) -> str | None:
    """`stored` sealed to `owner` with `key`, when it is in clear or sealed to no one (written
    before secrets were sealed); None when it is sealed to `owner` already. Never laundered into
    a good one (UsageError, as for a key that does not decrypt it): a secret sealed to another
    user (a copied ciphertext), nor one in clear unless `clear_taken` (no secret is encrypted
    yet: the key has just been set). Once any is, a secret in clear was written without the
    key, or planted by whoever can write the table: sealed, it would pass as that user's."""
    if stored.startswith(_PLAIN):
        if not clear_taken:
            who = owner.partition("/")[2]
            raise UsageError(
                f"the TOTP secret of {who} is stored in clear beside encrypted ones: written "
                f"without {ENV_KEY} after the key was in use, or planted by whoever can write "
                "the table, so it is not sealed; re-enrol it "
                f"(`{shell_command('userctl', 'mfa', 'enroll', who)}`)"
            )
        return encrypt_secret(stored[len(_PLAIN) :], key, owner=owner)
    sealed_to, secret = _opened(stored, key)
    if sealed_to == owner:
        return None
    if sealed_to:
        raise UsageError(
            f"the stored TOTP secret of {owner.partition('/')[2]} is sealed to another user: "
            "it was copied from another row; re-enrol it (`userctl mfa enroll`)"
        )
    return encrypt_secret(secret, key, owner=owner)


def is_encrypted(stored: str) -> bool:
    return stored.startswith(ENCRYPTED_PREFIX)


def _opened(stored: str, key: str | None) -> tuple[str, str]:
    """Whom an encrypted `stored` is sealed to ("" for no one) and the secret; UsageError for a
    value of no known form, a missing key or one that does not decrypt it."""
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
        plaintext = _fernet(key).decrypt(stored[len(_FERNET) :].encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise UsageError(
            f"{ENV_KEY} does not decrypt the stored TOTP secret: it "
            "is not the key used at enrolment"
        ) from None
    sealed_to, _, secret = plaintext.rpartition(_OWNER_END)
    return sealed_to, secret


def _fernet(key: str) -> "Fernet":
    from cryptography.fernet import Fernet

    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode("utf-8")).digest()))
