"""Ed25519 signatures an auditor checks with the public key alone (docs/auditing.md "Signed
checkpoints"), in the SSH signature format (SSHSIG) so that `ssh-keygen -Y verify` checks them
without userctl.

The private key comes only from USERCTL_AUDIT_SIGNING_KEY — never an option, so it never lands in
shell history or a process listing — and is never printed: the variable holds either the PATH of
an unencrypted OpenSSH private key file (what `userctl audit keygen` and `ssh-keygen -t ed25519`
write) or the PEM (PKCS#8) text of one. A key id is the public key's SHA256 fingerprint exactly
as `ssh-keygen -l` prints it (SHA256:base64-without-padding).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from userctl.errors import InputError, UsageError

ENV_SIGNING_KEY = "USERCTL_AUDIT_SIGNING_KEY"
CHECKPOINT_NAMESPACE = "userctl-checkpoint"
EVIDENCE_NAMESPACE = "userctl-evidence"

_MAGIC = b"SSHSIG"
_VERSION = 1
_HASH = "sha512"
_KEY_TYPE = b"ssh-ed25519"
_ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_ARMOR_END = "-----END SSH SIGNATURE-----"


@dataclass(frozen=True, slots=True)
class SigningKey:
    private: Ed25519PrivateKey
    key_id: str

    def sign(self, message: bytes, namespace: str) -> str:
        """The armored SSHSIG of `message` in `namespace`."""
        return sshsig_sign(self.private, message, namespace)

    def public_line(self) -> str:
        return public_key_line(self.private.public_key())


def signing_key() -> SigningKey | None:
    """The key of USERCTL_AUDIT_SIGNING_KEY, or None when it is unset or empty. A value that is
    neither a readable key file nor PEM text is a usage error that names the variable, never its
    contents."""
    value = os.environ.get(ENV_SIGNING_KEY, "")
    if not value.strip():
        return None
    private = _load_private(value)
    return SigningKey(private, key_id(private.public_key()))


def _load_private(value: str) -> Ed25519PrivateKey:
    text: bytes
    if value.lstrip().startswith("-----BEGIN"):
        text, where = value.encode("utf-8"), f"the PEM text in {ENV_SIGNING_KEY}"
    else:
        where = f"the key file {ENV_SIGNING_KEY} names"
        try:
            text = _read_key_file(value, "signing key file", "name the FILE `audit keygen` made")
        except InputError as exc:  # its message, never the value (which may be a key's text)
            raise UsageError(f"{where}: {exc.problems[0].message}") from None
    key: object
    try:
        if b"BEGIN OPENSSH PRIVATE KEY" in text:
            key = serialization.load_ssh_private_key(text, password=None)
        else:
            key = serialization.load_pem_private_key(text, password=None)
    except Exception:  # noqa: BLE001 - whatever the parser says could quote key material
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(
            f"{where} is not an unencrypted Ed25519 private key (OpenSSH or PEM/PKCS#8); "
            "make one with `userctl audit keygen -o FILE`"
        )
    return key


def key_id(public: Ed25519PublicKey) -> str:
    """SHA256:… as `ssh-keygen -l` prints the key's fingerprint."""
    return _fingerprint(_public_blob(public))


def _fingerprint(public_blob: bytes) -> str:
    digest = hashlib.sha256(public_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def public_key_line(public: Ed25519PublicKey, comment: str = "userctl-audit") -> str:
    raw = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{raw.decode('ascii')} {comment}\n"


def load_public_keys(paths: list[str]) -> dict[str, Ed25519PublicKey]:
    """The public keys of `paths` (OpenSSH `.pub` files: `ssh-ed25519 AAAA… comment`, one or more
    a file), by key id. A file that holds none is a usage error naming it."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        data = _read_key_file(path, "public key file", "pass the FILE.pub `audit keygen` made")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise UsageError(f"--public-key {path}: cannot read it: not UTF-8 text") from None
        found = 0
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key: object
            try:
                key = serialization.load_ssh_public_key(" ".join(line.split()[:2]).encode())
            except Exception:  # noqa: BLE001 - ValueError, UnsupportedAlgorithm: not ours either way
                key = None
            if not isinstance(key, Ed25519PublicKey):
                raise UsageError(
                    f"{path}:{number}:1: not an OpenSSH Ed25519 public key "
                    "(ssh-ed25519 AAAA…, as `userctl audit keygen` writes FILE.pub)"
                )
            keys[key_id(key)] = key
            found += 1
        if not found:
            raise UsageError(f"--public-key {path}: the file holds no public key")
    return keys


# A key file is a few hundred bytes (a .pub of several keys, a few KiB): one far larger is the
# wrong file, read no further (`--public-key /dev/zero` used to fill the memory until killed).
KEY_FILE_LIMIT: Final = 1 << 20


def _read_key_file(path: str, what: str, advice: str) -> bytes:
    from userctl.desired.reader import read_bounded

    return read_bounded(path, KEY_FILE_LIMIT, what=what, advice=advice)


def generate() -> tuple[str, str, str]:
    """A new key pair: the OpenSSH private key text, the public key line and the key id."""
    private = Ed25519PrivateKey.generate()
    text = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = private.public_key()
    return text, public_key_line(public), key_id(public)


# The SSH signature format (OpenSSH PROTOCOL.sshsig).


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _public_blob(public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _string(_KEY_TYPE) + _string(raw)


def _signed_data(message: bytes, namespace: str) -> bytes:
    return (
        _MAGIC
        + _string(namespace.encode("ascii"))
        + _string(b"")
        + _string(_HASH.encode("ascii"))
        + _string(hashlib.sha512(message).digest())
    )


def sshsig_sign(private: Ed25519PrivateKey, message: bytes, namespace: str) -> str:
    signature = private.sign(_signed_data(message, namespace))
    blob = (
        _MAGIC
        + struct.pack(">I", _VERSION)
        + _string(_public_blob(private.public_key()))
        + _string(namespace.encode("ascii"))
        + _string(b"")
        + _string(_HASH.encode("ascii"))
        + _string(_string(_KEY_TYPE) + _string(signature))
    )
    encoded = base64.b64encode(blob).decode("ascii")
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return "\n".join([_ARMOR_BEGIN, *lines, _ARMOR_END]) + "\n"


def sshsig_verify(
    armored: str, message: bytes, namespace: str, keys: dict[str, Ed25519PublicKey]
) -> str | None:
    """What is wrong with the signature `armored` over `message`, or None when one of `keys`
    made it in `namespace`. The key is looked up by the fingerprint of the key the signature
    names and the signature checked with the auditor's copy, never with the embedded one."""
    try:
        blob = _dearmor(armored)
        reader = _Reader(blob)
        if reader.raw(6) != _MAGIC or reader.uint32() != _VERSION:
            return "it is not an SSH signature (SSHSIG version 1)"
        public_blob = reader.string()
        signed_ns = reader.string().decode("ascii")
        reader.string()  # reserved
        hash_alg = reader.string().decode("ascii")
        sig_reader = _Reader(reader.string())
        sig_type, sig = sig_reader.string(), sig_reader.string()
    except (ValueError, UnicodeDecodeError, struct.error, IndexError):
        return "the signature is not a well-formed SSH signature"
    if signed_ns != namespace:
        return f"the signature is for namespace {signed_ns!r}, not {namespace!r}"
    if hash_alg != _HASH or sig_type != _KEY_TYPE:
        used = f"{hash_alg}/{sig_type.decode('ascii', 'replace')}"
        return f"the signature uses {used}, not sha512/ssh-ed25519"
    fingerprint = _fingerprint(public_blob)
    key = keys.get(fingerprint)
    if key is None:
        return f"it was made with key {fingerprint}, which is none of the public keys given"
    try:
        key.verify(sig, _signed_data(message, namespace))
    except InvalidSignature:
        return f"the signature by {fingerprint} does not match the signed contents"
    return None


def signer_of(armored: str) -> str | None:
    """The key id an SSHSIG names (unverified), or None when it is not one."""
    try:
        reader = _Reader(_dearmor(armored))
        reader.raw(6)
        reader.uint32()
        public_blob = reader.string()
    except (ValueError, struct.error, IndexError):
        return None
    return _fingerprint(public_blob)


def _dearmor(armored: str) -> bytes:
    lines = [line.strip() for line in armored.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _ARMOR_BEGIN or lines[-1] != _ARMOR_END:
        raise ValueError("not armored")
    return base64.b64decode("".join(lines[1:-1]), validate=True)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def raw(self, n: int) -> bytes:
        if self._at + n > len(self._data):
            raise ValueError("short")
        chunk = self._data[self._at : self._at + n]
        self._at += n
        return chunk

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.raw(4))[0]
        return value

    def string(self) -> bytes:
        return self.raw(self.uint32())
