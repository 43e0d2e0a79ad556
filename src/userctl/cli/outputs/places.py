"""Where a write goes and what it must never replace: the one way a path is resolved for writing
(`resolved`), and the files every command reads (`never_replaced`: the desired-state files, the
SQLite database and the files SQLite keeps beside it). See the package doc for the rule."""

from __future__ import annotations

import os
import stat
from typing import Final, Iterable

from userctl.errors import UsageError


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
    database = None if obj is None else _sqlite_file(obj.database_url)
    if database:
        found += [database, *(database + suffix for suffix in SQLITE_COMPANIONS)]
    return found


def _sqlite_file(database_url: str) -> str | None:
    """The command's SQLite database file (None for a server, an in-memory database, or a URL
    that names none: the command refuses that on its own)."""
    from userctl.db.engine import sqlite_path
    from userctl.errors import DatabaseError

    try:
        return sqlite_path(database_url)
    except DatabaseError:
        return None


def refuse_read(option: str, path: str, real: str, reads: Iterable[str] = ()) -> None:
    """UsageError when `real` (the resolved `path`) is one of `reads` or of what every command
    reads (never_replaced)."""
    for source in never_replaced(reads):
        if os.path.realpath(source) == real:
            raise UsageError(
                f"{option} {path} is {source}, which this command reads: name another file"
            )


def resolved(option: str, path: str) -> str:
    """`path` with its links followed, the one way a write resolves where it goes; refuses a link
    that another user made in a shared directory (sticky and world-writable, as /tmp is):
    followed, it would replace whatever file of ours they pointed it at. The kernel stops that
    for a file opened through the link (fs.protected_symlinks), not for a path resolved first
    and renamed onto."""
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
