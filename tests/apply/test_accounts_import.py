"""`userctl accounts import FILE.csv`: registers accounts, idempotent by key, and any bad row
imports nothing (every bad row reported as FILE:LINE:COL). Parsing rules run without a
database; the command runs on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Runner
from userctl.apply.accounts_import import plan_import
from userctl.apply.audit import list_events
from userctl.db.engine import begin_read
from userctl.db.snapshot import read_bank_accounts
from userctl.errors import InputError
from userctl.state import BankAccount

HEADER = "key,bank,account_type,masked_number,currency\n"
GOOD = HEADER + "ops-main,Bancolombia,checking,****4321,COP\nusd-1,Citi,savings,****9876,USD\n"


def _write(tmp_path: Path, text: str, name: str = "accounts.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _operator(factory: Factory, org: int, email: str = "ana@acme.co") -> str:
    """An operator who may import accounts (bank_accounts.manage): the one the audit names."""
    role = factory.role(org, f"Treasury {email}", ["bank_accounts.manage"])
    return factory.operator(org, email, role).email


def _accounts(engine: Engine, org_id: int) -> dict[str, BankAccount]:
    with begin_read(engine) as conn:
        return read_bank_accounts(conn, org_id)


def _problems(text: str, existing: dict[str, BankAccount] | None = None) -> list[str]:
    with pytest.raises(InputError) as caught:
        plan_import(text.encode("utf-8"), "a.csv", existing or {})
    return [str(p) for p in caught.value.problems]


def test_import_registers_then_is_idempotent(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    org = factory.org("acme-payments")
    factory.bank_account(org, "legacy", bank="Davivienda", masked_number="****1111")
    _operator(factory, org)
    bo = _operator(factory, org, "bo@acme.co")
    path = _write(tmp_path, GOOD)

    first = runner("accounts", "import", path, "--operator", "Ana@acme.co")
    assert first.exit_code == 0, first.output
    assert first.stdout == "acme-payments: imported 2, unchanged 0\n"
    assert _accounts(engine, org) == {
        "legacy": BankAccount("legacy", "Davivienda", "savings", "****1111", "COP"),
        "ops-main": BankAccount("ops-main", "Bancolombia", "checking", "****4321", "COP"),
        "usd-1": BankAccount("usd-1", "Citi", "savings", "****9876", "USD"),
    }

    again = runner(
        "accounts",
        "import",
        _write(tmp_path, GOOD + "new-one,Citi,savings,****0001,USD\n", "more.csv"),
        "--operator",
        bo,
    )
    assert again.exit_code == 0, again.output
    assert again.stdout == "acme-payments: imported 1, unchanged 2\n"
    assert len(_accounts(engine, org)) == 4

    # Each registration is audited: who (an operator of the organization, unverified: no code
    # was given), what, and the values.
    with begin_read(engine) as conn:
        events = list_events(conn, org)
    assert [
        (e["operator"], e["verified_by"], e["operator_verified"], e["action"], e["address"])
        for e in events
    ] == [
        ("ana@acme.co", "none", False, "bank_account.import", 'bank_account["ops-main"]'),
        ("ana@acme.co", "none", False, "bank_account.import", 'bank_account["usd-1"]'),
        ("bo@acme.co", "none", False, "bank_account.import", 'bank_account["new-one"]'),
    ]


def test_a_bad_row_imports_nothing(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    org = factory.org("acme-payments")
    factory.bank_account(
        org, "ops-main", bank="Bancolombia", account_type="checking", masked_number="****4321"
    )
    path = _write(
        tmp_path,
        HEADER
        + "fresh,Citi,savings,****0001,USD\n"  # good, but must not be imported either
        + "ops-main,Davivienda,checking,****4321,COP\n"  # existing key, other values
        + "bad,Citi,savings,****0002,usd\n",
    )
    result = runner("accounts", "import", path, "--operator", _operator(factory, org))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:3:1: key: bank account 'ops-main' is already registered with other values "
        "(bank 'Davivienda' here, 'Bancolombia' registered): userctl never edits a bank account; "
        "correct the row or use a new key",
        f"{path}:4:27: currency: 'usd' is not a currency code: 3 "
        "upper-case letters, e.g. COP or USD",
    ]
    assert set(_accounts(engine, org)) == {"ops-main"}
    with begin_read(engine) as conn:
        assert list_events(conn, org) == []


def test_import_needs_an_organization_and_a_file(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    factory.org("acme-payments")
    other = factory.org("other-co")
    who = _operator(factory, other)
    path = _write(tmp_path, GOOD)
    ambiguous = runner("accounts", "import", path, "--operator", who)
    assert ambiguous.exit_code == 1 and "--organization" in ambiguous.stderr
    chosen = runner("--organization", "other-co", "accounts", "import", path, "--operator", who)
    assert chosen.stdout == "other-co: imported 2, unchanged 0\n"
    accounts = runner("--organization", "other-co", "accounts", "list", "--format", "json")
    assert [a["key"] for a in json.loads(accounts.stdout)] == ["ops-main", "usd-1"]
    missing = runner("--organization", "other-co", "accounts", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1 and "does not exist" in missing.output


# --- parsing rules, no database ---


def test_every_bad_row_is_reported_with_its_line_and_column() -> None:
    text = (
        HEADER
        + "ok-1,Citi,savings,****0001,USD\n"
        + ",Citi,savings,****0002,USD\n"  # empty key
        + "ok-2,Citi,savings,1234567890,USD\n"  # full account number
        + "ok-3,Citi,savings,****0003\n"  # missing column
        + "ok 4,,savings,****0004,US\n"  # bad key, empty bank, bad currency
        + "ok-1,Citi,savings,****0001,USD\n"  # duplicate of line 2
        # quoted: columns unknown, the line is known
        + '"ok-5","Banco, S.A.",savings,****0005,EURO\n'
    )
    assert _problems(text) == [
        "a.csv:3:1: key: must not be empty",
        "a.csv:4:19: masked_number: '1234567890' shows 10 digits: at most the last 4 may be "
        "unmasked (e.g. ****1234); never put a full account number in a file",
        "a.csv:5:1: row: expected 5 fields (key, bank, account_type, "
        "masked_number, currency), found 4",
        "a.csv:6:1: key: 'ok 4' is not a valid key: letters, digits, '.', '_' and '-', "
        "starting with a letter or digit",
        "a.csv:6:6: bank: must not be empty",
        "a.csv:6:24: currency: 'US' is not a currency code: 3 upper-case letters, e.g. COP or USD",
        "a.csv:7:1: key: key 'ok-1' is also on line 2",
        # Longer than its column first: the character and width rule of every field comes first.
        "a.csv:8:1: currency: is 4 characters, more than the 3 it holds",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "",
            "a.csv:1:1: header: empty file: the first line must be the header "
            "key,bank,account_type,masked_number,currency",
        ),
        (
            "ops-main,Citi,savings,****1,COP\n",
            "a.csv:1:1: header: unknown column 'ops-main': the columns are key, bank, "
            "account_type, masked_number, currency",
        ),
        (
            "key,bank,type,masked_number,currency\n",
            "a.csv:1:10: header: unknown column 'type': the columns are key, bank, "
            "account_type, masked_number, currency",
        ),
        (
            "key,bank,account_type,masked_number\n",
            "a.csv:1:1: header: missing column(s) currency: the header must name "
            "key,bank,account_type,masked_number,currency",
        ),
        (
            "key,key,bank,account_type,masked_number,currency\n",
            "a.csv:1:5: header: column 'key' appears twice",
        ),
    ],
)
def test_the_header_is_required(text: str, expected: str) -> None:
    assert expected in _problems(text)


def test_header_order_spreadsheet_habits_and_unchanged_rows() -> None:
    # Any column order, a byte-order mark, CRLF line ends, padding spaces, trailing empty rows:
    # all read as meant.
    text = (
        "\ufeffcurrency, key ,bank,account_type,masked_number\r\n"
        "COP, ops-main ,Bancolombia,checking,****4321\r\n"
        'USD,usd-1,"Citi Bank",savings,****9876\r\n'
        ",,,,\r\n\r\n"
    )
    existing = {"ops-main": BankAccount("ops-main", "Bancolombia", "checking", "****4321", "COP")}
    plan = plan_import(text.encode("utf-8"), "a.csv", existing)
    assert plan.unchanged == (existing["ops-main"],)
    assert plan.new == (BankAccount("usd-1", "Citi Bank", "savings", "****9876", "USD"),)
    # A quoted field spanning lines is valid CSV, but a line break is no part of a bank's name
    # (the file's character rule); the row after it is counted from its real line.
    spanning = text + 'USD,usd-2,"Citi\r\nBank",savings,****9876\r\n'
    bad = spanning + "cop,x-1,Citi,savings,****1\r\n"
    assert _problems(bad, existing) == [
        "a.csv:6:1: bank: contains U+000D CARRIAGE RETURN at position 5 and 1 more control or "
        "format characters, which would display differently from what is stored: remove them",
        "a.csv:8:1: currency: 'cop' is not a currency code: 3 upper-case letters, e.g. COP or USD",
    ]


def test_a_file_that_is_not_utf8_is_refused_where_it_breaks() -> None:
    data = (HEADER + "ops,Caf").encode("utf-8") + b"\xe9,savings,****1,COP\n"
    with pytest.raises(InputError) as caught:
        plan_import(data, "a.csv", {})
    assert (
        str(caught.value.problems[0])
        == "a.csv:2:8: (document): the file is not UTF-8 text; save it as UTF-8 CSV"
    )
