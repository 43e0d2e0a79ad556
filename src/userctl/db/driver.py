"""Bulk writes as tuples through the driver's own `executemany`, inside the caller's transaction.

The statement is built from the Core table (tables.py stays the one place that knows the schema:
names, quoting, and each column's conversion to what the driver stores), once per table, columns
and backend. What it skips is SQLAlchemy's per-row work on a bulk insert, a dict per row turned
into parameters column by column, for rows the caller already has in column order. Errors come out
as the DBAPIError a Core execute raises, so callers and the CLI treat them alike.

Statements sent here bypass SQLAlchemy's `before_cursor_execute` event: tests that count
statements see none of these.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from userctl.db.batches import chunks

# Rows per executemany call: bounds the driver's buffers (PyMySQL folds a call into one
# multi-row INSERT, which must stay under max_allowed_packet).
BATCH = 1000
Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Insert:
    sql: str
    # (position, conversion) of each column whose type converts its values for this backend
    # (SQLite's DATE and DATETIME are text, in SQLAlchemy's format).
    converts: tuple[tuple[int, Convert], ...]


def insert_many(
    conn: Connection, table: Table, columns: tuple[str, ...], rows: Iterable[Sequence[Any]]
) -> None:
    """INSERT each row of `rows` (values in the order of `columns`, which name the Core table's
    column keys) into `table`, BATCH rows per executemany. Every column with a Python-side
    default must be given: the database would not apply it."""
    statement = _insert(conn.dialect, table, columns)
    converts = statement.converts
    if converts:
        rows = (_converted(row, converts) for row in rows)
    batch = rows if isinstance(rows, list) else list(rows)
    if batch:
        run_many(conn, statement.sql, batch)


def run_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """executemany `sql` (in the driver's paramstyle) over `rows`, BATCH at a time."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None, "a connection inside a transaction has its driver connection"
    cursor = dbapi.cursor()
    try:
        for part in chunks(rows, BATCH):
            cursor.executemany(sql, part)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


def _converted(row: Sequence[Any], converts: tuple[tuple[int, Convert], ...]) -> list[Any]:
    out = list(row)
    for i, convert in converts:
        out[i] = convert(out[i])
    return out


@functools.lru_cache(maxsize=64)
def _insert(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> _Insert:
    given = [table.c[key] for key in columns]
    missing = [
        c.key
        for c in table.columns
        if c.key not in columns and c.default is not None and not c.primary_key
    ]
    if missing:
        raise ValueError(f"insert into {table.name} must give {', '.join(missing)}")
    if dialect.paramstyle == "qmark":
        mark = "?"
    elif dialect.paramstyle in ("format", "pyformat"):
        mark = "%s"
    else:
        raise ValueError(f"unsupported paramstyle {dialect.paramstyle}")
    quote = dialect.identifier_preparer
    names = ", ".join(quote.format_column(c) for c in given)
    sql = (
        f"INSERT INTO {quote.format_table(table)} ({names}) "
        f"VALUES ({', '.join([mark] * len(given))})"
    )
    converts = []
    for i, column in enumerate(given):
        convert = column.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            converts.append((i, convert))
    return _Insert(sql, tuple(converts))
