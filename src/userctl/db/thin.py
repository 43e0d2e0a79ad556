"""`userctl plan`'s reads on the raw driver (sqlite3, psycopg, PyMySQL), without SQLAlchemy:
importing it (its engine, SQL compiler and dialects) cost a 10k-user plan more than its floor's
whole parse. The statements are the Core SELECTs of `snapshot.plan_queries()`, compiled ahead
into db/plan_sql.py (a test holds them to the tables), run in the same read-only transaction
`engine.begin_read` opens, and turned into the live state by the same db/plan_read.py.

Only the plain case takes this path: a URL of the three backends with no query string, no
percent-escape and no IPv6 host; an existing SQLite file; a reachable server; a schema at the
revision this userctl knows. Anything else, and any error of the driver, gives None: the caller
then reads through SQLAlchemy (`engine.begin_read`), which words every refusal as before."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, TypeVar

from userctl.db.plan_sql import HEAD_REVISION, SQL
from userctl.errors import DatabaseError

if TYPE_CHECKING:
    # Types only: `audit verify`'s scan imports none of the state and hygiene modules, and
    # `plan` none of the chain's.
    from userctl import chain, state
    from userctl.hygiene import HygieneFacts, ReviewSettings

T = TypeVar("T")

# The drivers `engine.normalise_url` picks, by the scheme people write.
_BACKENDS = {
    "sqlite": "sqlite",
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "postgresql+psycopg": "postgresql",
    "mysql": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb": "mysql",
    "mariadb+pymysql": "mysql",
}
# SQLAlchemy's URL pattern (sqlalchemy.engine.url._parse_url), less the parts this path leaves
# to it: the query string, IPv6 hosts, and (checked apart) percent-escapes.
_URL = re.compile(
    r"""(?P<name>[\w\+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?P<host>[^/:\?\[]+)?(?::(?P<port>[^/\?]*))?)?
    (?:/(?P<database>[^\?]*))?$""",
    re.X,
)
# engine.py's timeouts, without importing it.
BUSY_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10
# SQLAlchemy's storage format of a DateTime on SQLite (tests hold it to its bind processor).
SQLITE_INSTANT = "%Y-%m-%d %H:%M:%S.%f"


# The drivers userctl ships with, by the URL spellings people paste (engine.normalise_url).
DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mariadb+pymysql": "mysql+pymysql",
}
# What SQLAlchemy writes back unquoted in a URL.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")


# Neither compared nor printed, and repr would show the password: no __eq__/__hash__/__repr__
# generated at every import (dataclasses compiles each method from source).
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Url:
    scheme: str
    backend: str  # sqlite, postgresql, mysql (MariaDB)
    host: str | None
    port: int | None
    username: str | None
    password: str | None
    database: str | None

    def redacted(self) -> str | None:
        """As `engine.redacted` words the normalised URL, where that is sure (plain names of a
        server: a SQLite file is not connected to, it is opened)."""
        names = (self.username, self.host, self.database)
        if self.backend == "sqlite" or not all(_PLAIN.fullmatch(p or "") for p in names):
            return None
        who = (self.username or "") + (":***" if self.password is not None else "")
        port = f":{self.port}" if self.port is not None else ""
        query = "?charset=utf8mb4" if self.backend == "mysql" else ""
        driver = DRIVERS.get(self.scheme, self.scheme)
        return (
            f"{driver}://{who + '@' if who else ''}{self.host or ''}{port}/{self.database}{query}"
        )

    def shown(self) -> str:
        """As `engine.shown` words it: backend, host, port and name, or a SQLite file's name."""
        if self.backend == "sqlite":
            return f"sqlite: {os.path.basename(self.database or '')}"
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.backend}://{self.host or ''}{port}/{self.database or ''}"


def parse(url: str) -> Url | None:
    """The URL when it is one this path reads as SQLAlchemy would; None otherwise."""
    found = _URL.match(url) if "%" not in url and "?" not in url else None
    if found is None or found["name"] not in _BACKENDS:
        return None
    backend = _BACKENDS[found["name"]]
    port = found["port"]
    if port is not None and not port.isdigit():
        return None
    database = found["database"] or None
    if backend == "sqlite" and (
        not database or database == ":memory:" or database.startswith("file:") or found["host"]
    ):
        return None
    return Url(
        found["name"],
        backend,
        found["host"],
        int(port) if port else None,
        found["username"] or None,
        found["password"],
        database,
    )


# What the reads hand the planner, taken apart at once: never compared or printed (see Url).
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class PlanReads:
    live: state.LiveState
    facts: HygieneFacts
    settings: ReviewSettings
    shown: str  # the database, as a plan's provenance names it


def read_for_plan(
    url: str,
    slug: str,
    like: Mapping[str, state.User],
    now: dt.datetime,
    connect_timeout: int | None = None,
) -> PlanReads | None:
    """What plan_from_file reads, on the driver; None when this path does not apply (above)."""
    from userctl.db import plan_read

    def read(rows: _Rows, parsed: Url) -> PlanReads:
        live = plan_read.live_state(rows, slug, like)
        facts, settings = plan_read.hygiene(rows, live, now)
        return PlanReads(live, facts, settings, parsed.shown())

    return _on_driver(url, connect_timeout, read)


def scan_chain(
    url: str,
    organization: str | None,
    wanted: str | None,
    key: bytes | None,
    connect_timeout: int | None = None,
) -> tuple[str, chain.Scanned] | None:
    """`audit verify`'s scan of the chain of `organization` (None: the only one), on the driver:
    the organization's slug and what the scan found. None when this path does not apply (above)
    or the organization is not plainly there (none, several, or not that one): the SQLAlchemy
    path then reads and words it."""
    from userctl import chain  # here, not at the top: `plan` reads on this module too

    def read(rows: _Rows, parsed: Url) -> tuple[str, chain.Scanned] | None:
        slug = organization
        if slug is None:
            slugs = rows("organization_slugs")
            if len(slugs) != 1:
                return None
            slug = str(slugs[0][0])
        found = rows("organization", slug=slug)
        if len(found) != 1:
            return None
        org_id = int(found[0][0])
        read_time = _stored_instant if parsed.backend == "sqlite" else None
        events = rows.batches("audit_chain", chain.VERIFY_BATCH, org_id=org_id)
        return str(found[0][1]), chain.scan(events, org_id, wanted, key, read_time)

    return _on_driver(url, connect_timeout, read)


def _on_driver(
    url: str, connect_timeout: int | None, read: Callable[[_Rows, Url], T | None]
) -> T | None:
    """`read` in a read-only transaction on the driver; None where this path does not apply
    (above). A server that cannot be reached is refused as the engine refuses it (one wait, not
    two)."""
    parsed = parse(url)
    if parsed is None:
        return None
    try:
        with _reading(parsed, connect_timeout or CONNECT_TIMEOUT_S) as rows:
            return None if rows is None else read(rows, parsed)
    except _DriverError:
        return None


def _stored_instant(value: Any) -> dt.datetime:
    """A time SQLite holds as the text SQLAlchemy writes (SQLITE_INSTANT), as its reader gives it
    back; any other text is left to SQLAlchemy's reader (the scan then falls back)."""
    try:
        instant = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise _DriverError() from exc
    if instant.tzinfo is not None or instant.strftime(SQLITE_INSTANT) != value:
        raise _DriverError()
    return instant


class _DriverError(Exception):
    """Anything the driver raised: the SQLAlchemy path runs again and words it."""


@contextlib.contextmanager
def _reading(url: Url, connect_timeout: int) -> Iterator[_Rows | None]:
    """A read-only transaction on the database, as `engine.begin_read` opens it, at HEAD_REVISION
    (else None); driver errors become _DriverError."""
    try:
        conn, errors = _connect(url, connect_timeout)
    except ImportError as exc:
        raise _DriverError() from exc
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises on connecting
        where = url.redacted()
        if where is None:
            raise _DriverError() from exc
        # engine._connect_error_handler's words.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot connect to the database at {where}: {reason}") from None
    if conn is None:
        yield None
        return
    rows = _Rows(conn, url.backend)
    run = rows.run
    try:
        try:
            if url.backend == "sqlite":
                run("PRAGMA query_only = ON", fetch=False)
                run("BEGIN", fetch=False)
            elif url.backend == "postgresql":
                run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", fetch=False)
            else:
                run("SET TRANSACTION READ ONLY", fetch=False)
            current = run("SELECT version_num FROM alembic_version")
        except errors as exc:
            raise _DriverError() from exc
        if current != [(HEAD_REVISION,)]:
            yield None
            return
        try:
            yield rows
        except errors as exc:
            raise _DriverError() from exc
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
        with contextlib.suppress(Exception):
            conn.close()


class _Rows:
    """plan_read's runner on the driver connection (`rows(name, **params)`), and a streamed read
    of a named query for a long one (`batches`)."""

    def __init__(self, conn: Any, backend: str) -> None:
        self._conn, self._backend, self._statements = conn, backend, SQL[backend]

    def run(self, sql: str, args: Any = (), fetch: bool = True) -> list[Any]:
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql, args)
            return list(cursor.fetchall()) if fetch else []
        finally:
            cursor.close()

    def __call__(self, name: str, **params: Any) -> list[Any]:
        compiled = self._statements[name]
        return self.run(compiled[0], driver_args(compiled, self._backend, params))

    def stream(self, name: str, size: int, **params: Any) -> Iterator[list[Any]]:
        """The rows of a named query as `__call__` gives them, on the same plain cursor, `size` at
        a time (plan_read.Rows.stream): PostgreSQL's client cursor builds the rows of the
        result it holds as they are fetched, MariaDB's unbuffered one reads them as they are
        (no other statement until the iteration ends), SQLite steps its own."""
        cursor = _unbuffered(self._conn) if self._backend == "mysql" else self._conn.cursor()
        yield from self._fetched(cursor, name, size, params)

    def batches(self, name: str, size: int, **params: Any) -> Iterator[list[Any]]:
        """The rows of a named query, `size` a fetch, as db/driver.driver_batches streams them:
        a named cursor on PostgreSQL, an unbuffered one on MariaDB, SQLite stepping its own."""
        if self._backend == "postgresql":
            # Binary rows: the same Python values (str, int, bool, datetime), with no text to
            # parse for the numbers, flags and times (about a tenth of the fetch).
            cursor = self._conn.cursor(name=f"userctl_stream_{name}", binary=True)
        elif self._backend == "mysql":
            cursor = _unbuffered(self._conn)
        else:
            cursor = self._conn.cursor()
        yield from self._fetched(cursor, name, size, params)

    def _fetched(
        self, cursor: Any, name: str, size: int, params: Mapping[str, Any]
    ) -> Iterator[list[Any]]:
        compiled = self._statements[name]
        try:
            cursor.execute(compiled[0], driver_args(compiled, self._backend, params))
            while batch := cursor.fetchmany(size):
                yield batch
        finally:
            cursor.close()


def _unbuffered(conn: Any) -> Any:
    """A PyMySQL cursor that reads rows as they are fetched, not all at execute."""
    import pymysql.cursors  # type: ignore[import-untyped]

    return conn.cursor(pymysql.cursors.SSCursor)


def driver_args(
    compiled: tuple[str, tuple[str, ...] | None, dict[str, Any]],
    backend: str,
    params: Mapping[str, Any],
) -> Any:
    """The driver's arguments of a compiled query (plan_sql.SQL's shape), for both runners: on
    SQLite an instant as SQLAlchemy writes it (text that sorts as the instant), so that a
    comparison with stored instants goes alike."""
    _, order, fixed = compiled
    values = {**fixed, **params}
    if backend == "sqlite":
        values = {
            k: v.strftime(SQLITE_INSTANT) if isinstance(v, dt.datetime) else v
            for k, v in values.items()
        }
    return tuple(values[n] for n in order) if order is not None else values


def _connect(url: Url, connect_timeout: int) -> tuple[Any, Any]:
    """The driver's connection (None for a SQLite file that does not exist: connecting would
    create it) and its Error class."""
    if url.backend == "sqlite":
        import sqlite3

        path = url.database or ""
        if not os.path.exists(path):
            return None, sqlite3.Error
        conn: Any = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA foreign_keys=ON")
        return conn, sqlite3.Error
    credentials: dict[str, Any] = {
        k: v
        for k, v in (("host", url.host), ("port", url.port), ("user", url.username))
        if v is not None
    }
    if url.password is not None:
        credentials["password"] = url.password
    if url.backend == "postgresql":
        import psycopg

        conn = psycopg.connect(dbname=url.database, connect_timeout=connect_timeout, **credentials)
        return conn, psycopg.Error
    import pymysql

    conn = pymysql.connect(
        database=url.database,
        charset="utf8mb4",
        connect_timeout=connect_timeout,
        read_timeout=connect_timeout,
        write_timeout=connect_timeout,
        **credentials,
    )
    # As engine._widen_mysql_timeouts: a big read may take longer than the connect timeout.
    conn._read_timeout = None
    conn._write_timeout = None
    return conn, pymysql.Error
