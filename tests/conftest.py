"""The backend harness: every test that asks for `db_url` (or `engine`, `runner`, `factory`) runs
on SQLite, PostgreSQL and MariaDB.

Several test runs share the database servers of this machine, so each session creates its own
uniquely named database per server (migrated once, dropped at the end) and every test starts
from empty tables. SQLite tests get a copy of a migrated template file in their tmp_path.

A test meant for some backends only overrides the parameter:
`@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])`.

A server that cannot be reached skips its tests, except under CI (env CI set, not "false"/"0"),
where it fails them: a pipeline must never go green by testing nothing.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import click.testing
import pyotp
import pytest
from sqlalchemy.engine import Engine, make_url

from userctl import state
from userctl.apply import otp
from userctl.db import rows
from userctl.db.engine import create_engine_for
from userctl.db.migrate import upgrade
from userctl.db.models import Base

if TYPE_CHECKING:
    from tests.apply.apply_helpers import Org

BACKENDS = ("sqlite", "postgresql", "mariadb")
SERVER_URLS = {
    "postgresql": (
        "USERCTL_TEST_POSTGRES_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ),
    "mariadb": ("USERCTL_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
SERVER_NAMES = {"postgresql": "PostgreSQL", "mariadb": "MariaDB"}


def in_ci() -> bool:
    value = os.environ.get("CI", "")
    return value.strip().lower() not in ("", "false", "0")


def _unavailable(backend: str, url: str, reason: str) -> None:
    message = f"{SERVER_NAMES[backend]} not reachable at {url}: {reason}"
    if in_ci():
        pytest.fail(message + " (CI is set: database tests must not be skipped)", pytrace=False)
    pytest.skip(message)


class Server:
    """One database server, on which this session creates and drops its own databases."""

    def __init__(self, backend: str) -> None:
        env, default = SERVER_URLS[backend]
        self.backend = backend
        self.url = make_url(os.environ.get(env) or default)
        self.display = self.url.render_as_string(hide_password=True)
        self.prefix = f"userctl_t_{os.getpid()}_{secrets.token_hex(3)}"
        self._counter = itertools.count()
        self._created: list[str] = []
        self._admin: Engine | None = None
        self.error: str | None = None
        try:
            # AUTOCOMMIT: CREATE/DROP DATABASE cannot run inside a transaction on PostgreSQL.
            self._admin = create_engine_for(
                self.url.render_as_string(hide_password=False)
            ).execution_options(isolation_level="AUTOCOMMIT")
            with self._admin.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable", reported once
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.error = (
                reason.split(": ", 1)[1]
                if reason.startswith("cannot connect to the database")
                else reason
            )

    def require(self) -> None:
        if self.error is not None:
            _unavailable(self.backend, self.display, self.error)

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        self.require()
        assert self._admin is not None
        name = f"{self.prefix}_{next(self._counter)}"
        with self._admin.connect() as conn:
            if self.backend == "mariadb":
                conn.exec_driver_sql(
                    f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            else:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        self._created.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        assert name is not None and name.startswith(self.prefix)
        assert self._admin is not None
        with self._admin.connect() as conn:
            if self.backend == "postgresql":
                # Engines built by CLI invocations may still hold idle connections.
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        self._created.remove(name)

    def close(self) -> None:
        for name in list(self._created):
            try:
                self.drop_database(
                    self.url.set(database=name).render_as_string(hide_password=False)
                )
            except Exception:  # noqa: BLE001 - best effort at teardown; the name is unique anyway
                pass
        if self._admin is not None:
            self._admin.dispose()


@dataclass
class Databases:
    """Per session: the servers (contacted lazily, once) and one migrated database per backend."""

    tmp: Path
    servers: dict[str, Server] = field(default_factory=dict)
    migrated: dict[str, str] = field(default_factory=dict)
    engines: dict[str, Engine] = field(default_factory=dict)

    def server(self, backend: str) -> Server:
        if backend not in self.servers:
            self.servers[backend] = Server(backend)
        return self.servers[backend]

    def migrated_url(self, backend: str) -> str:
        if backend not in self.migrated:
            if backend == "sqlite":
                url = f"sqlite:///{self.tmp / 'template.db'}"
            else:
                url = self.server(backend).create_database()
            engine = create_engine_for(url)
            upgrade(engine)
            self.migrated[backend] = url
            self.engines[backend] = engine
        return self.migrated[backend]

    def clean(self, backend: str) -> None:
        """Empty every table (children first), keeping the schema and its version row."""
        engine = self.engines[backend]
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        for server in self.servers.values():
            server.close()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("userctl-dbs"))
    yield dbs
    dbs.close()


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test: 'sqlite', 'postgresql' or 'mariadb'."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, databases: Databases, tmp_path: Path) -> str:
    """URL of a migrated database with empty tables, private to this test."""
    if backend == "sqlite":
        template = databases.migrated_url("sqlite")
        path = tmp_path / "t.db"
        shutil.copyfile(make_url(template).database or "", path)
        return f"sqlite:///{path}"
    if backend != "sqlite":
        databases.server(backend).require()
    url = databases.migrated_url(backend)
    databases.clean(backend)
    return url


@pytest.fixture
def empty_db_url(backend: str, databases: Databases, tmp_path: Path) -> Iterator[str]:
    """URL of a database that exists but was never migrated (SQLite: a file not yet created)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server = databases.server(backend)
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


@dataclass
class Runner:
    """Runs the real CLI in-process against this test's database."""

    db_url: str

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str | None] | None = None
    ) -> click.testing.Result:
        from userctl.cli.main import cli

        return click.testing.CliRunner().invoke(
            cli,
            ["--database-url", self.db_url, *args],
            input=input or "",
            env=env,
            catch_exceptions=False,
        )


@pytest.fixture
def runner(db_url: str) -> Runner:
    return Runner(db_url)


@dataclass
class Operator:
    user_id: int
    email: str
    secret: str

    def code(self, at: float | None = None) -> str:
        totp = pyotp.TOTP(self.secret)
        return totp.now() if at is None else totp.at(at)


class Factory:
    """Inserts live rows directly with SQLAlchemy Core, for tests that need a given live state.
    Unspecified user fields get valid, unique values."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._seq = itertools.count(1)

    def org(
        self,
        slug: str = "acme-payments",
        *,
        name: str | None = None,
        two_factor_policy: str = "destructive",
        min_admins: int = 1,
        four_eyes: bool = False,
        serial: int = 0,
    ) -> int:
        org = state.Organization(
            slug=slug,
            name=name or slug,
            two_factor_policy=two_factor_policy,
            min_admins=min_admins,
            four_eyes=four_eyes,
            serial=serial,
        )
        with self.engine.begin() as conn:
            return rows.insert_organization(conn, org)

    def role(
        self, org_id: int, name: str, permissions: Sequence[str] = (), description: str = ""
    ) -> int:
        with self.engine.begin() as conn:
            return rows.insert_role(
                conn, org_id, state.Role(name, description, frozenset(permissions))
            )

    def user(self, org_id: int, email: str, role_id: int, **fields: Any) -> int:
        n = next(self._seq)
        values: dict[str, Any] = {
            "first_name": "Test",
            "last_name": f"User{n}",
            "id_type": "CC",
            "id_number": f"{9000000 + n}",
            "phone": f"+5730000{n:05d}",
            "role": "",
            "status": "active",
            "two_factor": "optional",
        }
        values.update(fields)
        with self.engine.begin() as conn:
            return rows.insert_user(
                conn, org_id, state.User(email=email.lower(), **values), role_id
            )

    def bank_account(
        self,
        org_id: int,
        key: str,
        *,
        bank: str = "Bancolombia",
        account_type: str = "savings",
        masked_number: str = "****1234",
        currency: str = "COP",
    ) -> int:
        with self.engine.begin() as conn:
            return rows.insert_bank_account(
                conn, org_id, state.BankAccount(key, bank, account_type, masked_number, currency)
            )

    def assign(self, user_id: int, bank_account_id: int) -> None:
        with self.engine.begin() as conn:
            rows.insert_assignments(conn, [(user_id, bank_account_id)])

    def enrol(self, user_id: int, secret: str | None = None) -> str:
        """Give the user a TOTP authenticator (stored as `init`/`mfa enroll` would);
        returns the secret."""
        secret = secret or pyotp.random_base32(32)
        with self.engine.begin() as conn:
            otp.store_totp_secret(conn, user_id, secret)
        return secret

    def operator(self, org_id: int, email: str, role_id: int, **fields: Any) -> Operator:
        """An active user with an enrolled authenticator, able to confirm with real TOTP codes."""
        user_id = self.user(
            org_id, email, role_id, status="active", two_factor="required", **fields
        )
        return Operator(user_id, email.lower(), self.enrol(user_id))


@pytest.fixture
def factory(engine: Engine) -> Factory:
    return Factory(engine)


@pytest.fixture
def org(factory: Factory) -> "Org":
    """The apply tests' organization (tests/apply/apply_helpers.build_org); a
    module may override it."""
    from tests.apply.apply_helpers import build_org

    return build_org(factory)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell (USERCTL_OTP_CODE, USERCTL_SMTP_URL...) must not change
    what a test sees."""
    from tests.apply.apply_helpers import clean_environment

    clean_environment(monkeypatch)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `-m "not backend"` runs only the pure tests.
    for item in items:
        if "backend" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.backend)
