"""Engine, migrations and transaction shapes, on every backend."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from tests.conftest import Factory
from userctl.db import migrate, models
from userctl.db.engine import (
    begin_read,
    begin_write,
    create_engine_for,
    lock_organization,
    normalise_url,
)
from userctl.db.models import Base
from userctl.errors import DatabaseError, LockTimeout, NotFound


def test_migrated_database_is_at_head(engine: Engine) -> None:
    assert migrate.current(engine) == migrate.HEAD_REVISION
    migrate.require_current(engine)


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    assert migrate.script_head() == migrate.HEAD_REVISION


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_every_model_table_exists_and_nothing_else(engine: Engine) -> None:
    tables = set(sa.inspect(engine).get_table_names())
    assert tables == set(Base.metadata.tables) | {migrate.VERSION_TABLE}


# DESIGN §1b, written out here rather than read from the models: the platform's dashboard and
# registration flow query these names, so renaming one in the models must fail this test.
CONTRACT_COLUMNS = {
    "organizations": {"id", "slug", "name", "two_factor_policy", "min_admins", "four_eyes"},
    "roles": {"id", "organization_id", "name", "description"},
    "role_permissions": {"role_id", "permission"},
    "users": {
        "id",
        "organization_id",
        "email",
        "id_type",
        "id_number",
        "phone",
        "first_name",
        "last_name",
        "role_id",
        "status",
        "two_factor",
        "totp_enrolled",
        "force_password_reset",
        "created_at",
        "updated_at",
    },
    "bank_accounts": {
        "id",
        "organization_id",
        "key",
        "bank",
        "account_type",
        "masked_number",
        "currency",
    },
    "user_bank_accounts": {"user_id", "bank_account_id"},
}
BOOKKEEPING_TABLES = {"totp_secrets", "audit_events", "approvals", "otp_uses", "notifications"}
CONTRACT_UNIQUE = {
    "organizations": {("slug",)},
    "roles": {("organization_id", "name")},
    "users": {("organization_id", "email"), ("organization_id", "id_type", "id_number")},
    "bank_accounts": {("organization_id", "key")},
}
CONTRACT_FOREIGN_KEYS = {
    "roles": {(("organization_id",), "organizations", ("id",))},
    "role_permissions": {(("role_id",), "roles", ("id",))},
    "users": {(("organization_id",), "organizations", ("id",)), (("role_id",), "roles", ("id",))},
    "bank_accounts": {(("organization_id",), "organizations", ("id",))},
    "user_bank_accounts": {
        (("user_id",), "users", ("id",)),
        (("bank_account_id",), "bank_accounts", ("id",)),
    },
}


def _unique_column_sets(inspector: sa.Inspector, table: str) -> set[tuple[str, ...]]:
    # A unique constraint may surface as a constraint or as a unique index, depending on the
    # backend.
    found = {tuple(sorted(u["column_names"])) for u in inspector.get_unique_constraints(table)}
    found |= {
        tuple(sorted(c for c in i["column_names"] if c))
        for i in inspector.get_indexes(table)
        if i["unique"]
    }
    return found


def test_the_tables_the_platform_relies_on_have_their_names_keys_and_references(
    engine: Engine,
) -> None:
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names())
    assert set(CONTRACT_COLUMNS) | BOOKKEEPING_TABLES <= tables
    for table, columns in CONTRACT_COLUMNS.items():
        assert columns <= {c["name"] for c in inspector.get_columns(table)}, table
    for table, uniques in CONTRACT_UNIQUE.items():
        assert {tuple(sorted(u)) for u in uniques} <= _unique_column_sets(inspector, table), table
    for table, references in CONTRACT_FOREIGN_KEYS.items():
        found = {
            (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
            for fk in inspector.get_foreign_keys(table)
        }
        assert references <= found, table
    # The link tables hold each pair once.
    assert set(inspector.get_pk_constraint("role_permissions")["constrained_columns"]) == {
        "role_id",
        "permission",
    }
    assert set(inspector.get_pk_constraint("user_bank_accounts")["constrained_columns"]) == {
        "user_id",
        "bank_account_id",
    }


def test_read_transactions_refuse_writes(engine: Engine, factory: Factory) -> None:
    factory.org("acme-payments")
    with pytest.raises(sa.exc.DBAPIError):
        with begin_read(engine) as conn:
            conn.execute(sa.update(models.Organization).values(name="changed"))
    with engine.connect() as conn:
        assert conn.execute(sa.select(models.Organization.name)).scalar_one() == "acme-payments"
    with begin_write(engine) as conn:  # the pooled connection is writable again afterwards
        conn.execute(sa.update(models.Organization).values(name="changed"))
    with engine.connect() as conn:
        assert conn.execute(sa.select(models.Organization.name)).scalar_one() == "changed"


def test_write_transactions_roll_back_on_error(engine: Engine, factory: Factory) -> None:
    factory.org("acme-payments")
    with pytest.raises(RuntimeError):
        with begin_write(engine) as conn:
            conn.execute(sa.update(models.Organization).values(name="changed"))
            raise RuntimeError("boom")
    with engine.connect() as conn:
        assert conn.execute(sa.select(models.Organization.name)).scalar_one() == "acme-payments"


def test_a_read_transaction_sees_one_state(engine: Engine, factory: Factory) -> None:
    """Planning's several SELECTs must see one state. (pysqlite alone would not even BEGIN
    before a SELECT, so a concurrent writer could commit between two of them.)"""
    org = factory.org("acme-payments")

    def count_roles(conn: sa.Connection) -> int:
        return conn.execute(sa.select(sa.func.count()).select_from(models.Role)).scalar_one()

    with begin_read(engine) as conn:
        first = count_roles(conn)
        writer = create_engine_for(engine.url.render_as_string(hide_password=False))
        try:
            with begin_write(writer, lock_timeout_s=0.2) as other:
                other.execute(
                    sa.insert(models.Role).values(organization_id=org, name="New", description="")
                )
        except sa.exc.OperationalError:
            pass  # SQLite: the reader's shared lock keeps the writer from committing at all
        finally:
            writer.dispose()
        assert count_roles(conn) == first


def test_second_writer_of_an_organization_times_out_with_a_clear_refusal(
    engine: Engine, factory: Factory
) -> None:
    factory.org("acme-payments")
    with begin_write(engine, lock_timeout_s=5, organization="acme-payments") as holder:
        assert lock_organization(holder, "acme-payments", 5) > 0
        other = create_engine_for(engine.url.render_as_string(hide_password=False))
        try:
            with pytest.raises(
                LockTimeout, match="organization acme-payments is locked by another apply"
            ):
                with begin_write(other, lock_timeout_s=0.2, organization="acme-payments") as conn:
                    lock_organization(conn, "acme-payments", 0.2)
        finally:
            other.dispose()


@pytest.mark.parametrize(
    "backend", ["postgresql", "mariadb"]
)  # SQLite has one database-wide write lock
def test_organizations_lock_independently_on_servers(engine: Engine, factory: Factory) -> None:
    factory.org("acme-payments")
    factory.org("other-co")
    with begin_write(engine) as holder:
        lock_organization(holder, "acme-payments", 5)
        with begin_write(engine) as conn:
            assert lock_organization(conn, "other-co", 1) > 0


def test_locking_an_unknown_organization_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="'ghost'"):
        with begin_write(engine) as conn:
            lock_organization(conn, "ghost", 1)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:pw@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("mysql://root@h/db", "mysql+pymysql://root@h/db?charset=utf8mb4"),
        ("mariadb://root@h/db", "mysql+pymysql://root@h/db?charset=utf8mb4"),
        ("mysql+pymysql://root@h/db?charset=latin1", "mysql+pymysql://root@h/db?charset=latin1"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_urls_are_normalised_to_the_shipped_drivers(given: str, expected: str) -> None:
    assert normalise_url(given).render_as_string(hide_password=True) == expected


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/x",
        "mysql://root@127.0.0.1:1/x",
        "sqlite:////nonexistent-dir/x.db",
    ],
)
def test_unreachable_database_is_one_clear_database_error(url: str) -> None:
    engine = create_engine_for(url)
    with pytest.raises(DatabaseError, match="cannot connect to the database at"):
        with engine.connect():
            pass


def test_unknown_backend_is_a_database_error() -> None:
    with pytest.raises(DatabaseError, match="unsupported database 'oracle'"):
        create_engine_for("oracle://u@h/db")


def test_password_never_appears_in_messages() -> None:
    engine = create_engine_for("postgresql://u:s3cret@127.0.0.1:1/x")
    with pytest.raises(DatabaseError) as info:
        engine.connect()
    assert "s3cret" not in str(info.value)


def test_uninitialised_database_is_refused_with_what_to_run(empty_db_url: str) -> None:
    engine = create_engine_for(empty_db_url)
    try:
        with pytest.raises(DatabaseError, match=r"`userctl (init|db upgrade)"):
            migrate.require_current(engine)
    finally:
        engine.dispose()


def test_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'missing.db'}")
    with pytest.raises(DatabaseError, match="no database at"):
        migrate.require_current(engine)
    assert not (tmp_path / "missing.db").exists()


def test_database_at_an_unknown_revision_asks_for_a_newer_userctl(empty_db_url: str) -> None:
    # A database of its own: the shared per-session database must keep its real revision.
    engine = create_engine_for(empty_db_url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'"))
        with pytest.raises(DatabaseError, match="revision 9999.*upgrade userctl"):
            migrate.require_current(engine)
    finally:
        engine.dispose()


def test_upgrade_of_an_empty_database_reaches_head_and_is_idempotent(empty_db_url: str) -> None:
    engine = create_engine_for(empty_db_url)
    try:
        assert migrate.upgrade(engine) == (None, migrate.HEAD_REVISION)
        assert migrate.upgrade(engine) == (migrate.HEAD_REVISION, migrate.HEAD_REVISION)
        migrate.require_current(engine)
    finally:
        engine.dispose()


def test_every_migration_file_is_shipped_as_package_data() -> None:
    """A non-editable install only carries what pyproject's package-data names."""
    import fnmatch
    import tomllib

    package = Path(migrate.__file__).resolve().parent.parent  # src/userctl
    pyproject = tomllib.loads(
        (package.parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    )
    patterns = pyproject["tool"]["setuptools"]["package-data"]["userctl"]
    shipped = [
        p.relative_to(package).as_posix()
        for p in migrate.MIGRATIONS_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert "db/migrations/versions/0001_initial.py" in shipped
    missing = [
        f for f in shipped if not any(fnmatch.fnmatchcase(f, pattern) for pattern in patterns)
    ]
    assert missing == []


def test_a_database_at_0001_upgrades_and_keeps_its_audit_events(empty_db_url: str) -> None:
    # 0002 widens audit_events.verified_by: an existing chain must survive the change (SQLite
    # copies the table in batch mode), and the column must then take "approval:" + any email.
    from alembic import command

    engine = create_engine_for(empty_db_url)
    try:
        config = migrate.alembic_config()
        with begin_write(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        row = {
            "organization_id": 1,
            "seq": 1,
            "created_at": dt.datetime(2026, 1, 1),
            "operator": "root@acme.co",
            "verified_by": "totp",
            "plan_digest": None,
            "action": "user.create",
            "address": 'user["a@acme.co"]',
            "before": None,
            "after": "{}",
            "prev_hash": "0" * 64,
            "hash": "1" * 64,
            "hmac": None,
        }
        with engine.begin() as conn:
            conn.execute(
                sa.insert(models.Organization).values(
                    id=1,
                    slug="acme",
                    name="Acme",
                    two_factor_policy="destructive",
                    min_admins=1,
                    four_eyes=False,
                    serial=0,
                    created_at=dt.datetime(2026, 1, 1),
                )
            )
            conn.execute(sa.insert(models.AuditEvent).values(**row))
        assert migrate.upgrade(engine) == ("0001", migrate.HEAD_REVISION)
        long = "approval:" + "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 61
        assert len(long) == len("approval:") + 254
        with engine.begin() as conn:
            conn.execute(
                sa.insert(models.AuditEvent).values(**{**row, "seq": 2, "verified_by": long})
            )
            kept = (
                conn.execute(
                    sa.select(models.AuditEvent.verified_by).order_by(models.AuditEvent.seq)
                )
                .scalars()
                .all()
            )
        assert kept == ["totp", long]
    finally:
        engine.dispose()
