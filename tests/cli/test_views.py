"""The read-only views through the real CLI on every backend: `users list` (filters, order,
formats), `users show`, `roles list`, `accounts list`."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from tests.conftest import Factory, Runner
from userctl.clock import iso_z
from userctl.db import models
from userctl.render.tables import USER_COLUMNS, Column, render


@dataclass
class Acme:
    secret: str  # zoe's TOTP secret: must never appear in any output


def _renumber(factory: Factory, user_id: int, new_id: int) -> int:
    """Give a user another id (before anything references it), so that id order can differ from
    the order rows were inserted in, which is the order a database returns them unless asked."""
    with factory.engine.begin() as conn:
        conn.execute(sa.update(models.User).where(models.User.id == user_id).values(id=new_id))
    return new_id


def _populate(factory: Factory) -> Acme:
    """Users whose id order is neither their insertion order, nor alphabetical by email or name,
    nor grouped by role, so that sorting by id is observable; a second organization that must
    never leak in."""
    org = factory.org("acme-payments")
    # A placeholder takes the lowest id, then hands it to dan, inserted last: dan's row is stored
    # after everyone else's (a PostgreSQL scan meets it last) but sorts first by id.
    placeholder = factory.user(org, "placeholder@acme.co", factory.role(org, "Placeholder"))
    admin = factory.role(
        org,
        "SuperAdmin",
        ["users.view", "users.manage", "roles.manage"],
        "Full access, incl. users",
    )
    ops = factory.role(org, "Payouts Operator", ["payouts.view", "payouts.create"])
    factory.role(org, "Auditor", ["audit.view"], "Read-only")
    zoe = factory.user(
        org,
        "zoe@acme.co",
        admin,
        first_name="Zoe",
        last_name="Zapata",
        phone="+573000000001",
        status="active",
        two_factor="required",
    )
    secret = factory.enrol(zoe)
    factory.user(
        org,
        "ana@acme.co",
        ops,
        first_name="Ana",
        last_name="Arango",
        status="invited",
        two_factor="required",
    )
    factory.user(
        org,
        "bob@acme.co",
        ops,
        first_name="Bob",
        last_name="Brown",
        status="inactive",
        two_factor="disabled",
    )
    carla = factory.user(
        org,
        "carla.perez@acme.co",
        ops,
        first_name="Carla",
        last_name="PÉREZ",
        status="active",
        two_factor="optional",
        force_password_reset=True,
        id_type="CE",
        id_number="E-778899",
        phone="+573115550101",
    )
    dan = factory.user(
        org,
        "dan@acme.co",
        admin,
        first_name="Dan",
        last_name="Díaz",
        status="active",
        two_factor="optional",
    )
    with factory.engine.begin() as conn:
        conn.execute(sa.delete(models.User).where(models.User.id == placeholder))
        conn.execute(sa.delete(models.Role).where(models.Role.name == "Placeholder"))
    dan = _renumber(factory, dan, placeholder)
    factory.enrol(dan)  # enrolled although 2FA is only optional for him
    main = factory.bank_account(
        org, "ops-main", bank="Bancolombia", account_type="checking", masked_number="****4321"
    )
    usd = factory.bank_account(org, "usd-1", bank="Citi", masked_number="****9876", currency="USD")
    factory.bank_account(org, "spare", bank="Davivienda", masked_number="****0000")
    factory.assign(zoe, main)
    factory.assign(carla, main)
    factory.assign(carla, usd)

    other = factory.org("other-co")
    stranger = factory.user(
        other,
        "stranger@other.co",
        factory.role(other, "SuperAdmin", ["audit.view"]),
        first_name="Ana",
    )
    # The same key as one of acme's accounts, held by the other organization's user.
    factory.assign(
        stranger,
        factory.bank_account(other, "ops-main", bank="Banco de Bogotá", masked_number="****5555"),
    )
    return Acme(secret)


ORDER_BY_ID = ["dan@acme.co", "zoe@acme.co", "ana@acme.co", "bob@acme.co", "carla.perez@acme.co"]


def _emails(runner: Runner, *args: str) -> list[str]:
    result = runner("--organization", "acme-payments", "users", "list", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return [row["email"] for row in json.loads(result.stdout)]


def test_users_list_table_is_sorted_by_id_with_every_column(
    runner: Runner, factory: Factory
) -> None:
    _populate(factory)
    result = runner("--organization", "acme-payments", "users", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "FIRST",
        "NAME",
        "LAST",
        "NAME",
        "USERNAME",
        "PHONE",
        "ROLE",
        "2FA",
        "STATUS",
        "LAST",
        "LOGIN",
    ]
    assert [line.split()[2] for line in lines[1:]] == ORDER_BY_ID
    # Aligned: every column starts at the same offset on every line.
    starts = [lines[0].index(header) for header in ("USERNAME", "PHONE", "ROLE", "2FA", "STATUS")]
    for line in lines[1:]:
        assert all(line[s - 2 : s] == "  " and line[s] != " " for s in starts), line
    cells = {line.split()[2]: re.split(r" {2,}", line) for line in lines[1:]}
    assert cells["zoe@acme.co"] == [
        "Zoe",
        "Zapata",
        "zoe@acme.co",
        "+573000000001",
        "SuperAdmin",
        "required, enrolled",
        "active",
        "never",
    ]
    # The 2FA cell shows the setting and the enrollment, each whatever the other is.
    assert {email: row[5] for email, row in cells.items()} == {
        "dan@acme.co": "optional, enrolled",
        "zoe@acme.co": "required, enrolled",
        "ana@acme.co": "required, not enrolled",
        "bob@acme.co": "disabled, not enrolled",
        "carla.perez@acme.co": "optional, not enrolled",
    }
    assert "stranger@other.co" not in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ORDER_BY_ID),
        (("--status", "invited"), ["ana@acme.co"]),
        (("--status", "active"), ["dan@acme.co", "zoe@acme.co", "carla.perez@acme.co"]),
        (("--status", "inactive"), ["bob@acme.co"]),
        (("--role", "SuperAdmin"), ["dan@acme.co", "zoe@acme.co"]),
        (("--role", "Payouts Operator"), ["ana@acme.co", "bob@acme.co", "carla.perez@acme.co"]),
        (("--role", "Auditor"), []),
        (("--search", "ZAP"), ["zoe@acme.co"]),  # last name, case-insensitive
        (("--search", "carla"), ["carla.perez@acme.co"]),  # first name
        (("--search", "pérez"), ["carla.perez@acme.co"]),  # non-ASCII, stored upper-case
        (("--search", "díaz"), ["dan@acme.co"]),
        (("--search", "Dan Dí"), ["dan@acme.co"]),  # full name
        (("--search", "BOB@ACME"), ["bob@acme.co"]),  # email
        (("--search", "a"), ORDER_BY_ID),
        (("--search", "nobody"), []),
        (("--status", "active", "--role", "Payouts Operator"), ["carla.perez@acme.co"]),
        (
            ("--status", "active", "--search", "acme.co", "--role", "SuperAdmin"),
            ["dan@acme.co", "zoe@acme.co"],
        ),
        (("--status", "inactive", "--role", "SuperAdmin"), []),
        (
            ("--status", "invited", "--search", "arango", "--role", "Payouts Operator"),
            ["ana@acme.co"],
        ),
    ],
)
def test_users_list_filters(
    runner: Runner, factory: Factory, args: tuple[str, ...], expected: list[str]
) -> None:
    _populate(factory)
    assert _emails(runner, *args) == expected


def test_users_list_json_and_csv_carry_the_same_rows(runner: Runner, factory: Factory) -> None:
    _populate(factory)
    as_json = json.loads(
        runner("--organization", "acme-payments", "users", "list", "--format", "json").stdout
    )
    result = runner("--organization", "acme-payments", "users", "list", "--format", "csv")
    assert result.exit_code == 0
    as_csv = list(csv.DictReader(io.StringIO(result.stdout)))
    # The same rows; CSV spells the boolean as text, and quotes the phone numbers: they start
    # with `+`, which a spreadsheet takes for a formula (OWASP "CSV Injection").
    assert all(row["phone"].startswith("+") for row in as_json)
    assert as_csv == [
        {
            **row,
            "totp_enrolled": "true" if row["totp_enrolled"] else "false",
            "phone": "'" + row["phone"],
            "last_login_at": "",
        }
        for row in as_json
    ]
    assert as_json[4] == {
        "first_name": "Carla",
        "last_name": "PÉREZ",
        "email": "carla.perez@acme.co",
        "phone": as_json[4]["phone"],
        "role": "Payouts Operator",
        "two_factor": "optional",
        "totp_enrolled": False,
        "status": "active",
        "last_login_at": None,
    }
    # Two fields, never merged: the setting, and whether an authenticator is enrolled.
    assert [(r["two_factor"], r["totp_enrolled"]) for r in as_json] == [
        ("optional", True),
        ("required", True),
        ("required", False),
        ("disabled", False),
        ("optional", False),
    ]
    assert (
        list(as_csv[0])
        == [c.key for c in USER_COLUMNS]
        == [
            "first_name",
            "last_name",
            "email",
            "phone",
            "role",
            "two_factor",
            "totp_enrolled",
            "status",
            "last_login_at",
        ]
    )


def test_users_list_unknown_role_and_empty_results(runner: Runner, factory: Factory) -> None:
    _populate(factory)
    result = runner("--organization", "acme-payments", "users", "list", "--role", "superadmin")
    assert result.exit_code == 1
    assert (
        "has no role 'superadmin'" in result.stderr
        and "Auditor, Payouts Operator, SuperAdmin" in result.stderr
    )
    empty = runner("--organization", "acme-payments", "users", "list", "--search", "nobody")
    assert (empty.exit_code, empty.stdout) == (0, "No users match.\n")
    empty_csv = runner(
        "--organization", "acme-payments", "users", "list", "--search", "nobody", "--format", "csv"
    )
    assert (
        empty_csv.stdout
        == "first_name,last_name,email,phone,role,two_factor,totp_enrolled,status,last_login_at\n"
    )


def test_organization_is_chosen_or_asked_for(runner: Runner, factory: Factory) -> None:
    _populate(factory)
    ambiguous = runner("users", "list")
    assert ambiguous.exit_code == 1
    assert "acme-payments, other-co" in ambiguous.stderr and "--organization" in ambiguous.stderr
    other = runner("--organization", "other-co", "users", "list", "--format", "json")
    assert [u["email"] for u in json.loads(other.stdout)] == ["stranger@other.co"]
    unknown = runner("--organization", "nope", "roles", "list")
    assert unknown.exit_code == 1 and "'nope' does not exist" in unknown.stderr


def test_single_organization_needs_no_option(runner: Runner, factory: Factory) -> None:
    org = factory.org("solo")
    factory.user(org, "one@solo.co", factory.role(org, "Admin"))
    result = runner("users", "list", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split(",")[2] == "one@solo.co"


def test_users_show_lists_assigned_and_unassigned_accounts(
    runner: Runner, factory: Factory
) -> None:
    acme = _populate(factory)
    result = runner(
        "--organization",
        "acme-payments",
        "users",
        "show",
        "Carla.Perez@ACME.co",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    with factory.engine.connect() as conn:
        created, updated = conn.execute(
            sa.select(models.User.created_at, models.User.updated_at).where(
                models.User.email == "carla.perez@acme.co"
            )
        ).one()
    # The whole object: every field, the role with its permissions, the accounts of acme only
    # (other-co's "ops-main" is not among them), and no TOTP secret anywhere.
    assert json.loads(result.stdout) == {
        "email": "carla.perez@acme.co",
        "first_name": "Carla",
        "last_name": "PÉREZ",
        "id_type": "CE",
        "id_number": "E-778899",
        "phone": "+573115550101",
        "status": "active",
        "two_factor": "optional",
        "totp_enrolled": False,
        "force_password_reset": True,
        "expires": None,
        "created_at": iso_z(created),
        "updated_at": iso_z(updated),
        "last_login_at": None,
        "role": {
            "name": "Payouts Operator",
            "description": "",
            "permissions": ["payouts.create", "payouts.view"],
        },
        "bank_accounts": {
            "assigned": [
                {
                    "key": "ops-main",
                    "bank": "Bancolombia",
                    "account_type": "checking",
                    "masked_number": "****4321",
                    "currency": "COP",
                },
                {
                    "key": "usd-1",
                    "bank": "Citi",
                    "account_type": "savings",
                    "masked_number": "****9876",
                    "currency": "USD",
                },
            ],
            "unassigned": [
                {
                    "key": "spare",
                    "bank": "Davivienda",
                    "account_type": "savings",
                    "masked_number": "****0000",
                    "currency": "COP",
                },
            ],
        },
    }
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", json.loads(result.stdout)["created_at"]
    )

    text = runner("--organization", "acme-payments", "users", "show", "zoe@acme.co").stdout
    user_data, role_and_accounts = text.split("\nRole and bank accounts\n")
    assert user_data.startswith("User data\n") and "Zapata" in user_data
    assert "  2FA:                   required, enrolled\n" in user_data
    assert (
        "Role:" in role_and_accounts
        and "SuperAdmin (Full access, incl. users)" in role_and_accounts
    )
    assert "roles.manage, users.manage, users.view" in role_and_accounts
    assigned, unassigned = role_and_accounts.split("  Unassigned accounts:\n")
    assert "ops-main" in assigned and "spare" not in assigned
    assert "spare" in unassigned and "usd-1" in unassigned and "ops-main" not in unassigned
    assert acme.secret not in text and acme.secret not in result.stdout


def test_users_show_csv_is_one_field_value_row_per_field(runner: Runner, factory: Factory) -> None:
    acme = _populate(factory)
    shown = runner(
        "--organization",
        "acme-payments",
        "users",
        "show",
        "carla.perez@acme.co",
        "--format",
        "json",
    )
    detail = json.loads(shown.stdout)
    result = runner(
        "--organization", "acme-payments", "users", "show", "carla.perez@acme.co", "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["field", "value"],
        ["email", "carla.perez@acme.co"],
        ["first_name", "Carla"],
        ["last_name", "PÉREZ"],
        ["id_type", "CE"],
        ["id_number", "E-778899"],
        ["phone", "'+573115550101"],  # a leading + is a formula to a spreadsheet
        ["status", "active"],
        ["two_factor", "optional"],
        ["totp_enrolled", "false"],
        ["force_password_reset", "true"],
        ["expires", ""],
        ["created_at", detail["created_at"]],
        ["updated_at", detail["updated_at"]],
        ["last_login_at", ""],
        ["role", "Payouts Operator"],
        ["role_description", ""],
        ["role_permissions", "payouts.create, payouts.view"],
        ["assigned_accounts", "ops-main, usd-1"],
        ["unassigned_accounts", "spare"],
    ]
    zoe = runner(
        "--organization", "acme-payments", "users", "show", "zoe@acme.co", "--format", "csv"
    ).stdout
    assert 'role_description,"Full access, incl. users"\n' in zoe and acme.secret not in zoe
    assert "csv: a field,value row per field" in runner("users", "show", "--help").stdout


def test_users_show_pending_user_and_unknown_email(runner: Runner, factory: Factory) -> None:
    _populate(factory)
    text = runner("--organization", "acme-payments", "users", "show", "ana@acme.co").stdout
    assert "invited (pending registration)" in text
    assert "Assigned accounts:\n    none\n" in text
    assert "(bank accounts can only be assigned to active users)" in text
    missing = runner("--organization", "acme-payments", "users", "show", "ghost@acme.co")
    assert missing.exit_code == 1
    assert "has no user 'ghost@acme.co'" in missing.stderr and "Traceback" not in missing.output


def test_roles_list(runner: Runner, factory: Factory) -> None:
    _populate(factory)
    result = runner("--organization", "acme-payments", "roles", "list", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert list(csv.DictReader(io.StringIO(result.stdout))) == [
        {"name": "Auditor", "description": "Read-only", "permissions": "1", "users": "0"},
        {"name": "Payouts Operator", "description": "", "permissions": "2", "users": "3"},
        {
            "name": "SuperAdmin",
            "description": "Full access, incl. users",
            "permissions": "3",
            "users": "2",
        },
    ]
    as_json = json.loads(
        runner("--organization", "acme-payments", "roles", "list", "--format", "json").stdout
    )
    assert as_json[2] == {
        "name": "SuperAdmin",
        "description": "Full access, incl. users",
        "permissions": 3,
        "users": 2,
    }
    table = runner("--organization", "acme-payments", "roles", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESCRIPTION", "PERMISSIONS", "USERS"]
    assert table[2].split() == ["Payouts", "Operator", "-", "2", "3"]


def test_accounts_list(runner: Runner, factory: Factory) -> None:
    _populate(factory)
    result = runner("--organization", "acme-payments", "accounts", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
            "key": "ops-main",
            "bank": "Bancolombia",
            "account_type": "checking",
            "masked_number": "****4321",
            "currency": "COP",
            "assigned_users": ["carla.perez@acme.co", "zoe@acme.co"],
        },
        {
            "key": "spare",
            "bank": "Davivienda",
            "account_type": "savings",
            "masked_number": "****0000",
            "currency": "COP",
            "assigned_users": [],
        },
        {
            "key": "usd-1",
            "bank": "Citi",
            "account_type": "savings",
            "masked_number": "****9876",
            "currency": "USD",
            "assigned_users": ["carla.perez@acme.co"],
        },
    ]
    as_csv = list(
        csv.DictReader(
            io.StringIO(
                runner(
                    "--organization", "acme-payments", "accounts", "list", "--format", "csv"
                ).stdout
            )
        )
    )
    assert as_csv[0]["assigned_users"] == "carla.perez@acme.co, zoe@acme.co"
    table = runner("--organization", "acme-payments", "accounts", "list").stdout.splitlines()
    assert table[0].split() == ["KEY", "BANK", "TYPE", "NUMBER", "CURRENCY", "ASSIGNED", "USERS"]
    assert table[2].split() == ["spare", "Davivienda", "savings", "****0000", "COP", "-"]
    assert "stranger" not in "\n".join(table) and "Bogotá" not in "\n".join(table)
    # The other organization's account of the same key, and only it, with its own holder.
    other = runner("--organization", "other-co", "accounts", "list", "--format", "json")
    assert other.exit_code == 0, other.output
    assert json.loads(other.stdout) == [
        {
            "key": "ops-main",
            "bank": "Banco de Bogotá",
            "account_type": "savings",
            "masked_number": "****5555",
            "currency": "COP",
            "assigned_users": ["stranger@other.co"],
        },
    ]


def test_render_escapes_what_csv_and_tables_cannot_hold() -> None:
    columns = (Column("name", "Name"), Column("note", "Note"))
    rows = [{"name": 'a "quoted", name', "note": "two\nlines"}]
    assert list(csv.reader(io.StringIO(render(columns, rows, "csv", empty="")))) == [
        ["name", "note"],
        ['a "quoted", name', "two\\x0alines"],  # one record, one line: the line feed shown
    ]
    assert render(columns, rows, "table", empty="").splitlines()[1] == 'a "quoted", name  two lines'
    assert json.loads(render(columns, rows, "json", empty="")) == rows
    # U+2028 is no layout: folding it into a space would hide it, so the table shows it.
    separated = [{"name": "a\u2028b", "note": "c\u0085d"}]
    assert render(columns, separated, "table", empty="").splitlines()[1] == "a\\u2028b  c\\x85d"


def test_csv_cells_a_spreadsheet_would_run_are_quoted(runner: Runner, factory: Factory) -> None:
    """OWASP "CSV Injection": a cell that starts with =, +, -, @, a tab or a carriage return gets a
    leading single quote, so that a spreadsheet opening the export shows it as text instead of
    running it. Phone numbers start with + and are quoted too; numbers are not."""
    org = factory.org("acme-payments")
    role = factory.role(org, "=cmd|' /C calc'!A0", ["users.view"], "@SUM(1+1)")
    mallory = factory.user(
        org,
        "mallory@acme.co",
        role,
        first_name='=HYPERLINK("http://evil","x")',
        last_name="-2+3",
        phone="+573001112233",
        id_number="@1",
    )
    factory.user(
        org, "tab@acme.co", role, first_name="\tTab", last_name="\rReturn", phone="3001112233"
    )
    factory.assign(mallory, factory.bank_account(org, "+key", bank="=Bank", masked_number="-1234"))

    listed = runner("users", "list", "--format", "csv")
    assert listed.exit_code == 0, listed.output
    assert [row[:5] for row in csv.reader(io.StringIO(listed.stdout))][1:] == [
        [
            '\'=HYPERLINK("http://evil","x")',
            "'-2+3",
            "mallory@acme.co",
            "'+573001112233",
            "'=cmd|' /C calc'!A0",
        ],
        ["'\\x09Tab", "'\\x0dReturn", "tab@acme.co", "3001112233", "'=cmd|' /C calc'!A0"],
    ]
    shown = dict(
        csv.reader(
            io.StringIO(runner("users", "show", "mallory@acme.co", "--format", "csv").stdout)
        )
    )
    assert (shown["first_name"], shown["id_number"], shown["phone"]) == (
        '\'=HYPERLINK("http://evil","x")',
        "'@1",
        "'+573001112233",
    )
    assert (shown["role"], shown["role_description"], shown["assigned_accounts"]) == (
        "'=cmd|' /C calc'!A0",
        "'@SUM(1+1)",
        "'+key",
    )
    assert shown["email"] == "mallory@acme.co" and shown["force_password_reset"] == "false"
    roles = list(csv.DictReader(io.StringIO(runner("roles", "list", "--format", "csv").stdout)))
    assert roles == [
        {
            "name": "'=cmd|' /C calc'!A0",
            "description": "'@SUM(1+1)",
            "permissions": "1",
            "users": "2",
        }
    ]
    accounts = list(
        csv.DictReader(io.StringIO(runner("accounts", "list", "--format", "csv").stdout))
    )
    assert [(a["key"], a["bank"], a["masked_number"], a["assigned_users"]) for a in accounts] == [
        ("'+key", "'=Bank", "'-1234", "mallory@acme.co")
    ]
    # JSON is data for scripts, not for spreadsheets: unchanged.
    as_json = json.loads(runner("users", "list", "--format", "json").stdout)
    assert (
        as_json[0]["first_name"] == '=HYPERLINK("http://evil","x")'
        and as_json[0]["phone"] == "+573001112233"
    )


def test_csv_quotes_formula_cells_but_not_numbers() -> None:
    columns = (Column("text", "Text"), Column("count", "Count"), Column("items", "Items"))
    rows = [
        {"text": "-5", "count": -5, "items": ["@a", "b"]},
        {"text": "a=b\rc", "count": 3, "items": []},
    ]
    written = render(columns, rows, "csv", empty="")
    assert list(csv.reader(io.StringIO(written, newline=""))) == [
        ["text", "count", "items"],
        ["'-5", "-5", "'@a, b"],
        ["a=b\\x0dc", "3", ""],
    ]
    # A carriage return is shown like any control: the record stays one line for every reader.
    assert written.endswith("a=b\\x0dc,3,\n")
