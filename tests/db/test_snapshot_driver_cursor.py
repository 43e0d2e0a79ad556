"""The snapshot's fast path (DESIGN §6): the big reads run on the driver's own cursor, which
must not change what is read, how errors surface, or how many statements are sent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Runner
from userctl.db.engine import begin_read, create_engine_for
from userctl.db.snapshot import read_live_state

ORG_YAML = """\
version: 1
organization: acme-payments
roles:
  R:
    permissions: [users.view]
users:
  first@acme.co:
    first_name: First
    last_name: User
    id_type: CC
    id_number: "1000001"
    phone: "+573000000001"
    role: R
"""


def test_booleans_are_booleans_on_every_backend(engine: Engine, factory: Factory) -> None:
    # SQLite and MariaDB hand the driver 0/1: the reader must convert, not pass ints along.
    org = factory.org()
    role = factory.role(org, "R", ["users.view"])
    yes = factory.user(org, "yes@acme.co", role, force_password_reset=True)
    factory.enrol(yes)
    factory.user(org, "no@acme.co", role, force_password_reset=False)
    with begin_read(engine) as conn:
        users = read_live_state(conn, "acme-payments").users
    assert (
        users["yes@acme.co"].force_password_reset is True
        and users["yes@acme.co"].totp_enrolled is True
    )
    assert (
        users["no@acme.co"].force_password_reset is False
        and users["no@acme.co"].totp_enrolled is False
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_statements_sent_to_the_driver_do_not_grow_with_users(
    engine: Engine, factory: Factory
) -> None:
    # Counted by SQLite itself, so statements that bypass SQLAlchemy's events count too.
    org = factory.org()
    role = factory.role(org, "R", ["users.view"])
    account = factory.bank_account(org, "main")

    def statements() -> list[str]:
        sent: list[str] = []
        with begin_read(engine) as conn:
            driver = conn.connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            driver.set_trace_callback(sent.append)
            try:
                read_live_state(conn, "acme-payments")
            finally:
                driver.set_trace_callback(None)
        return sent

    factory.assign(factory.user(org, "first@acme.co", role), account)
    few = statements()
    assert any("FROM users" in s for s in few) and any("FROM user_bank_accounts" in s for s in few)
    for i in range(30):
        factory.assign(factory.user(org, f"u{i}@acme.co", role), account)
    assert len(statements()) == len(few)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_failing_driver_read_is_a_sqlalchemy_error_and_one_cli_message(
    db_url: str, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    org = factory.org()
    factory.user(org, "first@acme.co", factory.role(org, "R", ["users.view"]))
    broken = create_engine_for(db_url)
    with broken.begin() as conn:  # the platform's table gone: the assignments query fails
        conn.exec_driver_sql("DROP TABLE user_bank_accounts")
    with pytest.raises(sa.exc.OperationalError, match="user_bank_accounts"):
        with begin_read(broken) as conn:
            read_live_state(conn, "acme-payments")
    broken.dispose()

    (tmp_path / "org.yaml").write_text(ORG_YAML, encoding="utf-8")
    result = runner("plan", "-f", str(tmp_path / "org.yaml"))
    assert result.exit_code == 1
    assert "database error: no such table: user_bank_accounts" in result.output
    assert "Traceback" not in result.output
