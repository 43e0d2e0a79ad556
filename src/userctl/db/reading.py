"""Read-only transactions for the commands that only look: on a database whose schema this
userctl knows, optionally narrowed to one organization."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from userctl import state
from userctl.db import migrate
from userctl.db.engine import begin_read

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


@contextlib.contextmanager
def reading_database(engine: "Engine") -> Iterator["Connection"]:
    """A read-only transaction on a database whose schema this userctl knows."""
    migrate.require_current(engine)
    with begin_read(engine) as conn:
        yield conn


@contextlib.contextmanager
def reading(
    engine: "Engine", organization: str | None
) -> Iterator[tuple["Connection", int, state.Organization]]:
    """A read-only snapshot of `organization` (None: the only one)."""
    with reading_database(engine) as conn:
        from userctl.db.snapshot import resolve_organization

        org_id, org = resolve_organization(conn, organization)
        yield conn, org_id, org
