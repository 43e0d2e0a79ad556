"""The locks of a write transaction (issue 10): the organization lock is its first statement, so
that on MariaDB no snapshot predates it, and `lock_rows` locks every row that makes up the
records apply checks its preconditions on (and nothing else)."""

from __future__ import annotations

from typing import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from tests.conftest import Factory
from userctl.db import models as m
from userctl.db.engine import _is_lock_timeout, begin_write, create_engine_for, lock_organization

ORG = "acme-payments"


def test_the_organization_lock_must_be_the_first_statement(
    engine: Engine, factory: Factory
) -> None:
    """A writer that read before locking would, on MariaDB, keep a snapshot from before the
    writer it waited for committed: refused as the programming error it is, on every backend so
    that SQLite-only runs catch it too."""
    factory.org(ORG)
    with pytest.raises(RuntimeError, match="must be the first statement"):
        with begin_write(engine, organization=ORG) as conn:
            conn.execute(sa.select(m.Organization.id).where(m.Organization.slug == ORG)).one()
            lock_organization(conn, ORG, 1)


def test_the_first_statement_rule_is_per_transaction(engine: Engine, factory: Factory) -> None:
    """The count lives on the pooled connection: it must neither leak into the next transaction
    nor count the statements sent outside a write transaction."""
    org_id = factory.org(ORG)
    with engine.connect() as conn:
        conn.execute(sa.select(m.Organization.id)).all()
        conn.rollback()
    for _ in range(2):
        with begin_write(engine, organization=ORG) as conn:
            assert lock_organization(conn, ORG, 1) == org_id
            conn.execute(sa.select(m.User.id)).all()


# --- lock_rows ------------------------------------------------------------------------------


@pytest.fixture
def other(db_url: str) -> Iterator[Connection]:
    """A second session (the platform) that gives up on a row lock after about a second."""
    engine = create_engine_for(db_url)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET lock_timeout = '300ms'")
        else:
            conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
        conn.commit()
        yield conn
    engine.dispose()


def blocked(conn: Connection, statement: sa.Executable) -> bool:
    """Whether `statement` waits for a lock held elsewhere (and gives up);
    rolled back either way."""
    try:
        conn.execute(statement)
    except DBAPIError as exc:
        if not _is_lock_timeout(exc):
            raise
        return True
    finally:
        conn.rollback()
    return False


@pytest.mark.parametrize(
    "backend", ["postgresql", "mariadb"]
)  # SQLite: BEGIN IMMEDIATE locks it all
def test_lock_rows_locks_the_rows_of_the_named_records_only(
    engine: Engine, factory: Factory, other: Connection
) -> None:
    from userctl.db.snapshot import lock_rows

    org = factory.org(ORG)
    ops = factory.role(org, "Ops", ["payouts.view"])
    spare = factory.role(org, "Spare", ["payouts.view"])
    main = factory.bank_account(org, "ops-main")
    backup = factory.bank_account(org, "ops-backup")
    calm = factory.user(org, "calm@acme.co", ops)
    busy = factory.user(org, "busy@acme.co", ops)
    factory.assign(calm, main)
    factory.assign(busy, main)

    def first_name(user: int) -> sa.Executable:
        return sa.update(m.User).where(m.User.id == user).values(first_name="Platform")

    def permission(role: int) -> sa.Executable:
        # A delete, not an update of the key: on MariaDB that would insert into a locked gap.
        return sa.delete(m.RolePermission).where(m.RolePermission.role_id == role)

    def assignment(user: int) -> sa.Executable:
        return sa.delete(m.UserBankAccount).where(m.UserBankAccount.user_id == user)

    def account(ident: int) -> sa.Executable:
        return sa.update(m.BankAccount).where(m.BankAccount.id == ident).values(bank="Platform")

    with begin_write(engine, organization=ORG) as conn:
        lock_organization(conn, ORG, 5)
        lock_rows(
            conn,
            org,
            {
                "user": {"calm@acme.co", "absent@acme.co"},
                "role": {"Ops"},
                "bank_account": {"ops-main"},
            },
        )
        assert blocked(other, first_name(calm)) and blocked(other, assignment(calm))
        assert blocked(
            other, sa.update(m.Role).where(m.Role.id == ops).values(description="Platform")
        )
        assert blocked(other, permission(ops)) and blocked(other, account(main))
        # Only what the records are made of: the other user, role and account stay writable.
        assert not blocked(other, first_name(busy)) and not blocked(other, assignment(busy))
        assert not blocked(other, permission(spare)) and not blocked(other, account(backup))
