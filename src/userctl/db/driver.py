"""Rows as the driver's own tuples, for the big reads (the snapshot's users and assignments,
`audit verify`'s chain) where SQLAlchemy's result rows would add a layer per row for nothing:
a Core SELECT, compiled for the backend (so the schema stays known in one place, db/tables.py),
run on the driver's cursor inside the connection's transaction. Values arrive as the driver gives
them (booleans 0/1 on SQLite and MariaDB, SQLite's DATETIME as its stored text): callers convert,
`column_reader` giving SQLAlchemy's own conversion of a column where it has one."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator, Unpack

from sqlalchemy import Column, Select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

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
) -> Iterator[list[Any]]:
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
) -> Iterator[list[Any]]:
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
