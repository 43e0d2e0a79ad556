"""The read-only views (`users list/show`, `roles list`, `accounts list`, `notifications list`)
as plain rows, and the three ways of printing them: an aligned table for people, JSON and CSV
for scripts. Pure: the CLI reads the database and hands the rows here.

JSON and CSV carry every field, under its field name, so a script does not depend on the human
headers, and keep each field on its own; a table cell may show two (like the users list's 2FA),
and a table may leave out what people do not need (the outbox's expiry).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any, Callable, Final, Iterable, Iterator, Mapping, Sequence

from userctl.clock import iso_z
from userctl.printable import json_text, printable
from userctl.render.streamed import json_array
from userctl.state import USER_FIELDS, BankAccount, Role, User, bank_account_record, role_record

FORMATS: Final = ("table", "json", "csv")

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str


USER_COLUMNS: Final = (
    Column("first_name", "First name"),
    Column("last_name", "Last name"),
    Column("email", "Username"),
    Column("phone", "Phone"),
    Column("role", "Role"),
    Column("two_factor", "2FA"),
    Column("totp_enrolled", "TOTP enrolled"),
    Column("status", "Status"),
    Column("last_login_at", "Last login"),
)
# The table puts both 2FA fields in one cell ("required, enrolled"): the setting says what the
# platform asks of the user, enrollment whether they have an authenticator, and neither implies
# the other (an optional user may have enrolled; a required one may not have yet).
USER_TABLE_COLUMNS: Final = tuple(
    Column(f"{c.key.removesuffix('_at')}_label", c.header)
    if c.key in ("two_factor", "last_login_at")
    else c
    for c in USER_COLUMNS
    if c.key != "totp_enrolled"
)
ROLE_COLUMNS: Final = (
    Column("name", "Name"),
    Column("description", "Description"),
    Column("permissions", "Permissions"),
    Column("users", "Users"),
)
ACCOUNT_FIELDS: Final = (
    Column("key", "Key"),
    Column("bank", "Bank"),
    Column("account_type", "Type"),
    Column("masked_number", "Number"),
    Column("currency", "Currency"),
)
ACCOUNT_COLUMNS: Final = (*ACCOUNT_FIELDS, Column("assigned_users", "Assigned users"))
NOTIFICATION_COLUMNS: Final = (
    Column("id", "ID"),
    Column("organization", "Organization"),
    Column("recipient", "Recipient"),
    Column("kind", "Kind"),
    Column("status", "Status"),
    Column("attempts", "Attempts"),
    Column("last_error", "Last error"),
    Column("created_at", "Created at"),
    Column("sent_at", "Sent at"),
    Column("expires_at", "Expires at"),
)
# The table leaves out the kind (every notification is an invitation) and the expiry, and puts
# the error last: it is the one cell of any length.
NOTIFICATION_TABLE_COLUMNS: Final = tuple(
    column
    for key in (
        "id",
        "organization",
        "recipient",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "last_error",
    )
    for column in NOTIFICATION_COLUMNS
    if column.key == key
)


def two_factor_label(two_factor: str, totp_enrolled: bool) -> str:
    """The 2FA cell of the tables: the setting, then whether an authenticator is enrolled."""
    return f"{two_factor}, {'enrolled' if totp_enrolled else 'not enrolled'}"


def matches_search(user: User, text: str) -> bool:
    """`--search`: a case-insensitive substring of the first name, last name, full name or email."""
    needle = text.casefold()
    return any(
        needle in value.casefold()
        for value in (
            user.first_name,
            user.last_name,
            f"{user.first_name} {user.last_name}",
            user.email,
        )
    )


def last_login_label(last_login_at: dt.datetime | None) -> str:
    """How a last login is shown to people: the instant, or "never" when none is known."""
    return iso_z(last_login_at) if last_login_at is not None else "never"


def user_row(user: User, last_login_at: dt.datetime | None = None) -> dict[str, Any]:
    login = iso_z(last_login_at) if last_login_at is not None else None  # last_login_label's
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "phone": user.phone,
        "role": user.role,
        "two_factor": user.two_factor,
        "totp_enrolled": user.totp_enrolled,
        "two_factor_label": two_factor_label(user.two_factor, user.totp_enrolled),
        "status": user.status,
        "last_login_at": login,
        "last_login_label": "never" if login is None else login,
    }


def role_row(role: Role, users: int) -> dict[str, Any]:
    return {
        "name": role.name,
        "description": role.description,
        "permissions": len(role.permissions),
        "users": users,
    }


def account_row(account: BankAccount, holders: Sequence[str]) -> dict[str, Any]:
    return {**bank_account_record(account), "assigned_users": sorted(holders)}


def _cell(value: Any) -> str:
    if (
        value.__class__ is str
        and value.isprintable()
        and "  " not in value
        and value[:1] != " "
        and value[-1:] != " "
    ):
        # Most cells, written as below leaves them (a printable text holds no layout but single
        # spaces inside), without the split.
        return value or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    # One physical line per row, whatever a description holds: runs of ASCII layout (spaces, tabs,
    # line breaks) fold into one space; any other hidden character, U+2028 and U+0085 included,
    # is left for `table` to show as an escape.
    return " ".join(_LAYOUT.split(str(value))).strip(" ") if value != "" else "-"


def verbatim_cell(value: Any) -> str:
    """A cell as stored, None as nothing: the outbox shows its records (an SMTP server's error
    among them) as delivery left them, but for the control characters `table` escapes."""
    return "" if value is None else str(value)


_LAYOUT: Final = re.compile(r"[ \t\n\r\x0b\x0c]+")

Cell = Callable[[Any], str]


def render(
    columns: Sequence[Column],
    rows: Sequence[Row],
    fmt: str,
    *,
    empty: str,
    table_columns: Sequence[Column] | None = None,
    cell: Cell = _cell,
) -> str:
    """`rows` in `fmt`; `empty` is what the table says when there is nothing to show.
    `table_columns`, when given, are what the table shows instead of `columns` (cells made for
    people from several fields); JSON and CSV always carry `columns`. `cell` writes the
    table's cells."""
    if fmt == "json":
        return json_text([{c.key: row[c.key] for c in columns} for row in rows])
    if fmt == "csv":
        return _csv(columns, rows)
    if fmt == "table":
        return table(table_columns or columns, rows, cell=cell) if rows else empty + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def render_batches(
    columns: Sequence[Column],
    batches: Iterable[Sequence[Row]],
    fmt: str,
    *,
    empty: str,
    table_columns: Sequence[Column] | None = None,
    plain: bool = False,
) -> Iterator[str]:
    """`render` of every row of `batches`, as pieces that make its text: JSON and CSV a piece per
    batch, so that only a batch is held; the table (whose widths need every row) at the end.
    plain: every value of `columns` is a str, int, bool or None (render/streamed.json_array)."""
    if fmt == "json":
        yield from json_array(
            ([{c.key: row[c.key] for c in columns} for row in batch], plain) for batch in batches
        )
    elif fmt == "csv":
        yield _csv_lines([[c.key for c in columns]])
        for batch in batches:
            yield _csv_cells([[_csv_cell(row[c.key]) for c in columns] for row in batch])
    else:
        yield render(
            columns,
            [row for batch in batches for row in batch],
            fmt,
            empty=empty,
            table_columns=table_columns,
        )


def table(
    columns: Sequence[Column], rows: Iterable[Row], indent: str = "", cell: Cell = _cell
) -> str:
    # Whatever `cell` writes, no control or format character reaches the terminal raw (an ESC in
    # a name could rewrite the screen, a bidi override reorder a row): `printable` escapes them.
    cells = [[c.header.upper() for c in columns]] + [
        [printable(cell(row[c.key])) for c in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    out = io.StringIO()
    for line in cells:
        padded = "  ".join(value.ljust(width) for value, width in zip(line, widths))
        out.write(indent + padded.rstrip() + "\n")
    return out.getvalue()


def _csv(columns: Sequence[Column], rows: Iterable[Row]) -> str:
    return _csv_lines(
        [[c.key for c in columns], *([_csv_cell(row[c.key]) for c in columns] for row in rows)]
    )


def _csv_lines(rows: Iterable[Sequence[str]]) -> str:
    """CSV rows, each ending in "\\n", quoting every value that holds a line break, "\\r" included.
    Python's writer quotes only the characters of its line terminator, and a bare "\\r" left
    unquoted breaks the row for every reader: each row is written ending in "\\r\\n", the "\\r"
    then dropped."""
    out = io.StringIO()
    for row in rows:
        line = io.StringIO()
        csv.writer(line, lineterminator="\r\n").writerow(row)
        out.write(line.getvalue()[:-2] + "\n")
    return out.getvalue()


def _csv_cells(rows: list[list[str]]) -> str:
    """`_csv_lines(rows)` of cells `_csv_cell` wrote, with one writer: printable has escaped
    every line break in them, so no row holds the "\r" that needs a writer of its own."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


# What a spreadsheet takes for the start of a formula (OWASP "CSV Injection"): a cell such as
# `=HYPERLINK(...)` in a name would run when an auditor opens the export.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    if value.__class__ is str:  # most cells: as below, without the tests of the other kinds
        return "'" + printable(value) if value.startswith(_FORMULA_START) else printable(value)
    if value is None:
        return ""  # as `users show` writes an unknown value (a last login never recorded)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)  # a number is never a formula, and a count keeps its sign
    text = ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    formula = text.startswith(_FORMULA_START)
    # Hidden characters as visible escapes, as in every output: a spreadsheet shows a bidi
    # override, a line separator or an ESC raw, and a line break splits the record for many a
    # reader; every record is one line.
    text = printable(text)
    # A leading single quote makes a spreadsheet show the cell as text, as OWASP recommends. It
    # also quotes every phone number, which starts with `+` ("'+573001112233"): to a spreadsheet
    # a `+` cell is a formula too. A script that wants the stored value drops a leading quote
    # (JSON carries the values unchanged).
    return "'" + text if formula else text


def _detail_fields() -> tuple[str, ...]:
    # Every field of the record but those shown apart (role, bank accounts), in its order, except
    # that enrolment stands next to the 2FA setting, as on the dashboard.
    shown = [f for f in USER_FIELDS if f not in ("role", "bank_accounts", "totp_enrolled")]
    shown.insert(shown.index("two_factor") + 1, "totp_enrolled")
    return tuple(shown)


_DETAIL_FIELDS: Final = _detail_fields()


def user_detail(
    user: User,
    role: Role,
    accounts: Mapping[str, BankAccount],
    created_at: dt.datetime | None = None,
    updated_at: dt.datetime | None = None,
    last_login_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """`users show`: every field of the user (never a TOTP secret: it is not even read), their
    role with its permissions, and the organization's bank accounts split into assigned and
    unassigned, as the dashboard's "Role and bank accounts" module shows them."""
    return {
        **{name: getattr(user, name) for name in _DETAIL_FIELDS},
        "created_at": iso_z(created_at) if created_at else None,
        "updated_at": iso_z(updated_at) if updated_at else None,
        "last_login_at": iso_z(last_login_at) if last_login_at else None,
        "role": role_record(role),
        "bank_accounts": {
            "assigned": [
                bank_account_record(accounts[k])
                for k in sorted(user.bank_accounts)
                if k in accounts
            ],
            "unassigned": [
                bank_account_record(a)
                for k, a in sorted(accounts.items())
                if k not in user.bank_accounts
            ],
        },
    }


_STATUS_NOTES: Final = {
    "invited": "invited (pending registration)",
    "inactive": "inactive (cannot log in; can only be reactivated or deleted)",
}


def detail_csv_rows(detail: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """`users show --format csv` as (field, value) pairs: the user's fields as in JSON, then the
    role and the accounts by key, flattened (an account's details are in `accounts list`)."""
    role, accounts = detail["role"], detail["bank_accounts"]
    return [
        *((key, value) for key, value in detail.items() if key not in ("role", "bank_accounts")),
        ("role", role["name"]),
        ("role_description", role["description"]),
        ("role_permissions", role["permissions"]),
        ("assigned_accounts", [a["key"] for a in accounts["assigned"]]),
        ("unassigned_accounts", [a["key"] for a in accounts["unassigned"]]),
    ]


def render_user_detail(detail: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json_text(detail)
    if fmt == "csv":
        return _csv_lines(
            [
                ["field", "value"],
                *(
                    [key, "" if value is None else _csv_cell(value)]
                    for key, value in detail_csv_rows(detail)
                ),
            ]
        )
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    role = detail["role"]
    fields = [
        ("Email", detail["email"]),
        ("First name", detail["first_name"]),
        ("Last name", detail["last_name"]),
        ("ID", f"{detail['id_type']} {detail['id_number']}"),
        ("Phone", detail["phone"]),
        ("Status", _STATUS_NOTES.get(detail["status"], detail["status"])),
        ("2FA", two_factor_label(detail["two_factor"], detail["totp_enrolled"])),
        ("Force password reset", "yes" if detail["force_password_reset"] else "no"),
        ("Created", detail["created_at"] or "-"),
        ("Updated", detail["updated_at"] or "-"),
        ("Last login", detail["last_login_at"] or "never"),
    ]
    out = io.StringIO()
    out.write("User data\n")
    _write_fields(out, fields)
    out.write("\nRole and bank accounts\n")
    _write_fields(
        out,
        [
            ("Role", role["name"] + (f" ({role['description']})" if role["description"] else "")),
            ("Permissions", ", ".join(role["permissions"]) or "none"),
        ],
    )
    for title, accounts in (
        ("Assigned accounts", detail["bank_accounts"]["assigned"]),
        ("Unassigned accounts", detail["bank_accounts"]["unassigned"]),
    ):
        out.write(f"  {title}:\n")
        out.write(table(ACCOUNT_FIELDS, accounts, indent="    ") if accounts else "    none\n")
    if detail["status"] != "active" and detail["bank_accounts"]["unassigned"]:
        out.write("  (bank accounts can only be assigned to active users)\n")
    return out.getvalue()


def _write_fields(out: io.StringIO, fields: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in fields) + 1
    for name, value in fields:
        out.write(f"  {(name + ':').ljust(width)}  {printable(str(value))}\n")
