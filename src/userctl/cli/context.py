"""What every command gets from the global options: the database, colour, debug."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import click

from userctl.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from userctl.state import Organization

DEFAULT_DATABASE_URL = "sqlite:///userctl.db"
ENV_DATABASE_URL = "USERCTL_DATABASE_URL"


# One per command, never compared; repr would show the database URL's password. No generated
# __eq__/__repr__ to compile at every start.
@dataclass(eq=False, repr=False)
class AppContext:
    database_url: str = DEFAULT_DATABASE_URL
    organization: str | None = None
    no_color: bool = False
    debug: bool = False
    connect_timeout: int | None = None  # None: the engine's default
    # Where database_url came from, for the message when it is empty.
    database_url_from: str = "--database-url"
    _engine: "Engine | None" = field(default=None, repr=False)
    # The process clock when the command started: when a code given by option or variable was
    # read (cli/code_prompt.with_code). Set by the CLI, never from an option.
    started_at: dt.datetime = field(default_factory=lambda: _utcnow())

    def set_global(self, name: str, value: Any, given_as: str) -> None:
        """A global option given after the sub-command (see cli/options.py)."""
        setattr(self, name, value)
        if name == "database_url":
            self.database_url_from = given_as

    def engine(self) -> "Engine":
        if self._engine is None:
            if not self.database_url.strip():
                # A missing CI secret gives an empty variable: falling back to the SQLite default
                # would plan against (or apply to) an empty local database instead.
                emptiness = (
                    "set but empty" if self.database_url_from == ENV_DATABASE_URL else "empty"
                )
                raise UsageError(
                    f"{self.database_url_from} is {emptiness}: give the database URL "
                    f"(unset {ENV_DATABASE_URL} and omit --database-url for the "
                    f"default {DEFAULT_DATABASE_URL})"
                )
            from userctl.db.engine import create_engine_for

            timeout = (
                {} if self.connect_timeout is None else {"connect_timeout": self.connect_timeout}
            )
            self._engine = create_engine_for(self.database_url, **timeout)
        return self._engine

    def close(self) -> None:
        """Give the pooled connections back to the server when the command ends: a process that
        runs many commands (a test suite, a long-lived script) must not hold one pool each."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def color(self, stream: object = None) -> bool:
        """Colour only on a terminal, never with NO_COLOR (any value) or --no-color."""
        if self.no_color or "NO_COLOR" in os.environ:
            return False
        stream = stream if stream is not None else sys.stdout
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())


def app(ctx: click.Context | None = None) -> AppContext:
    ctx = ctx or click.get_current_context()
    obj = ctx.find_object(AppContext)
    if obj is None:  # a command invoked on its own, e.g. in a unit test
        obj = ctx.ensure_object(AppContext)
    return obj


def _utcnow() -> dt.datetime:
    # Looked up when called, so that a test's clock (userctl.clock.utcnow) is the one read.
    from userctl import clock

    return clock.utcnow()


@contextlib.contextmanager
def reading() -> Iterator[tuple["Connection", int, "Organization"]]:
    """A read-only snapshot of the chosen organization (`--organization`, or the only one), on a
    database whose schema this userctl knows (db/reading.py opens it)."""
    from userctl.db import reading as db_reading

    ctx = app()
    with db_reading.reading(ctx.engine(), ctx.organization) as found:
        yield found


@contextlib.contextmanager
def reading_database() -> Iterator["Connection"]:
    """A read-only transaction on the database, before an organization is chosen."""
    from userctl.db import reading as db_reading

    with db_reading.reading_database(app().engine()) as conn:
        yield conn
