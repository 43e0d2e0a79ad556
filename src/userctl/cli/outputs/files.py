"""One file at a time: `write_file` (a saved plan, an export, a public key) and `SecretFile`
(init's and keygen's secrets), and what a write must never replace (the files the command reads).
See the package doc for the rule."""

from __future__ import annotations

import os
import stat
import tempfile
from typing import Final, Iterable

from userctl.errors import UsageError


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


# The files SQLite keeps beside a database as its own (the rollback journal, the write-ahead log
# and its index). A file written under one of those names is not ours for long: the next open
# takes a journal it cannot read for a spent one and deletes it (an export, or a secret, lost
# without a word); and written over a journal a crash left behind, it takes with it the only
# record that undoes the half-made transaction.
SQLITE_COMPANIONS: Final = ("-journal", "-wal", "-shm")


def never_replaced(extra: Iterable[str]) -> list[str]:
    """What a write must never replace: `extra` and this command's SQLite database file and its
    companions, which every command reads (taken from the running command, so that no caller
    can forget it)."""
    import click

    from userctl.cli.context import AppContext

    found = list(extra)
    ctx = click.get_current_context(silent=True)
    obj = None if ctx is None else ctx.find_object(AppContext)
    database = None if obj is None else sqlite_file(obj.database_url)
    if database:
        found += [database, *(database + suffix for suffix in SQLITE_COMPANIONS)]
    return found


def refuse_read(option: str, path: str, real: str, reads: Iterable[str]) -> None:
    """UsageError when `real` (the resolved `path`) is one of `reads` (see never_replaced)."""
    for source in reads:
        if os.path.realpath(source) == real:
            raise UsageError(
                f"{option} {path} is {source}, which this command reads: name another file"
            )


def resolved(option: str, path: str) -> str:
    """`path` with its links followed, the one way a write resolves where it goes; refuses a link
    that another user made in a shared directory (sticky and world-writable, as /tmp is):
    followed, it would replace whatever file of ours they pointed it at. The kernel stops that
    for open() (fs.protected_symlinks), not for a path resolved first and renamed onto."""
    current = ""
    for part in os.path.abspath(path).split(os.sep)[1:]:
        current = os.path.join(current or os.sep, part)
        if not os.path.islink(current):
            continue
        directory = os.path.dirname(current)
        link, parent = os.lstat(current), os.stat(directory)
        shared = parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH
        if shared and link.st_uid not in (os.geteuid(), parent.st_uid):
            raise UsageError(
                f"{option} {path} goes through a link another user made in the shared directory "
                f"{directory}: name a path of your own. Nothing was written"
            )
        current = os.path.realpath(current)
    return os.path.realpath(path)


def write_file(option: str, path: str, text: str, *, reads: Iterable[str] = ()) -> None:
    """Replace `path` with `text` atomically (a reader, or a crashed run, never sees half a file).
    `reads` are the files this command reads (the desired-state files): never overwritten by its
    output, nor is the SQLite database."""
    real = resolved(option, path)
    reads = never_replaced(reads)
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
        refuse_read(option, path, resolved(option, path), never_replaced(()))
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
