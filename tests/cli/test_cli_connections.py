"""Each CLI command gives its database connections back when it ends: a process that runs many
commands (this test suite, a long-lived script) must not keep one connection pool per command."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Runner

COUNT = {
    # Client connections only: an autovacuum worker visiting the database is not the CLI's.
    "postgresql": (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend'"
    ),
    "mariadb": "SELECT count(*) FROM information_schema.processlist WHERE db = database()",
}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_commands_close_their_connections(
    backend: str, runner: Runner, factory: Factory, engine: Engine
) -> None:
    org = factory.org("acme-payments")
    factory.user(org, "ana@acme.co", factory.role(org, "Admin", ["users.manage"]))

    def connections() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(COUNT[backend])).scalar_one())

    before = connections()
    for _ in range(5):
        result = runner("users", "list", "--format", "json")
        assert result.exit_code == 0, result.output
        assert "ana@acme.co" in result.stdout
    # A server ends a closed connection's backend on its own time: on a loaded machine it may
    # still be listed a moment after the client let go. A connection kept open stays listed.
    deadline = time.monotonic() + 10
    while connections() != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert connections() == before
