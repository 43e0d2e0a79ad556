"""How a failure no command reported itself is worded: a database error (with "run `userctl db
upgrade`" only when the schema really is behind) or an unexpected one, in one sentence."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from userctl.cli.context import AppContext
from userctl.cli.messages import say
from userctl.errors import UserctlError


def unexpected(exc: Exception) -> str:
    if is_database_error(exc):  # outside a command (its invoke turns them into DatabaseError)
        return f"Error: database error: {_database_reason(exc)}; rerun with --debug for details."
    return f"Error: unexpected {type(exc).__name__}: {exc}. Rerun with --debug for the traceback."


def is_database_error(exc: BaseException) -> bool:
    # Without importing SQLAlchemy: a command that never loaded it (validate) cannot have raised
    # one.
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


# Commands that migrate the schema themselves: their failure is not cured by running them again.
_MIGRATING = frozenset({"db", "init"})


def database_error(exc: Exception, ctx: click.Context) -> str:
    """What failed, in one sentence; with "run `userctl db upgrade`" only when the schema really is
    behind. Any statement can fail ("value too long", "text fields cannot contain NUL"), and on an
    up-to-date schema an upgrade hint would send the reader after the wrong cause."""
    reason = f"database error: {_database_reason(exc)}"
    app = ctx.find_object(AppContext)
    if app is None or ctx.invoked_subcommand in _MIGRATING:
        return f"{reason}; rerun with --debug for details"
    from userctl.db.migrate import revision_problem

    try:
        problem = revision_problem(app.engine())
    except Exception:  # noqa: BLE001 - the revision is unknown: say only what failed
        problem = None
    return f"{reason}; {problem}" if problem else f"{reason}; rerun with --debug for details"


def _database_reason(exc: Exception) -> str:
    """The driver's own words, on one line: psycopg's message, the text of
    pymysql's (code, text)."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = args[1]
    else:
        text = str(orig)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def report(message: str) -> None:
    # Every error reaches the terminal here: a value quoted in it (an --operator, a name read from
    # the database) is shown with its hidden characters escaped, line by line.
    say(message, err=True)


class ClosedPipe(Exception):
    """stdout's reader went away (not an OSError, which click would map to exit 1 itself)."""


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def is_multiline(exc: UserctlError) -> bool:
    return "\n" in str(exc)
