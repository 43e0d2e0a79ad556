"""What every command gets from the global options: the database, colour, debug."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_DATABASE_URL = "sqlite:///userctl.db"


@dataclass
class AppContext:
    database_url: str = DEFAULT_DATABASE_URL
    organization: str | None = None
    no_color: bool = False
    debug: bool = False
    _engine: "Engine | None" = field(default=None, repr=False)

    def engine(self) -> "Engine":
        if self._engine is None:
            from userctl.db.engine import create_engine_for

            self._engine = create_engine_for(self.database_url)
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
