"""Engines for the three supported backends, with the transaction shapes userctl needs:
read-only snapshots for planning, write transactions for apply, and the organization lock.

SQLite needs care: pysqlite's own transaction handling issues BEGIN lazily (and never before a
SELECT), so a "transaction" would not be one. We switch it off and emit BEGIN ourselves, which
also lets a write transaction take the database write lock up front with BEGIN IMMEDIATE.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.util import asbool

from userctl.db.thin import DRIVERS
from userctl.errors import DatabaseError, LockTimeout, NotFound

# How long a writer waits for SQLite's write lock when the caller gives no lock timeout.
DEFAULT_BUSY_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10

# The execution option a write transaction sets so that the SQLite `begin` hook issues
# BEGIN IMMEDIATE instead of a deferred BEGIN.
_SQLITE_BEGIN = "userctl_sqlite_begin"
# Statements a write transaction has sent so far (conn.info, present only inside begin_write):
# lock_organization refuses to come after any, see there. Those run on the driver's own cursor
# (snapshot's big reads) are not seen, which only makes the check lenient.
_STATEMENTS_SENT = "userctl_statements_sent"


def normalise_url(url: str) -> URL:
    """Accept the URL spellings people paste (`postgres://`, `mysql://`, `mariadb://`) and pick
    the drivers userctl ships with."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise DatabaseError(
            f"cannot parse database URL {_masked(url)!r}: expected e.g. sqlite:///userctl.db, "
            "postgresql://user@host/db or mysql://user@host/db"
        ) from None
    driver = DRIVERS.get(parsed.drivername, parsed.drivername)
    parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def redacted(url: str | URL) -> str:
    """The URL as it may appear in messages: never the password."""
    try:
        return (make_url(url) if isinstance(url, str) else url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def _masked(url: str) -> str:
    """A URL SQLAlchemy cannot parse, as a message may quote it: what stands between the user's
    name and the last '@' (the password, whatever characters it holds) hidden."""
    at = url.rfind("@")
    scheme = url.find("://")
    colon = url.find(":", scheme + 3 if scheme >= 0 else 0, at)
    return url if at < 0 or colon < 0 else f"{url[: colon + 1]}***{url[at:]}"


def shown(url: URL) -> str:
    """The database as a plan tells its readers: backend, host, port and name, or a SQLite file's
    name. Never the user or password, nor the query, which can carry either (or a key file)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        name = url.database or ""
        return f"sqlite: {os.path.basename(name) if name and name != ':memory:' else 'in memory'}"
    port = f":{url.port}" if url.port is not None else ""
    return f"{backend}://{url.host or ''}{port}/{url.database or ''}"


def create_engine_for(url: str, connect_timeout: int = CONNECT_TIMEOUT_S) -> Engine:
    """An engine for `url`. A server that accepts the TCP connection but never answers fails
    within `connect_timeout` seconds on every backend."""
    parsed = normalise_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        connect_args["timeout"] = DEFAULT_BUSY_TIMEOUT_S
    elif backend == "postgresql":
        connect_args["connect_timeout"] = connect_timeout  # libpq's: covers the whole handshake
    elif backend == "mysql":
        # PyMySQL's connect_timeout covers only the TCP connect; the handshake is read with the
        # read timeout, which is widened again once connected (_widen_mysql_timeouts).
        connect_args.update(
            connect_timeout=connect_timeout,
            read_timeout=connect_timeout,
            write_timeout=connect_timeout,
        )
    else:
        raise DatabaseError(
            f"unsupported database {parsed.drivername!r} in {redacted(parsed)}: "
            "use sqlite, postgresql or mysql/mariadb"
        )
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseError(
            f"no driver for {parsed.drivername} ({exc}): install "
            "userctl[postgres] or userctl[mysql]"
        ) from None
    if backend == "sqlite":
        _configure_sqlite(engine)
    elif backend == "mysql":
        event.listen(engine, "connect", _widen_mysql_timeouts)
    event.listen(engine, "handle_error", _connect_error_handler(parsed))
    event.listen(engine, "before_cursor_execute", _count_statement)
    return engine


def _count_statement(conn: Connection, *_args: Any) -> None:
    if _STATEMENTS_SENT in conn.info:
        conn.info[_STATEMENTS_SENT] += 1


def _widen_mysql_timeouts(dbapi_connection: Any, _record: Any) -> None:
    """After the handshake, no read timeout: a statement may legitimately wait longer than the
    connect timeout (for a row lock, bounded by --lock-timeout through innodb_lock_wait_timeout;
    for a big batch). PyMySQL reads the timeouts from these attributes before every read and
    write, and has no public setter for them."""
    dbapi_connection._read_timeout = None
    dbapi_connection._write_timeout = None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, see module doc
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def _connect_error_handler(url: URL) -> Any:
    def handle(ctx: ExceptionContext) -> None:
        # Only failures to reach the database become one clear sentence here; errors of a
        # statement keep their type so callers can react to them (lock timeouts, conflicts).
        if ctx.connection is not None and not ctx.is_disconnect:
            return
        if not isinstance(ctx.original_exception, Exception) or isinstance(
            ctx.original_exception, DatabaseError
        ):
            return
        reason = (
            str(ctx.original_exception).strip().splitlines()[0]
            if str(ctx.original_exception).strip()
            else type(ctx.original_exception).__name__
        )
        raise DatabaseError(f"cannot connect to the database at {redacted(url)}: {reason}")

    return handle


def backend_of(bind: Engine | Connection) -> str:
    """'sqlite', 'postgresql' or 'mysql' (MariaDB reports itself as mysql)."""
    return bind.dialect.name


@contextlib.contextmanager
def begin_read(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction over a consistent snapshot: planning can never write, and its
    several SELECTs see one state of the database."""
    with engine.connect() as conn:
        backend = backend_of(conn)
        if backend == "sqlite":
            # SQLite has no read-only transactions; query_only refuses writes on the connection.
            _sqlite_pragma(conn, "query_only = ON")
        try:
            with conn.begin():
                if backend == "postgresql":
                    conn.exec_driver_sql(
                        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                    )
                elif backend == "mysql":
                    # MariaDB starts the transaction lazily; this must precede the first read.
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield conn
        finally:
            if backend == "sqlite":
                _sqlite_pragma(conn, "query_only = OFF")


def _sqlite_pragma(conn: Connection, pragma: str) -> None:
    # Straight to the driver: through SQLAlchemy the statement would open a transaction.
    conn.connection.driver_connection.execute(f"PRAGMA {pragma}")  # type: ignore[union-attr]


@contextlib.contextmanager
def begin_write(
    engine: Engine, *, lock_timeout_s: float | None = None, organization: str | None = None
) -> Iterator[Connection]:
    """A read-write transaction, committed when the block ends normally, rolled back otherwise.

    On SQLite it takes the database write lock immediately (BEGIN IMMEDIATE), waiting up to
    `lock_timeout_s`; a timeout becomes LockTimeout naming `organization`. On PostgreSQL and
    MariaDB writers only serialise per organization, through `lock_organization`, which must
    then be the transaction's first statement.
    """
    with engine.connect() as conn:
        if backend_of(conn) == "sqlite":
            timeout_ms = int(
                1000 * (DEFAULT_BUSY_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s)
            )
            _sqlite_pragma(conn, f"busy_timeout = {timeout_ms}")
            conn = conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            try:
                transaction = conn.begin()
            except OperationalError as exc:
                if _is_sqlite_busy(exc):
                    raise _lock_timeout(organization) from None
                raise
        else:
            transaction = conn.begin()
        # Counted from here: on SQLite the BEGIN IMMEDIATE above is the lock, not a read.
        conn.info[_STATEMENTS_SENT] = 0
        try:
            with transaction:
                yield conn
        finally:
            conn.info.pop(_STATEMENTS_SENT, None)  # info belongs to the pooled connection
            _restore_mariadb_lock_wait(conn)


def lock_organization(conn: Connection, slug: str, timeout_s: float) -> int:
    """Serialise writers of one organization; returns its id. Must run first in a transaction
    opened by `begin_write`. Raises LockTimeout after `timeout_s`, NotFound if absent.

    First, before any read: MariaDB's REPEATABLE READ snapshot starts at a transaction's first
    plain read, so a writer that read anything (even just to find the organization) before
    waiting here would go on seeing the database as it was before the writer it waited for
    committed: the last audit event's seq among it (a duplicate seq), or a row it then writes
    over. A locking read takes no snapshot, so reads after this one see every committed write.
    Callers that must resolve the organization first do so in a transaction of their own."""
    from userctl.db.tables import organizations

    if conn.info.get(_STATEMENTS_SENT):
        raise RuntimeError(
            "lock_organization must be the first statement of the write transaction "
            f"({conn.info[_STATEMENTS_SENT]} statement(s) were sent before it)"
        )
    backend = backend_of(conn)
    query = select(organizations.c.id).where(organizations.c.slug == slug)
    if backend == "sqlite":
        # BEGIN IMMEDIATE in begin_write already holds the (database-wide) write lock.
        org_id = conn.execute(query).scalar_one_or_none()
    else:
        if backend == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'")
        else:
            # MariaDB has no per-transaction setting: the session's value is saved here and put
            # back by begin_write once the transaction is over, so that the pooled connection
            # does not keep this apply's timeout. Whole seconds; never 0 ("do not wait").
            conn.exec_driver_sql(
                f"SET {_MARIADB_SAVED_LOCK_WAIT} = @@SESSION.innodb_lock_wait_timeout, "
                f"SESSION innodb_lock_wait_timeout = {max(1, round(timeout_s))}"
            )
            conn.info[_MARIADB_SAVED_LOCK_WAIT] = True
        try:
            org_id = conn.execute(query.with_for_update()).scalar_one_or_none()
        except DBAPIError as exc:
            if _is_lock_timeout(exc):
                raise _lock_timeout(slug) from None
            raise
    if org_id is None:
        raise NotFound(f"organization {slug!r} does not exist in this database")
    return int(org_id)


_MARIADB_SAVED_LOCK_WAIT = "@userctl_saved_lock_wait"


def _restore_mariadb_lock_wait(conn: Connection) -> None:
    """Undo lock_organization's session setting, after commit or rollback. Straight to the
    driver, so that SQLAlchemy opens no new transaction for it; a connection that cannot take it
    (it died with the transaction) is discarded rather than returned to the pool."""
    if not conn.info.pop(_MARIADB_SAVED_LOCK_WAIT, False):
        return
    try:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {_MARIADB_SAVED_LOCK_WAIT}")
        finally:
            cursor.close()
    except Exception:  # noqa: BLE001 - whatever the driver raises, the connection must not be reused
        conn.invalidate()


def _lock_timeout(organization: str | None) -> LockTimeout:
    what = f"organization {organization}" if organization else "the database"
    return LockTimeout(f"{what} is locked by another apply; retry later or raise --lock-timeout")


def _is_sqlite_busy(exc: OperationalError) -> bool:
    return "locked" in str(exc.orig).lower() or "busy" in str(exc.orig).lower()


def _is_lock_timeout(exc: DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "55P03":  # PostgreSQL lock_not_available
        return True
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] == 1205  # MariaDB ER_LOCK_WAIT_TIMEOUT


def sqlite_path(url: str) -> str | None:
    """The file of a file-backed SQLite URL, else None (server databases, in-memory ones): the
    one answer to which file a command's database is, so that no write replaces it."""
    parsed = normalise_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") and _is_true(parsed.query.get("uri")):
        # Opened as a SQLite URI (as SQLAlchemy's driver decides it): the file is the URI's
        # path, not a file named "file:...".
        return _uri_file(database[len("file:") :], parsed.query.get("mode"))
    return os.path.abspath(database)


def _is_true(option: str | tuple[str, ...] | None) -> bool:
    """Whether a URL's query option is true as SQLAlchemy reads it (anything else it refuses)."""
    try:
        return isinstance(option, str) and bool(asbool(option))
    except ValueError:
        return False


def _uri_file(uri: str, mode: str | tuple[str, ...] | None) -> str | None:
    """The file a SQLite URI filename (after `file:`) names, None for an in-memory database
    (https://www.sqlite.org/uri.html): an optional `//localhost` authority, a percent-encoded
    path, and its own query and fragment."""
    from urllib.parse import parse_qs, unquote

    path, _, query = uri.partition("#")[0].partition("?")
    if path.startswith("//"):
        path = "/" + path[2:].partition("/")[2]
    path = unquote(path)
    # The URL's own query (where SQLAlchemy takes it from) and the filename's.
    modes = {*parse_qs(query).get("mode", ()), *([mode] if isinstance(mode, str) else mode or ())}
    if not path or path == ":memory:" or "memory" in modes:
        return None
    return os.path.abspath(path)
