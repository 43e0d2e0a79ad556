"""What makes a directory an evidence pack userctl wrote: its manifest (SHA256SUMS, headed by
PACK_HEADER) and the check of a directory against it, before a pack replaces it."""

from __future__ import annotations

import hashlib
import os
from typing import Mapping

MANIFEST = "SHA256SUMS"
# The signing key's SSH signature over MANIFEST: it cannot list itself there.
SIGNATURE = "SHA256SUMS.sig"
# `sha256sum -c` skips lines starting with "#": the pack stays checkable without userctl.
PACK_HEADER = "# userctl evidence pack: SHA-256 of every other file in this directory"


def manifest(files: Mapping[str, str]) -> str:
    """`sha256sum -c` format after PACK_HEADER: one "HASH  NAME" line per file, by name."""
    return (
        PACK_HEADER
        + "\n"
        + "".join(
            f"{hashlib.sha256(text.encode('utf-8')).hexdigest()}  {name}\n"
            for name, text in sorted(files.items())
        )
    )


def pack_problem(directory: str) -> str | None:
    """None when `directory` is exactly an evidence pack userctl wrote (every entry a file
    listed in its manifest, with that sum, and the manifest starting with PACK_HEADER); else
    what makes it something else, for the refusal."""
    try:
        entries = sorted(os.listdir(directory))
    except OSError as exc:
        return f"something unreadable ({exc.strerror or exc})"
    if MANIFEST not in entries:
        return f"{_first(entries)} and no {MANIFEST}"
    manifest_path = os.path.join(directory, MANIFEST)
    if os.path.islink(manifest_path) or not os.path.isfile(manifest_path):
        return f"a {MANIFEST} that is not a plain file"
    with open(manifest_path, "rb") as fh:
        data = fh.read(1 << 20)
    lines = data.decode("utf-8", "replace").splitlines()
    if not lines or lines[0] != PACK_HEADER:
        return f"a {MANIFEST} that userctl did not write"
    sums: dict[str, str] = {}
    for line in lines[1:]:
        digest, _, name = line.partition("  ")
        if not name or "/" in name or name in (".", "..", MANIFEST):
            return f"a {MANIFEST} that userctl did not write"
        sums[name] = digest
    for name in entries:
        if name == MANIFEST:
            continue
        if name == SIGNATURE and os.path.isfile(os.path.join(directory, name)):
            continue  # signs the manifest, which then vouches for the rest
        entry = os.path.join(directory, name)
        if name not in sums:
            return f"{name!r}, which its {MANIFEST} does not list"
        if os.path.islink(entry) or not os.path.isfile(entry):
            return f"{name!r}, which is not a plain file"
        if _sha256(entry) != sums[name]:
            return f"{name!r}, changed since userctl wrote it"
    return None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _first(entries: list[str]) -> str:
    return repr(entries[0]) + (f" and {len(entries) - 1} more" if len(entries) > 1 else "")
