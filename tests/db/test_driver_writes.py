"""Bulk writes through the driver's executemany (db/driver.insert_many), on every backend: the rows
stored are those SQLAlchemy Core's insert of the same values stores, byte for byte as the driver
reads them back (SQLite keeps times and dates as text, in SQLAlchemy's format), for the users the
executor creates, the invitations apply queues and the audit events it appends."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tests.conftest import Factory
from userctl.apply import audit, outbox
from userctl.db import tables
from userctl.db.driver import driver_rows, insert_many
from userctl.db.engine import begin_write
from userctl.db.executor import Executor
from userctl.plan import PHASES, Change
from userctl.state import User, user_fields

NOW = dt.datetime(2026, 3, 4, 5, 6, 7, 890123)


def org_rows(conn: Connection, table: sa.Table, org_id: int, skip: set[str]) -> list[Any]:
    """The rows of one organization as the driver reads them (no SQLAlchemy type processing),
    without the columns that differ between two organizations by construction."""
    columns = [c for c in table.columns if c.key not in skip]
    return sorted(driver_rows(conn, sa.select(*columns).where(table.c.organization_id == org_id)))


def two_orgs(factory: Factory) -> tuple[int, int, int, int]:
    a, b = factory.org("org-a"), factory.org("org-b")
    return a, b, factory.role(a, "R", ["users.view"]), factory.role(b, "R", ["users.view"])


def created(email: str, n: int, **fields: Any) -> Change:
    user = User(
        email=email,
        first_name="Ada" if n % 2 else "Añá",
        last_name=f"Person{n}",
        id_type="CC",
        id_number=f"{7000000 + n}",
        phone=f"+5731100{n:05d}",
        role="R",
        status="invited",
        two_factor=("required", "optional")[n % 2],
        force_password_reset=bool(n % 3),
        expires=None if n % 2 else f"2027-0{1 + n % 9}-1{n % 10}",
        **fields,
    )
    return Change(
        "user", (email,), "create", PHASES.index("user.create"), None, user_fields(user), {}
    )


def test_the_executor_writes_the_rows_core_would(engine: Engine, factory: Factory) -> None:
    org_a, org_b, _, role_b = two_orgs(factory)
    # One record claims an authenticator: a new row never has one, whatever the record says.
    changes = [created(f"u{i}@acme.co", i, totp_enrolled=i == 3) for i in range(7)]
    with begin_write(engine) as conn:
        made = Executor(conn, org_a, NOW).run(changes)
        # What create_users wrote through SQLAlchemy Core before it wrote tuples.
        conn.execute(
            sa.insert(tables.users),
            [
                {
                    "organization_id": org_b,
                    **{k: v for k, v in c.user_after().items() if k != "role"},
                    "expires": None
                    if c.user_after()["expires"] is None
                    else dt.date.fromisoformat(str(c.user_after()["expires"])),
                    "totp_enrolled": False,
                    "role_id": role_b,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for c in changes
            ],
        )
    skip = {"id", "organization_id", "role_id", "email_key"}
    with engine.connect() as conn:
        ours = org_rows(conn, tables.users, org_a, skip)
        core = org_rows(conn, tables.users, org_b, skip)
        u = tables.users
        ids = dict(
            conn.execute(sa.select(u.c.email, u.c.id).where(u.c.organization_id == org_a)).all()
        )
    assert len(ours) == 7 and ours == core
    assert made == [(c.key[0], ids[c.key[0]]) for c in changes]


def test_invitations_and_audit_events_are_the_rows_core_would_write(
    engine: Engine, factory: Factory
) -> None:
    org_a, org_b, _, _ = two_orgs(factory)
    users = {
        org: factory.user(org, f"x@{org}.co", factory.role(org, "S")) for org in (org_a, org_b)
    }
    events = [
        audit.AuditRecord(
            operator="op@acme.co",
            verified_by="totp",
            action="user.create",
            address=f'user["u{i}@acme.co"]',
            after={"email": f"u{i}@acme.co", "n": i, "ñ": [True, None]} if i % 2 else None,
            before={"x": i} if i == 2 else None,
            plan_digest="sha256:" + "a" * 64,
            operator_verified=i % 2 == 0,
            reason="TICKET-1" if i == 1 else None,
            refers_to=1 if i == 3 else None,
        )
        for i in range(5)
    ]
    with begin_write(engine) as conn:
        outbox.queue_invitations(conn, org_a, [("X@Acme.co ", users[org_a])], NOW)
        head = audit.append_events(conn, org_a, events, NOW)
        conn.execute(
            sa.insert(tables.notifications),
            {
                "organization_id": org_b,
                "user_id": users[org_b],
                "recipient": "x@acme.co",
                "kind": "invitation",
                "status": "queued",
                "attempts": 0,
                "created_at": NOW,
            },
        )
        # The same events as Core rows: copied from org A's, as the driver read them back.
        stored = conn.execute(
            sa.select(tables.audit_events).where(tables.audit_events.c.organization_id == org_a)
        ).mappings()
        conn.execute(
            sa.insert(tables.audit_events),
            [
                {**{k: v for k, v in r.items() if k != "id"}, "organization_id": org_b}
                for r in stored
            ],
        )
    with engine.connect() as conn:
        skip = {"id", "organization_id", "user_id"}
        invitations = org_rows(conn, tables.notifications, org_a, skip)
        assert len(invitations) == 1
        assert invitations == org_rows(conn, tables.notifications, org_b, skip)
        skip = {"id", "organization_id"}
        ours = org_rows(conn, tables.audit_events, org_a, skip)
        assert len(ours) == 5 and ours == org_rows(conn, tables.audit_events, org_b, skip)
        # And the chain they make verifies, with the head append_events returned.
        assert audit.verify_chain(conn, org_a, head).ok


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_column_with_a_python_default_must_be_given(engine: Engine) -> None:
    # The database would not apply SQLAlchemy's defaults: leaving one out is a bug, found at once.
    with begin_write(engine) as conn, pytest.raises(ValueError, match="must give .*created_at"):
        insert_many(conn, tables.audit_events, ("organization_id", "seq"), [(1, 1)])


def test_a_refused_row_is_the_error_core_raises(engine: Engine, factory: Factory) -> None:
    org_a, _, role_a, _ = two_orgs(factory)
    change = created("dup@acme.co", 1)
    with pytest.raises(sa.exc.IntegrityError), begin_write(engine) as conn:
        Executor(conn, org_a, NOW).run([change, change])


def test_updates_and_assignments_write_the_rows_core_would(
    engine: Engine, factory: Factory
) -> None:
    orgs = factory.org("org-a"), factory.org("org-b")
    for org in orgs:
        r = factory.role(org, "R", ["users.view"])
        factory.role(org, "R2", ["users.view", "audit.view"])
        for i in range(4):
            factory.user(
                org,
                f"u{i}@acme.co",
                r,
                two_factor="required",
                expires="2027-01-01",
                last_name=f"P{i}",
                id_number=f"800000{i}",
                phone=f"+57300000000{i}",
            )
        factory.bank_account(org, "payroll")

    def diff(**after: Any) -> dict[str, Any]:
        return {k: {"before": None, "after": v} for k, v in after.items()}

    def user(action: str, i: int, **after: Any) -> Change:
        return Change("user", (f"u{i}@acme.co",), action, 0, None, None, diff(**after))  # type: ignore[arg-type]

    changes = [
        user("update", 0, first_name="Zoë", force_password_reset=True),
        user("update", 1, first_name="Yan", force_password_reset=False),
        user("change_role", 2, role="R2"),
        user("set_expiry", 3, expires="2028-02-29"),
        user("set_expiry", 0, expires=None),
        user("disable_two_factor", 1, two_factor="disabled", totp_enrolled=False),
        Change("assignment", ("u2@acme.co", "payroll"), "assign", 0, None, None, {}),
    ]
    with begin_write(engine) as conn:
        Executor(conn, orgs[0], NOW).run(changes)
        # What the executor wrote through SQLAlchemy Core before it wrote tuples.
        u = tables.users
        ids = dict(
            conn.execute(sa.select(u.c.email, u.c.id).where(u.c.organization_id == orgs[1])).all()
        )
        role2 = conn.execute(
            sa.select(tables.roles.c.id).where(
                tables.roles.c.organization_id == orgs[1], tables.roles.c.name == "R2"
            )
        ).scalar_one()
        for c in changes[:-1]:
            values = {name: d["after"] for name, d in c.diff.items()}
            if "role" in values:
                values["role_id"] = role2
                del values["role"]
            if values.get("expires"):
                values["expires"] = dt.date.fromisoformat(values["expires"])
            conn.execute(
                sa.update(u).where(u.c.id == ids[c.key[0]]).values(**values, updated_at=NOW)
            )
        account = conn.execute(
            sa.select(tables.bank_accounts.c.id).where(
                tables.bank_accounts.c.organization_id == orgs[1]
            )
        ).scalar_one()
        conn.execute(
            sa.insert(tables.user_bank_accounts).values(
                user_id=ids["u2@acme.co"], bank_account_id=account
            )
        )
    skip = {"id", "organization_id", "role_id", "email_key", "created_at"}
    with engine.connect() as conn:
        ours = org_rows(conn, tables.users, orgs[0], skip)
        assert ours == org_rows(conn, tables.users, orgs[1], skip)
        assert any("Zoë" in row for row in ours)  # the updates were made
        held = sa.select(sa.func.count()).select_from(tables.user_bank_accounts)
        assert conn.execute(held).scalar_one() == 2


class _Address(str):
    """A value that counts how many of its kind are alive, to see whether the writer holds
    the rows it was given (a row itself is copied when converted for the driver)."""

    alive = 0

    def __new__(cls, text: str) -> "_Address":
        cls.alive += 1
        return super().__new__(cls, text)

    def __del__(self) -> None:
        type(self).alive -= 1


def test_a_streamed_insert_takes_its_rows_one_at_a_time(engine: Engine, factory: Factory) -> None:
    """An apply's audit events go in as one executemany over rows made as the driver asks for
    them: at 100k changes, holding them all was 150 MB (bench/README.md). The rows stored make
    the chain the rows were hashed into."""
    org = factory.org("org-s")
    count, made, most = 300, 0, 0
    chained = audit._Chained(org, 0, audit.GENESIS, NOW.replace(microsecond=0))

    def rows() -> Iterator[tuple[Any, ...]]:
        nonlocal most, made
        for i in range(count):
            most = max(most, _Address.alive)
            made += 1
            yield chained.row(
                audit.AuditRecord(
                    operator="op@acme.co",
                    verified_by="totp",
                    action="user.create",
                    address=_Address(f'user["u{i}@acme.co"]'),
                    after={"email": f"u{i}@acme.co", "n": i},
                )
            )

    with begin_write(engine) as conn:
        insert_many(conn, tables.audit_events, audit._INSERTED, rows(), stream=True)
        insert_many(conn, tables.audit_events, audit._INSERTED, iter(()), stream=True)
    assert made == count and most <= 3
    with engine.connect() as conn:
        assert audit.tail(conn, org) == (count, chained.head)
        assert audit.verify_chain(conn, org, chained.head).ok


def test_append_events_hashes_and_writes_each_event_as_it_comes(
    engine: Engine, factory: Factory
) -> None:
    """What apply gives `append_events`: a generator of events, one per change, none held."""
    org = factory.org("org-e")
    most = 0

    def events() -> Iterator[audit.AuditRecord]:
        nonlocal most
        for i in range(200):
            most = max(most, _Address.alive)
            yield audit.AuditRecord(
                operator="op@acme.co",
                verified_by="totp",
                action="user.delete",
                address=_Address(f'user["u{i}@acme.co"]'),
                before={"email": f"u{i}@acme.co"},
            )

    with begin_write(engine) as conn:
        head = audit.append_events(conn, org, events(), NOW)
        assert audit.append_events(conn, org, iter(()), NOW) == head
    assert most <= 3
    with engine.connect() as conn:
        assert audit.tail(conn, org) == (200, head) and audit.verify_chain(conn, org, head).ok
