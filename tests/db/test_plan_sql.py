"""The plan's driver-only read path (db/thin.py) against the SQLAlchemy one: the same
statements (db/plan_sql.py is what the Core SELECTs of snapshot.plan_queries() compile to, for
each backend, and on the connected dialect), the same rows for every named query, the same
live state and hygiene facts, the same URL reading; and it declines, for the SQLAlchemy path to
word the refusal, wherever it is not sure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.cli.test_hygiene import _org
from tests.conftest import Factory
from tests.db import plan_sql as generator
from userctl.clock import utcnow
from userctl.db import migrate, plan_read, plan_sql, thin
from userctl.db.engine import begin_read, normalise_url, redacted, shown
from userctl.db.hygiene import read_hygiene
from userctl.db.snapshot import compiled_plan_query, core_rows, read_live_state

ORG = "acme-payments"


def test_plan_sql_is_what_the_core_queries_compile_to() -> None:
    """Regenerate with `python -m tests.db.plan_sql` after changing a table or a query."""
    assert plan_sql.HEAD_REVISION == migrate.HEAD_REVISION
    assert set(plan_sql.SQL) == set(generator.DIALECTS)
    for backend, dialect in generator.DIALECTS.items():
        assert set(plan_sql.SQL[backend]) == set(plan_read.QUERIES)
        for name in plan_read.QUERIES:
            assert plan_sql.SQL[backend][name] == compiled_plan_query(name, dialect), name


def test_the_connected_dialect_compiles_them_alike(engine: Engine) -> None:
    with engine.connect() as conn:
        dialect = conn.dialect
    for name, params in plan_read.QUERIES.items():
        sql, order, fixed = compiled_plan_query(name, dialect)
        assert (sql, order, fixed) == plan_sql.SQL[dialect.name][name], name
        assert set(order or ()) <= set(params) | set(fixed)


def test_both_paths_read_the_same_rows_state_and_facts(
    engine: Engine, factory: Factory, db_url: str
) -> None:
    _org(factory, engine)  # dormant users, a stale invitation, a privileged user without 2FA
    now = utcnow()
    url = thin.parse(db_url)
    assert url is not None
    with thin._reading(url, 10) as rows:
        assert rows is not None
        org_id = plan_read.organization(rows, ORG)[0]
        params = {"slug": ORG, "org_id": org_id, "cutoff": now - dt.timedelta(days=90)}
        by_driver = {
            name: rows(name, **{p: params[p] for p in wanted})
            for name, wanted in plan_read.QUERIES.items()
        }
        live = plan_read.live_state(rows, ORG)
        facts, settings = plan_read.hygiene(rows, live, now)
    with begin_read(engine) as conn:
        core = core_rows(conn)
        by_core = {
            name: core(name, **{p: params[p] for p in wanted})
            for name, wanted in plan_read.QUERIES.items()
        }
        core_live = read_live_state(conn, ORG)
        core_facts, core_settings = read_hygiene(conn, core_live, now)
    assert by_driver == by_core
    assert {e for (e, *_) in by_driver["dormant"]} == {"ghost@acme.co", "sleepy@acme.co"}
    assert [e for (e, _) in by_driver["invitations"]] == ["late@acme.co"]
    assert live == core_live
    assert settings == core_settings
    assert (facts.accounts, facts.invitations) == (core_facts.accounts, core_facts.invitations)
    assert facts.unenrolled.emails == core_facts.unenrolled.emails == ["bare-admin@acme.co"]

    reads = thin.read_for_plan(db_url, ORG, {}, now)
    assert reads is not None and reads.live == live
    assert reads.shown == shown(normalise_url(db_url))


URLS = [
    "sqlite:///userctl.db",
    "sqlite:////var/lib/userctl/org.db",
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgres://u:secret@db.internal/app",
    "postgresql+psycopg://someone@127.0.0.1:5999/app",
    "mysql://root@127.0.0.1:3306/test",
    "mariadb://a:b@h:1/x_y",
    "mariadb+pymysql://a@h/x",
    "mysql+pymysql://u.x-y:pw@host.example/db-1",
]


@pytest.mark.parametrize("url", URLS)
def test_urls_are_read_as_sqlalchemy_reads_them(url: str) -> None:
    parsed, reference = thin.parse(url), normalise_url(url)
    assert parsed is not None
    assert parsed.shown() == shown(reference)
    assert (parsed.host, parsed.port, parsed.username, parsed.password, parsed.database) == (
        reference.host,
        reference.port,
        reference.username,
        reference.password,
        reference.database,
    )
    assert parsed.redacted() == (None if url.startswith("sqlite") else redacted(reference))


@pytest.mark.parametrize(
    "url",
    [
        "",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:x.db?mode=ro&uri=true",
        "postgresql://u@h/db?sslmode=require",
        "postgresql://u:p%40ss@h/db",
        "postgresql://u@[::1]:5432/db",
        "oracle://u@h/db",
        "postgresql://u@h:port/db",
    ],
)
def test_urls_it_is_not_sure_of_are_left_to_sqlalchemy(url: str) -> None:
    assert thin.parse(url) is None


def test_it_declines_a_missing_file_and_another_revision(
    engine: Engine, factory: Factory, db_url: str, tmp_path: Path
) -> None:
    """The SQLAlchemy path words both ("no database at", "run `userctl db upgrade`")."""
    factory.org(ORG)
    now = utcnow()
    assert thin.read_for_plan(f"sqlite:///{tmp_path / 'absent.db'}", ORG, {}, now) is None
    assert not (tmp_path / "absent.db").exists()  # connecting would have created it
    assert thin.read_for_plan(db_url, ORG, {}, now) is not None
    update = f"UPDATE {migrate.VERSION_TABLE} SET version_num = :r"
    with engine.begin() as conn:
        conn.execute(sa.text(update), {"r": "0001"})
    try:
        assert thin.read_for_plan(db_url, ORG, {}, now) is None
    finally:  # the database serves the next tests
        with engine.begin() as conn:
            conn.execute(sa.text(update), {"r": migrate.HEAD_REVISION})


def test_an_instant_is_bound_on_sqlite_as_sqlalchemy_writes_it() -> None:
    """Both runners bind the dormancy cutoff as text; compared with the stored text, it must be
    the text SQLAlchemy stores (and binds, in the queries the other commands run)."""
    dialect = generator.DIALECTS["sqlite"]
    process = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    for moment in (dt.datetime(2026, 1, 2, 3, 4, 5), dt.datetime(2026, 1, 2, 3, 4, 5, 60)):
        compiled = plan_sql.SQL["sqlite"]["dormant"]
        args = thin.driver_args(compiled, "sqlite", {"org_id": 1, "cutoff": moment})
        assert process(moment) in args


def test_a_stored_instant_is_read_as_sqlalchemy_reads_it_or_left_to_it() -> None:
    """`audit verify`'s scan on the raw SQLite driver reads an event's stored time as SQLAlchemy's
    DateTime reader does; text SQLAlchemy would not have written declines the driver path (the
    scan then runs again through SQLAlchemy, which decides)."""
    dialect = generator.DIALECTS["sqlite"]
    impl = sa.DateTime().dialect_impl(dialect)
    write, read = impl.bind_processor(dialect), impl.result_processor(dialect, None)
    assert write is not None and read is not None
    for moment in (
        dt.datetime(2026, 1, 2, 3, 4, 5),
        dt.datetime(2026, 1, 2, 3, 4, 5, 60),
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
    ):
        stored = write(moment)
        assert thin._stored_instant(stored) == read(stored) == moment
    for odd in ("2026-01-02 03:04:05", "2026-01-02T03:04:05.000000", "2026-01-02", "x", 5, None):
        with pytest.raises(thin._DriverError):
            thin._stored_instant(odd)
