"""`userctl accounts import FILE.csv`: which bank accounts a CSV file registers (DESIGN §5), for
organizations whose platform does not register them itself. `plan_import` is pure: it reads
the file's bytes against the existing accounts; `import_bank_accounts` runs it and writes what
it returns under the organization lock, in one transaction.

Idempotent by key: a row identical to a registered account is "unchanged". A row that reuses a
key with different values is an error, because userctl never edits a bank account (assignments
and audit history refer to it by key). Every bad row is reported, as FILE:LINE:COL, and then
nothing is imported.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Mapping, Sequence

from userctl.errors import InputError, Problem
from userctl.names import text_problem
from userctl.state import LIMITS, BankAccount, bank_account_record, character_problem
from userctl.verification import NOTHING_NEEDED

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

COLUMNS: Final = ("key", "bank", "account_type", "masked_number", "currency")
# The database column (state.LIMITS) each CSV column is stored in: its field is held to that
# column's length and character rules, as the same value in a desired-state file would be.
STORED_IN: Final = {name: f"bank_accounts.{name}" for name in COLUMNS}
# The longest field of a column stored nowhere as text (an instant): no such value is longer.
FREE_FIELD_LIMIT: Final = 100
# The columns' widths, as declared once for the loader and the database.
MAX_LENGTH: Final = {
    name: LIMITS[f"bank_accounts.{name}"].max_length for name in COLUMNS if name != "currency"
}
MAX_UNMASKED_DIGITS: Final = 4

_KEY: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ImportPlan:
    new: tuple[BankAccount, ...]
    unchanged: tuple[BankAccount, ...]


@dataclass(frozen=True, slots=True)
class ImportResult:
    organization: str
    plan: ImportPlan
    audit_head: str | None = None  # the chain head after the import's events


@dataclass
class _Reader:
    source: str
    raw_lines: list[str]
    problems: list[Problem] = field(default_factory=list)

    def problem(self, line: int, message: str, column: str = "row", col: int | None = None) -> None:
        self.problems.append(Problem(message, (column,), self.source, line, col))


def plan_import(data: bytes, source: str, existing: Mapping[str, BankAccount]) -> ImportPlan:
    """The accounts of `data` (CSV with a header) that are new and those already registered;
    raises InputError naming every bad row."""
    text = _decode(data, source)
    reader = _Reader(source, _LINE_BREAK.split(text))
    rows = _parse(text, reader)
    new: list[BankAccount] = []
    unchanged: list[BankAccount] = []
    for line, cols, account in rows:
        registered = existing.get(account.key)
        if registered is None:
            new.append(account)
        elif registered == account:
            unchanged.append(account)
        else:
            differences = ", ".join(
                f"{name} {getattr(account, name)!r} here, {getattr(registered, name)!r} registered"
                for name in COLUMNS
                if getattr(account, name) != getattr(registered, name)
            )
            reader.problem(
                line,
                f"bank account {account.key!r} is already registered with other "
                f"values ({differences}): userctl never edits a bank account; "
                "correct the row or use a new key",
                "key",
                cols.get("key"),
            )
    if reader.problems:
        raise InputError(sorted(reader.problems, key=lambda p: (p.line or 0, p.col or 0)))
    return ImportPlan(tuple(new), tuple(unchanged))


def import_bank_accounts(
    engine: "Engine",
    organization: str | None,
    data: bytes,
    source: str,
    operator: str | None,
    lock_timeout_s: float,
    now: dt.datetime,
) -> ImportResult:
    """Register the new accounts of `data` in `organization` (None: the only one in the
    database), all or none."""
    from userctl.apply import audit
    from userctl.apply.unverified import unverified_operator
    from userctl.db.engine import begin_read, begin_write, lock_organization
    from userctl.db.migrate import require_current
    from userctl.db.rows import insert_bank_account
    from userctl.db.snapshot import read_bank_accounts, resolve_organization
    from userctl.plan import bank_account_address

    require_current(engine)
    # Which organization, in a transaction of its own: the write transaction below must take
    # the lock before it reads anything (see lock_organization).
    with begin_read(engine) as conn:
        slug = resolve_organization(conn, organization)[1].slug
    with begin_write(engine, lock_timeout_s=lock_timeout_s, organization=slug) as conn:
        org_id = lock_organization(conn, slug, lock_timeout_s)
        who = unverified_operator(conn, org_id, "accounts import", operator, now=now)
        result = plan_import(data, source, read_bank_accounts(conn, org_id))
        for account in result.new:
            insert_bank_account(conn, org_id, account)
        # Registering an account is a change to the organization like any other: it is audited
        # (unverified: importing accounts needs no 2FA, it grants nobody anything).
        head = audit.append_events(
            conn,
            org_id,
            [
                audit.AuditRecord(
                    operator=who,
                    verified_by=NOTHING_NEEDED.to_text(),
                    operator_verified=False,
                    action="bank_account.import",
                    address=bank_account_address(a.key),
                    after=bank_account_record(a),
                )
                for a in result.new
            ],
            now,
        )
    return ImportResult(slug, result, head)


def _decode(data: bytes, source: str) -> str:
    try:
        # utf-8-sig: spreadsheets commonly start their CSV exports with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise InputError(
            [Problem("the file is not UTF-8 text; save it as UTF-8 CSV", (), source, line, col)]
        ) from None


def _parse(text: str, reader: _Reader) -> list[tuple[int, dict[str, int | None], BankAccount]]:
    """(line, column positions, account) of every good row; problems go to `reader`."""
    accounts: list[tuple[int, dict[str, int | None], BankAccount]] = []
    first_line: dict[str, int] = {}
    for line, values, cols in csv_rows(text, reader, COLUMNS, STORED_IN):
        account = _row(line, values, cols, reader)
        if account is None:
            continue
        if account.key in first_line:
            reader.problem(
                line,
                f"key {account.key!r} is also on line {first_line[account.key]}",
                "key",
                cols["key"],
            )
            continue
        first_line[account.key] = line
        accounts.append((line, cols, account))
    return accounts


def csv_rows(
    text: str, reader: _Reader, columns: Sequence[str], stored_in: Mapping[str, str]
) -> list[tuple[int, dict[str, str], dict[str, int | None]]]:
    """(line, stripped value by column, 1-based column by column) of every non-blank row of a CSV
    `text` whose header names exactly `columns`, in any order; a bad header, a row with the
    wrong number of fields, a field refused by `field_problem` (`stored_in`: the database column
    of each column that has one) or invalid CSV go to `reader`, and the row is left out. Shared
    with `activity import`."""
    records = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, dict[str, str], dict[str, int | None]]] = []
    try:
        header = next(records, None)
        if header is None or not any(h.strip() for h in header):
            reader.problem(
                1, f"empty file: the first line must be the header {','.join(columns)}", "header"
            )
            return []
        index = _header(header, reader, columns)
        previous_end = records.line_num
        for fields in records:
            line, previous_end = previous_end + 1, records.line_num
            if not any(f.strip() for f in fields):
                continue  # blank lines, and the empty rows spreadsheets leave at the end
            if index is None:
                continue  # the header is wrong: its problem is reported, rows cannot be read
            if len(fields) != len(index):
                reader.problem(
                    line,
                    f"expected {len(index)} fields "
                    f"({', '.join(sorted(index, key=index.__getitem__))}), found {len(fields)}",
                )
                continue
            raw = reader.raw_lines[line - 1] if line - 1 < len(reader.raw_lines) else ""
            positions = _columns(raw, len(fields))
            refused = [
                (name, problem)
                for name, i in index.items()
                if (problem := field_problem(fields[i], stored_in.get(name))) is not None
            ]
            for name, problem in refused:
                reader.problem(line, problem, name, positions[index[name]])
            if refused:
                continue  # no other message quotes a value that would mislead
            rows.append(
                (
                    line,
                    {name: fields[i].strip() for name, i in index.items()},
                    {name: positions[i] for name, i in index.items()},
                )
            )
        return rows
    except csv.Error as exc:
        reader.problem(records.line_num, f"not valid CSV: {exc}")
        return []


def field_problem(field: str, column: str | None) -> str | None:
    """Why a CSV field cannot be taken, or None: the character rule of every value userctl shows
    (names.text_problem, on the field as written, so that padding cannot hide a control or
    format character from it), then the length and characters of the database `column` it is
    stored in (state.character_problem), or the length of a field stored nowhere as text."""
    problem = text_problem(field)
    if problem is not None:
        return problem
    value = field.strip()
    if column is not None:
        return character_problem(column, value) if value else None
    if len(value) > FREE_FIELD_LIMIT:
        return f"is {len(value)} characters, more than the {FREE_FIELD_LIMIT} it may hold"
    return None


def _header(
    header: Sequence[str], reader: _Reader, columns: Sequence[str] = COLUMNS
) -> dict[str, int] | None:
    """Column name -> index when the header names exactly `columns` (any order); problems go to
    `reader`. Shared with `activity import`."""
    names = [h.strip() for h in header]
    cols = _columns(reader.raw_lines[0] if reader.raw_lines else "", len(names))
    ok = True
    for i, name in enumerate(names):
        if name not in columns:
            reader.problem(
                1,
                f"unknown column {name!r}: the columns are {', '.join(columns)}",
                "header",
                cols[i],
            )
            ok = False
        elif names.index(name) != i:
            reader.problem(1, f"column {name!r} appears twice", "header", cols[i])
            ok = False
    missing = [c for c in columns if c not in names]
    if missing:
        reader.problem(
            1,
            f"missing column(s) {', '.join(missing)}: the header must name {','.join(columns)}",
            "header",
        )
        ok = False
    return {name: names.index(name) for name in columns} if ok else None


def _row(
    line: int, values: Mapping[str, str], cols: Mapping[str, int | None], reader: _Reader
) -> BankAccount | None:
    before = len(reader.problems)
    for name in COLUMNS:
        message = _check(name, values[name])
        if message:
            reader.problem(line, message, name, cols[name])
    if len(reader.problems) > before:
        return None
    return BankAccount(**values)


def _check(name: str, value: str) -> str | None:
    if not value:
        return "must not be empty"
    limit = MAX_LENGTH.get(name)
    if limit is not None and len(value) > limit:
        return f"at most {limit} characters, found {len(value)}"
    if name == "key" and not _KEY.fullmatch(value):
        return (
            f"{value!r} is not a valid key: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if name == "currency" and not _CURRENCY.fullmatch(value):
        return f"{value!r} is not a currency code: 3 upper-case letters, e.g. COP or USD"
    if name == "masked_number":
        digits = sum(c.isdigit() for c in value)
        if digits > MAX_UNMASKED_DIGITS:
            return (
                f"{value!r} shows {digits} digits: at most the last {MAX_UNMASKED_DIGITS} may be "
                "unmasked (e.g. ****1234); never put a full account number in a file"
            )
    return None


def _columns(raw: str, count: int) -> list[int | None]:
    """1-based column of each field on its line, when the line is simple enough to know it
    (no quoting); otherwise None, and the problem points at the start of the line."""
    parts = raw.split(",")
    if '"' in raw or len(parts) != count:
        return [None] * count
    cols: list[int | None] = []
    col = 1
    for part in parts:
        cols.append(col + (len(part) - len(part.lstrip())))
        col += len(part) + 1
    return cols
