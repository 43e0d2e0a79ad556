"""The driver's own cursor, inside the caller's transaction, where SQLAlchemy's per-row work
would be a layer per row for nothing: big reads as the driver's tuples (the snapshot's users and
assignments, `audit verify`'s chain), bulk writes as tuples through its `executemany`.

Every statement is built from the Core table or a Core SELECT compiled for the backend, so
db/tables.py stays the one place that knows the schema (names, quoting, each column's conversion).
Values read arrive as the driver gives them (booleans 0/1 on SQLite and MariaDB, SQLite's DATETIME
as its stored text): callers convert, `column_reader` giving SQLAlchemy's own conversion of a column
where it has one. Errors come out as the DBAPIError a Core execute raises, so callers and the CLI
treat them alike. A write holds its rows, converted: callers with many rows pass them in parts (the
executor by CHUNK, for the ids it reads back after each).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Iterator, Sequence, Unpack

from sqlalchemy import Column, Select, Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from userctl.db.batches import chunks

# Names of PostgreSQL server-side cursors, unique within the session.
_names = itertools.count(1)


def driver_rows(conn: Connection, query: Select[Unpack[tuple[Any, ...]]]) -> list[Any]:
    """All rows of `query`, fetched at once."""
    rows: list[Any] = []
    for batch in _batches(conn, query, None):
        rows += batch
    return rows


def driver_batches(
    conn: Connection, query: Select[Unpack[tuple[Any, ...]]], batch_size: int
) -> Generator[list[Any], None, None]:
    """The rows of `query` streamed, `batch_size` a fetch, so that memory stays flat however
    many there are: PostgreSQL through a named server-side cursor, MariaDB through an unbuffered
    one (which allows no other statement on the connection until the iteration ends), SQLite
    stepping its cursor."""
    return _batches(conn, query, batch_size)


def column_reader(conn: Connection, column: Column[Any]) -> Callable[[Any], Any] | None:
    """What SQLAlchemy applies to a driver value of `column` on this backend (None: nothing)."""
    reader: Callable[[Any], Any] | None = column.type.dialect_impl(conn.dialect).result_processor(
        conn.dialect, None
    )
    return reader


def _batches(
    conn: Connection, query: Select[Unpack[tuple[Any, ...]]], batch_size: int | None
) -> Generator[list[Any], None, None]:
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else params
    )
    dbapi = conn.connection.driver_connection
    assert dbapi is not None, "a connection inside a transaction has its driver connection"
    error = conn.dialect.loaded_dbapi.Error
    backend = conn.dialect.name
    if batch_size is None or backend == "sqlite":
        cursor = dbapi.cursor()
    elif backend == "postgresql":
        cursor = dbapi.cursor(name=f"userctl_stream_{next(_names)}")
    else:
        cursor = dbapi.cursor(conn.dialect.loaded_dbapi.cursors.SSCursor)
    try:
        cursor.execute(compiled.string, args)
        if batch_size is None:
            yield list(cursor.fetchall())
            return
        while batch := cursor.fetchmany(batch_size):
            yield batch
    except error as exc:
        # The same exception a Core execute raises, so callers and the CLI treat it alike.
        raise DBAPIError.instance(compiled.string, args, exc, error) from exc
    finally:
        cursor.close()


Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Statement:
    sql: str
    # (position, conversion) of each value whose column type converts it for this backend
    # (SQLite's DATE and DATETIME are text, in SQLAlchemy's format).
    converts: tuple[tuple[int, Convert], ...]


def insert_many(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: Iterable[Sequence[Any]],
    *,
    batch: int | None = None,
    stream: bool = False,
) -> None:
    """INSERT each row of `rows` (values in the order of `columns`, which name the Core table's
    column keys) into `table`: one executemany, or one per `batch` rows. Every column with a
    Python-side default must be given: the database would not apply it. `stream`: one
    executemany that takes `rows` as the driver asks for them, so they are never all held (an
    apply's audit events: a row per change); `rows` must then not read through `conn`."""
    statement = _statement(conn.dialect, table, columns, None)
    if stream:
        _stream_many(conn, statement, rows)
    else:
        _run_many(conn, statement, rows, batch)


def update_many(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    where: str,
    rows: Iterable[Sequence[Any]],
    *,
    batch: int | None = None,
) -> None:
    """UPDATE `table` SET `columns` WHERE `where` (a column key) = the row's last value, for each
    row of `rows` (the new values in the order of `columns`, then the key). A column SQLAlchemy
    would set on update (users.updated_at) must be given."""
    _run_many(conn, _statement(conn.dialect, table, columns, where), rows, batch)


def _run_many(
    conn: Connection, statement: _Statement, rows: Iterable[Sequence[Any]], batch: int | None
) -> None:
    if statement.converts:
        rows = map(_converter(statement.converts), rows)
    values = rows if isinstance(rows, list) else list(rows)
    if not values:
        return
    with _cursor(conn, statement.sql) as cursor:
        for part in chunks(values, batch or len(values)):
            # Told to the connection's listeners as Core's own execute tells them, so that what
            # counts or watches statements (db.engine's count, the tests) sees these too.
            conn.dispatch.before_cursor_execute(conn, cursor, statement.sql, part, None, True)
            cursor.executemany(statement.sql, part)


def _stream_many(conn: Connection, statement: _Statement, rows: Iterable[Sequence[Any]]) -> None:
    """One executemany over `rows`, each converted as the driver takes it (sqlite3, psycopg,
    PyMySQL and mysqlclient all iterate what executemany is given)."""
    values = iter(rows)
    first = next(values, None)
    if first is None:
        return
    streamed: Iterator[Sequence[Any]] = itertools.chain((first,), values)
    if statement.converts:
        streamed = map(_converter(statement.converts), streamed)
    with _cursor(conn, statement.sql) as cursor:
        # The rows are not known yet: the listeners are told of the statement, with none.
        conn.dispatch.before_cursor_execute(conn, cursor, statement.sql, (), None, True)
        cursor.executemany(statement.sql, streamed)


def sql_rows(conn: Connection, sql: str, args: Any) -> list[Any]:
    """All rows of `sql` (already compiled for the backend, as plan_sql.py holds them) as the
    driver's own tuples, inside the connection's transaction."""
    with _cursor(conn, sql, args) as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def sql_batches(conn: Connection, sql: str, args: Any, size: int) -> Iterator[list[Any]]:
    """The rows of `sql` (as for `sql_rows`), `size` at a time, so that only a batch of them is
    built as Python objects at once: PostgreSQL's client cursor holds the result already and
    builds rows as they are fetched, MariaDB's unbuffered cursor reads them as they are fetched
    (no other statement until the iteration ends), SQLite steps its own."""
    with _cursor(conn, sql, args, unbuffered=True) as cursor:
        cursor.execute(sql, args)
        while batch := cursor.fetchmany(size):
            yield batch


@contextlib.contextmanager
def _cursor(
    conn: Connection, sql: str, params: Any = None, *, unbuffered: bool = False
) -> Iterator[Any]:
    """A cursor of the connection's driver connection (`unbuffered`: on MariaDB, one that reads
    rows as they are fetched); the driver's errors come out as the DBAPIError a Core execute
    raises (naming `sql`), so callers and the CLI treat them alike."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None, "a connection inside a transaction has its driver connection"
    mariadb = unbuffered and conn.dialect.name in ("mysql", "mariadb")
    cursor = dbapi.cursor(conn.dialect.loaded_dbapi.cursors.SSCursor) if mariadb else dbapi.cursor()
    try:
        yield cursor
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


def _converter(
    converts: tuple[tuple[int, Convert], ...],
) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A row's values converted for the driver. Each conversion is memoised by value for the call:
    a bulk insert repeats a handful of values in these columns (one time, two booleans, a few
    dates), and SQLite's formatting of a time is the costly part of a row."""
    memos: list[tuple[int, Convert, dict[Any, Any]]] = [(i, c, {}) for i, c in converts]

    def converted(row: Sequence[Any]) -> Sequence[Any]:
        out = list(row)
        for i, convert, memo in memos:
            value = out[i]
            try:
                out[i] = memo[value]
            except KeyError:
                out[i] = memo[value] = convert(value)
            except TypeError:  # unhashable
                out[i] = convert(value)
        return out

    return converted


@functools.lru_cache(maxsize=64)
def _statement(
    dialect: Dialect, table: Table, columns: tuple[str, ...], where: str | None
) -> _Statement:
    """The INSERT (`where` None) or UPDATE text of `table` for `dialect`, from the Core table."""
    given = [table.c[key] for key in columns]
    missing = [
        c.key
        for c in table.columns
        if c.key not in columns
        and not c.primary_key
        and (c.onupdate if where is not None else c.default) is not None
    ]
    if missing:
        raise ValueError(f"writing {table.name} must give {', '.join(missing)}")
    if dialect.paramstyle == "qmark":
        mark = "?"
    elif dialect.paramstyle in ("format", "pyformat"):
        mark = "%s"
    else:
        raise ValueError(f"unsupported paramstyle {dialect.paramstyle}")
    quote = dialect.identifier_preparer
    if where is None:
        names = ", ".join(quote.format_column(c) for c in given)
        sql = (
            f"INSERT INTO {quote.format_table(table)} ({names}) "
            f"VALUES ({', '.join([mark] * len(given))})"
        )
    else:
        sets = ", ".join(f"{quote.format_column(c)} = {mark}" for c in given)
        given.append(table.c[where])
        sql = (
            f"UPDATE {quote.format_table(table)} SET {sets} "
            f"WHERE {quote.format_column(table.c[where])} = {mark}"
        )
    converts = []
    for i, column in enumerate(given):
        convert = column.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            converts.append((i, convert))
    return _Statement(sql, tuple(converts))
