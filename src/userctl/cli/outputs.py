"""Every file and directory a command writes goes through here (DESIGN §8 invariant 9: no write
deletes what userctl did not write).

A path is resolved once (symlinks followed) and only the resolved path is used after that, so a
link cannot be swapped between the check and the write, and what is replaced is the link's
target, never the link (which used to leave a stray `.userctl-evidence-old-*` behind).

- `write_file` replaces one file (a saved plan, an export) atomically. It refuses a directory, a
  device or anything but a regular file, and the files the command itself reads: the SQLite
  database and the desired-state files.
- `write_pack` writes a directory of files (the evidence pack) into a new or empty directory, or
  replaces an earlier pack that userctl recognises by its own manifest: a SHA256SUMS whose first
  line is PACK_HEADER, listing every other file of the directory with its right sum. Anything
  else (the working directory or one above it, a directory holding the database or a
  desired-state file, a directory with any other file, an edited pack) is refused, untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Iterable, Mapping

from userctl.errors import UsageError

MANIFEST = "SHA256SUMS"
# The signing key's SSH signature over MANIFEST: it cannot list itself there.
SIGNATURE = "SHA256SUMS.sig"
# `sha256sum -c` skips lines starting with "#": the pack stays checkable without userctl.
PACK_HEADER = "# userctl evidence pack: SHA-256 of every other file in this directory"
_STAGING = ".userctl-evidence-"


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


def sqlite_file(database_url: str) -> str | None:
    """The file of a SQLite database URL (None for a server or an in-memory database)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


def desired_files(path: str) -> list[str]:
    """What `-f PATH` reads: the file, or the directory and every *.yaml in it."""
    found = [path]
    if os.path.isdir(path):
        found += sorted(os.path.join(path, name) for name in os.listdir(path))
    return [f for f in found if f == path or f.endswith(".yaml")]


def _reads(extra: Iterable[str]) -> list[str]:
    """What a write must never replace: `extra` and this command's SQLite database file, which
    every command reads (taken from the running command, so that no caller can forget it)."""
    import click

    from userctl.cli.context import AppContext

    found = list(extra)
    ctx = click.get_current_context(silent=True)
    obj = None if ctx is None else ctx.find_object(AppContext)
    database = None if obj is None else sqlite_file(obj.database_url)
    return found + ([database] if database else [])


def write_file(option: str, path: str, text: str, *, reads: Iterable[str] = ()) -> None:
    """Replace `path` with `text` atomically (a reader, or a crashed run, never sees half a file).
    `reads` are the files this command reads (the desired-state files): never overwritten by its
    output, nor is the SQLite database."""
    real = os.path.realpath(path)
    reads = _reads(reads)
    if os.path.isdir(real):
        raise UsageError(f"{option} {path} is a directory: name a file")
    if os.path.lexists(real) and not os.path.isfile(real):
        raise UsageError(f"{option} {path} exists and is not a regular file: name another file")
    for source in reads:
        if os.path.realpath(source) == real:
            raise UsageError(
                f"{option} {path} is {source}, which this command reads: name another file"
            )
    directory = os.path.dirname(real)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".userctl-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, real)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            # The temporary file is ours; the path the user gave is what they can fix.
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def write_pack(
    option: str,
    path: str,
    files: Mapping[str, str],
    *,
    force: bool,
    reads: Iterable[str] = (),
) -> None:
    """Write `files` (name -> text, MANIFEST included) as the directory `path`: built beside it
    and renamed into place, so a reader never sees half a pack. An earlier pack there is replaced
    only with `force`; anything else userctl did not write is refused (see the module doc)."""
    real = os.path.realpath(path)
    _refuse_above(option, path, real, [os.getcwd(), *_reads(reads)])
    if os.path.lexists(real) and not os.path.isdir(real):
        raise UsageError(f"{option} {path} exists and is not a directory")
    earlier = os.path.isdir(real) and bool(os.listdir(real))
    if earlier:
        why = pack_problem(real)
        if why is not None:
            raise UsageError(
                f"{option} {path} holds {why}, so it is not an evidence pack userctl wrote: "
                "choose a new or empty directory. Nothing was written"
            )
        if not force:
            raise UsageError(
                f"{option} {path} is not empty (an earlier evidence pack): choose a new "
                "directory, or add --force to replace that pack"
            )
    parent = os.path.dirname(real)
    try:
        staging = tempfile.mkdtemp(dir=parent, prefix=_STAGING)
    except OSError as exc:
        raise UsageError(f"cannot write into {parent}: {exc.strerror or exc}") from None
    old = None
    try:
        for name, text in files.items():
            with open(os.path.join(staging, name), "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        os.chmod(staging, 0o755)
        if earlier:
            old = tempfile.mkdtemp(dir=parent, prefix=_STAGING + "old-")
            os.rename(real, os.path.join(old, "pack"))
            # Checked again once out of the way: a file added since the first check is not ours.
            why = pack_problem(os.path.join(old, "pack"))
            if why is not None:
                raise UsageError(
                    f"{option} {path} changed while the pack was written (it now holds {why}); "
                    "nothing was replaced"
                )
        elif os.path.isdir(real):
            os.rmdir(real)  # empty: fails, leaving it alone, if a file appeared since
        os.rename(staging, real)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            if not os.path.lexists(real):
                os.rename(os.path.join(old, "pack"), real)  # put the earlier pack back
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    if old is not None:
        try:
            shutil.rmtree(old)
        except OSError as exc:
            raise UsageError(
                f"the pack is in {path}, but the earlier one, moved to {old}, could not be "
                f"removed: {exc.strerror or exc}"
            ) from None


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


def _refuse_above(option: str, path: str, real: str, keep: Iterable[str]) -> None:
    """A pack replaces its whole directory: never one that is, or holds, the working directory,
    the database file or a desired-state file."""
    for place in keep:
        resolved = os.path.realpath(place)
        if resolved == real or resolved.startswith(real.rstrip(os.sep) + os.sep):
            what = "the working directory" if place == os.getcwd() else place
            raise UsageError(
                f"{option} {path} would replace {what}: choose a new or empty directory "
                "elsewhere. Nothing was written"
            )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _first(entries: list[str]) -> str:
    return repr(entries[0]) + (f" and {len(entries) - 1} more" if len(entries) > 1 else "")


class SecretFile:
    """A file for a secret (init's `--secret-file`): created empty and private (0600) BEFORE the
    secret exists, so a secret is never made with nowhere to go, and never over an existing file
    (the shell's `>` would truncate an earlier secret before the command could refuse); filled
    once the secret is committed, removed when nothing is put in it."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def reserve(
        cls,
        option: str,
        path: str,
        exist_ok: bool,
        *,
        command: str = "init",
        advice: str = "or give --exist-ok to keep it when the organization is already there",
    ) -> "SecretFile | None":
        """The reserved file; None when it exists already and `exist_ok` lets the command find
        what it belongs to."""
        try:
            return cls(path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            if exist_ok:
                return None
            raise UsageError(
                f"{option} {path} already exists: {command} never overwrites a secret; move it "
                f"away, {advice}"
            ) from None
        except OSError as exc:
            raise UsageError(f"{option} {path}: {exc.strerror}") from None

    def fill(self, text: str) -> None:
        assert self._fd is not None, "a secret file is filled once"
        with os.fdopen(self._fd, "w", encoding="utf-8") as out:
            out.write(text)
        self._fd = None

    def discard(self) -> None:
        """Remove the file while still empty: the command wrote nothing to put in it."""
        if self._fd is not None:
            os.close(self._fd)
            os.unlink(self.path)
            self._fd = None
