"""Whether bytes hash to a stored SHA-256 hex digest: what `audit verify` asks of every event.

The definition is `matches_by_hashlib`. Where the package was built with a C compiler and
OpenSSL's headers, `matches` is the same answer from `userctl._sha256` (the extension setup.py
builds, optional: an install without them gets this module's definition), about 0.27 µs an event
less, a fifth of verifying one. tests/core/test_hexdigest.py holds the two equal."""

from __future__ import annotations

import hashlib
from typing import Callable, Final


def matches_by_hashlib(payload: bytes, hexdigest: object) -> bool:
    """The definition: the lowercase hex SHA-256 of `payload` is `hexdigest` (a str)."""
    return hashlib.sha256(payload).hexdigest() == hexdigest


matches: Callable[[bytes, object], bool]
try:
    from userctl._sha256 import matches
except ImportError:  # built without a compiler or OpenSSL's headers
    matches = matches_by_hashlib

ACCELERATED: Final = matches is not matches_by_hashlib
