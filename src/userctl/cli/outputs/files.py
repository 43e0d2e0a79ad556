"""One file at a time: `write_file` (a saved plan, an export, a public key) and `SecretFile`
(init's and keygen's secrets), each where `places` says it may go. See the package doc for the
rule."""

from __future__ import annotations

import os
import tempfile
from typing import Iterable

from userctl.cli.outputs.places import refuse_read, resolved
from userctl.errors import UsageError


def write_file(option: str, path: str, text: str, *, reads: Iterable[str] = ()) -> None:
    """Replace `path` with `text` atomically (a reader, or a crashed run, never sees half a file).
    `reads` are the files this command reads (the desired-state files): never overwritten by its
    output, nor is the SQLite database."""
    real = resolved(option, path)
    if os.path.isdir(real):
        raise UsageError(f"{option} {path} is a directory: name a file")
    if os.path.lexists(real) and not os.path.isfile(real):
        raise UsageError(f"{option} {path} exists and is not a regular file: name another file")
    refuse_read(option, path, real, reads)
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
        refuse_read(option, path, resolved(option, path))
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
