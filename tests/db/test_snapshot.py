"""The live snapshot reader, on every backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Factory
from userctl import state
from userctl.clock import utcnow
from userctl.db import models
from userctl.db.engine import begin_read
from userctl.db.snapshot import organization_slugs, read_live_state, read_roles, read_users
from userctl.errors import NotFound


def _populate(factory: Factory) -> int:
    """acme-payments with two roles, three users in three statuses and two bank accounts,
    plus a second organization whose rows must never leak into acme's snapshot."""
    org = factory.org(
        "acme-payments", name="ACME Payments", two_factor_policy="all", min_admins=2, four_eyes=True
    )
    admin = factory.role(
        org, "SuperAdmin", ["users.manage", "users.view", "roles.manage"], "Full access"
    )
    ops = factory.role(org, "Payouts Operator", ["payouts.view"])
    factory.role(org, "Empty")
    ana = factory.user(
        org,
        "ana.perez@acme.co",
        admin,
        first_name="Ana",
        last_name="Pérez",
        id_type="CC",
        id_number="1020304050",
        phone="+573001112233",
        status="active",
        two_factor="required",
    )
    factory.enrol(ana)
    bob = factory.user(org, "bob@acme.co", ops, status="invited", force_password_reset=True)
    factory.user(org, "carl@acme.co", ops, status="inactive", two_factor="disabled")
    main = factory.bank_account(
        org, "ops-main", bank="Bancolombia", account_type="checking", masked_number="****4321"
    )
    usd = factory.bank_account(org, "usd", currency="USD")
    factory.assign(ana, main)
    factory.assign(ana, usd)
    factory.assign(bob, main)

    other = factory.org("other-co")
    other_role = factory.role(other, "SuperAdmin", ["audit.view"])
    stranger = factory.user(other, "ana.perez@acme.co", other_role)
    factory.assign(stranger, factory.bank_account(other, "ops-main"))
    factory.bank_account(other, "other-only")
    return org


def test_reads_one_organization_completely(engine: Engine, factory: Factory) -> None:
    _populate(factory)
    with begin_read(engine) as conn:
        live = read_live_state(conn, "acme-payments")

    assert live.organization == state.Organization(
        slug="acme-payments",
        name="ACME Payments",
        two_factor_policy="all",
        min_admins=2,
        four_eyes=True,
        serial=0,
    )
    assert live.roles == {
        "SuperAdmin": state.Role(
            "SuperAdmin", "Full access", frozenset({"users.manage", "users.view", "roles.manage"})
        ),
        "Payouts Operator": state.Role("Payouts Operator", "", frozenset({"payouts.view"})),
        "Empty": state.Role("Empty", "", frozenset()),
    }
    assert set(live.bank_accounts) == {"ops-main", "usd"}
    assert live.bank_accounts["ops-main"] == state.BankAccount(
        "ops-main", "Bancolombia", "checking", "****4321", "COP"
    )
    assert live.users["ana.perez@acme.co"] == state.User(
        email="ana.perez@acme.co",
        first_name="Ana",
        last_name="Pérez",
        id_type="CC",
        id_number="1020304050",
        phone="+573001112233",
        role="SuperAdmin",
        status="active",
        two_factor="required",
        force_password_reset=False,
        bank_accounts=frozenset({"ops-main", "usd"}),
        totp_enrolled=True,
    )
    bob = live.users["bob@acme.co"]
    assert (
        bob.status,
        bob.role,
        bob.force_password_reset,
        bob.bank_accounts,
        bob.totp_enrolled,
    ) == ("invited", "Payouts Operator", True, frozenset({"ops-main"}), False)
    carl = live.users["carl@acme.co"]
    assert (carl.status, carl.two_factor, carl.bank_accounts) == (
        "inactive",
        "disabled",
        frozenset(),
    )
    assert set(live.users) == {"ana.perez@acme.co", "bob@acme.co", "carl@acme.co"}


def test_emails_are_keyed_lower_case_even_if_stored_otherwise(
    engine: Engine, factory: Factory
) -> None:
    org = factory.org()
    role = factory.role(org, "R")
    user_id = factory.user(org, "mixed@acme.co", role)
    with engine.begin() as conn:  # the platform might write mixed case despite the contract
        conn.execute(
            sa.update(models.User).where(models.User.id == user_id).values(email="Mixed@ACME.co")
        )
    with begin_read(engine) as conn:
        live = read_live_state(conn, "acme-payments")
    assert list(live.users) == ["mixed@acme.co"]
    assert live.users["mixed@acme.co"].email == "mixed@acme.co"


def test_unknown_organization_is_not_found_and_names_it(engine: Engine, factory: Factory) -> None:
    factory.org("acme-payments")
    with begin_read(engine) as conn, pytest.raises(NotFound, match="'nope'.*acme-payments"):
        read_live_state(conn, "nope")


def test_organization_slugs_are_sorted(engine: Engine, factory: Factory) -> None:
    for slug in ("zeta", "acme", "mid"):
        factory.org(slug)
    with begin_read(engine) as conn:
        assert organization_slugs(conn) == ["acme", "mid", "zeta"]


def test_partial_reads_return_the_same_records_for_just_those_rows(
    engine: Engine, factory: Factory
) -> None:
    org = _populate(factory)
    with begin_read(engine) as conn:
        live = read_live_state(conn, "acme-payments")
        users = read_users(conn, org, ["ana.perez@acme.co", "carl@acme.co", "ghost@acme.co"])
        roles = read_roles(conn, org, ["SuperAdmin", "Ghost"])
    assert users == {e: live.users[e] for e in ("ana.perez@acme.co", "carl@acme.co")}
    assert roles == {"SuperAdmin": live.roles["SuperAdmin"]}


def test_partial_reads_handle_more_rows_than_one_in_list_chunk(
    engine: Engine, factory: Factory
) -> None:
    org = factory.org()
    role = factory.role(org, "R", ["users.view"])
    account = factory.bank_account(org, "main")
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(models.User),
            [
                dict(
                    organization_id=org,
                    email=f"u{i}@acme.co",
                    id_type="CC",
                    id_number=f"{100000 + i}",
                    phone=f"+5730{i:08d}",
                    first_name="F",
                    last_name="L",
                    role_id=role,
                    status="active",
                    two_factor="optional",
                    totp_enrolled=False,
                    force_password_reset=False,
                    created_at=now,
                    updated_at=now,
                )
                for i in range(1200)
            ],
        )
        ids = conn.execute(sa.select(models.User.id)).scalars().all()
        conn.execute(
            sa.insert(models.UserBankAccount),
            [{"user_id": i, "bank_account_id": account} for i in ids],
        )
    wanted = [f"u{i}@acme.co" for i in range(0, 1200, 1)]
    with begin_read(engine) as conn:
        users = read_users(conn, org, wanted)
    assert len(users) == 1200
    assert all(u.bank_accounts == frozenset({"main"}) and u.role == "R" for u in users.values())


def test_the_number_of_queries_does_not_grow_with_users(engine: Engine, factory: Factory) -> None:
    org = factory.org()
    role = factory.role(org, "R", ["users.view"])
    account = factory.bank_account(org, "main")

    def count_queries() -> int:
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        sa.event.listen(engine, "before_cursor_execute", listener)
        try:
            with begin_read(engine) as conn:
                read_live_state(conn, "acme-payments")
        finally:
            sa.event.remove(engine, "before_cursor_execute", listener)
        return len(statements)

    factory.assign(factory.user(org, "first@acme.co", role), account)
    few = count_queries()
    for i in range(30):
        factory.assign(factory.user(org, f"u{i}@acme.co", role), account)
    assert count_queries() == few


def test_a_row_equal_to_a_held_user_is_that_user_and_any_difference_builds_a_new_one(
    engine: Engine, factory: Factory
) -> None:
    """The plan hands the file's users to the snapshot (`like`): a row equal to one in every
    field comes back as that very object (built once); a row differing in any one field (the
    key aside) is read as without `like`."""
    from dataclasses import fields, replace

    _populate(factory)
    with begin_read(engine) as conn:
        plain = read_live_state(conn, "acme-payments")
        held = {email: replace(user) for email, user in plain.users.items()}
        same = read_live_state(conn, "acme-payments", like=held)
        assert same == plain
        assert all(same.users[e] is held[e] for e in plain.users)

        other: dict[str, object] = {
            "first_name": "Zoe",
            "last_name": "Zed",
            "id_type": "PP",
            "id_number": "99999999",
            "phone": "+570000000000",
            "role": "Empty",
            "status": "active",
            "two_factor": "optional",
            "force_password_reset": True,
            "bank_accounts": frozenset({"usd"}),
            "totp_enrolled": False,
            "expires": "2030-01-01",
        }
        for name in (f.name for f in fields(state.User) if f.name != "email"):
            differing = {
                email: replace(
                    user,
                    **{name: other[name] if getattr(user, name) != other[name] else "x"},
                )
                for email, user in plain.users.items()
            }
            read = read_live_state(conn, "acme-payments", like=differing)
            assert read == plain, name
            assert not any(read.users[e] is differing[e] for e in plain.users), name
