"""Schema versioning: Alembic, run programmatically from the migrations shipped in the package.

`require_current` runs before every command that reads the database. It reads the version row
with one plain query and compares it with HEAD_REVISION, so that `userctl plan` does not pay for
importing Alembic (tests check HEAD_REVISION against the migration scripts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from userctl.db.engine import begin_write, redacted, sqlite_path
from userctl.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config

HEAD_REVISION = "0008"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


def alembic_config() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def script_head() -> str:
    """The head revision according to the migration scripts themselves."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts shipped"
    return head


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Run pending migrations; returns (revision before, revision after)."""
    from alembic import command

    before = current(engine)
    config = alembic_config()
    # DDL takes the write lock on SQLite like any writer; PostgreSQL runs it transactionally;
    # MariaDB commits each DDL statement implicitly, which is why apply never runs DDL.
    with begin_write(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return before, HEAD_REVISION


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        revision = conn.execute(
            text(f"SELECT version_num FROM {VERSION_TABLE}")
        ).scalar_one_or_none()
    return None if revision is None else str(revision)


def require_current(engine: Engine) -> None:
    """Refuse to work on a database that is missing, uninitialised or at another revision."""
    problem = revision_problem(engine)
    if problem is not None:
        raise DatabaseError(problem)


def revision_problem(engine: Engine) -> str | None:
    """Why this userctl cannot work on the database's schema, as a sentence naming what to do,
    or None when the schema is at HEAD_REVISION. The CLI asks it too when a statement fails, so
    that "run `userctl db upgrade`" is said only when the revision really is behind."""
    url = redacted(engine.url)
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is not None and not os.path.exists(path):
        # Checked before connecting, which would leave an empty database file behind.
        return f"no database at {url}: create it with `userctl init -f FILE --admin EMAIL`"
    revision = current(engine)
    if revision is None:
        return (
            f"database at {url} is not initialised: "
            "run `userctl init -f FILE --admin EMAIL` or `userctl db upgrade`"
        )
    if revision == HEAD_REVISION:
        return None
    if not _known(revision):
        return (
            f"database at {url} is at revision {revision}, which this userctl does not know "
            "(a newer userctl migrated it): upgrade userctl"
        )
    return (
        f"database at {url} is at revision {revision}, expected "
        f"{HEAD_REVISION}: run `userctl db upgrade`"
    )


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
