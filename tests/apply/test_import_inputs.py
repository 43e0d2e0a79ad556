"""What `accounts import` and `activity import` take at their word (issue 19 part 4):

- the --operator they record: it must be a user of the organization who passes the one operator
  rule (active, not expired, an authenticator, the permission the import needs); anyone else is
  refused (exit 4), text that cannot be an email (an ESC sequence, U+202E) is bad input (exit 1),
  and nothing is written either way. The event it writes says the operator gave no code.
- every CSV field: held to the character rule of the desired-state file and to the limits of
  the column it is stored in, each problem as FILE:LINE:COL, exit 1, nothing written.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Runner
from userctl.apply.audit import list_events
from userctl.db import tables
from userctl.db.engine import begin_read

HEADER: Final = "key,bank,account_type,masked_number,currency\n"
GOOD: Final = HEADER + "ops-main,Bancolombia,checking,****4321,COP\n"


@dataclass
class Acme:
    org: int


@pytest.fixture
def acme(factory: Factory) -> Acme:
    """treasurer@ may import accounts (bank_accounts.manage), people@ last logins
    (users.manage); viewer@ holds neither; lapsed@ did, until yesterday; unenrolled@ holds both
    but has no authenticator."""
    org = factory.org("acme-payments")
    treasury = factory.role(org, "Treasury", ["bank_accounts.manage", "bank_accounts.view"])
    people = factory.role(org, "People", ["users.view", "users.manage"])
    both = factory.role(org, "Both", ["users.manage", "bank_accounts.manage"])
    viewer = factory.role(org, "Viewer", ["users.view", "bank_accounts.view"])
    factory.operator(org, "treasurer@acme.co", treasury)
    factory.operator(org, "people@acme.co", people)
    factory.operator(org, "viewer@acme.co", viewer)
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    factory.operator(org, "lapsed@acme.co", both, expires=yesterday.isoformat())
    factory.user(org, "unenrolled@acme.co", both)
    gone = factory.operator(org, "gone@acme.co", both).user_id
    with factory.engine.begin() as conn:
        conn.execute(
            sa.update(tables.users).where(tables.users.c.id == gone).values(status="inactive")
        )
    factory.user(org, "ana@acme.co", viewer)
    other = factory.org("other-co")
    factory.operator(other, "outsider@other.co", factory.role(other, "Both", ["users.manage"]))
    return Acme(org)


def _write(tmp_path: Path, text: str, name: str = "in.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def _written(engine: Engine, org: int) -> tuple[int, int, list[object]]:
    """(bank accounts, events, last logins): what an import could have written."""
    with begin_read(engine) as conn:
        accounts = conn.execute(sa.select(sa.func.count()).select_from(tables.bank_accounts))
        u = tables.users.c
        logins = list(conn.execute(sa.select(u.last_login_at).order_by(u.id)).scalars())
        return accounts.scalar_one(), len(list_events(conn, org)), logins


def _logins(tmp_path: Path) -> str:
    return _write(tmp_path, "email,last_login_at\nana@acme.co,2026-01-02T03:04:05Z\n", "l.csv")


IMPORTS: Final = {
    "accounts import": (("accounts", "import"), "treasurer@acme.co"),
    "activity import": (("activity", "import"), "people@acme.co"),
}


def _file(command: str, tmp_path: Path) -> str:
    return _write(tmp_path, GOOD) if command == "accounts import" else _logins(tmp_path)


@pytest.mark.parametrize("command", IMPORTS)
def test_the_operator_is_recorded_as_an_unverified_operator(
    runner: Runner, acme: Acme, engine: Engine, tmp_path: Path, command: str
) -> None:
    args, operator = IMPORTS[command]
    result = runner(
        "--organization",
        "acme-payments",
        *args,
        _file(command, tmp_path),
        "--operator",
        operator.upper(),
    )
    assert result.exit_code == 0, result.output
    with begin_read(engine) as conn:
        [event, *_] = list_events(conn, acme.org)
    assert (event["operator"], event["operator_verified"], event["verified_by"]) == (
        operator,
        False,
        "none",
    )


REFUSED: Final = [
    # (who, exit code, the start of the one sentence said)
    ("nobody@acme.co", 4, "Error: operator nobody@acme.co is not a user of this organization"),
    ("outsider@other.co", 4, "Error: operator outsider@other.co is not a user of this"),
    ("viewer@acme.co", 4, "Error: operator viewer@acme.co (role Viewer) lacks "),
    ("lapsed@acme.co", 4, "Error: operator lapsed@acme.co expired on "),
    ("unenrolled@acme.co", 4, "Error: operator unenrolled@acme.co has no authenticator"),
    ("gone@acme.co", 4, "Error: operator gone@acme.co is inactive"),
    ("treasurer@acme.co\x1b]0;owned\x07", 1, "Error: --operator contains U+001B ESCAPE"),
    ("treasurer@acme.co\u202e", 1, "Error: --operator contains U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("tr\u0435asurer@acme.co", 1, "Error: --operator contains U+0435 CYRILLIC SMALL LETTER IE"),
    ("", 1, "Error: {command} records who ran it in the audit log: name yourself with"),
    ("   ", 1, "Error: {command} records who ran it in the audit log: name yourself with"),
]


@pytest.mark.parametrize("command", IMPORTS)
@pytest.mark.parametrize(("who", "code", "said"), REFUSED)
def test_anyone_else_is_refused_and_nothing_is_written(
    runner: Runner,
    acme: Acme,
    engine: Engine,
    tmp_path: Path,
    command: str,
    who: str,
    code: int,
    said: str,
) -> None:
    args, operator = IMPORTS[command]
    if "lacks" in said and command == "activity import":
        said = said.replace("viewer@acme.co (role Viewer) lacks ", "viewer@acme.co (role Viewer)")
    before = _written(engine, acme.org)
    result = runner(
        "--organization", "acme-payments", *args, _file(command, tmp_path), "--operator", who
    )
    assert result.exit_code == code, result.output
    assert result.stderr.startswith(said.format(command=command)), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert all(c.isprintable() for c in result.stderr.rstrip("\n")), result.stderr
    assert "Traceback" not in result.output and "unexpected" not in result.output
    assert _written(engine, acme.org) == before


@pytest.mark.parametrize("command", IMPORTS)
def test_no_operator_at_all_is_refused(
    runner: Runner, acme: Acme, engine: Engine, tmp_path: Path, command: str
) -> None:
    args, _ = IMPORTS[command]
    before = _written(engine, acme.org)
    result = runner("--organization", "acme-payments", *args, _file(command, tmp_path))
    assert result.exit_code == 1, result.output
    assert "--operator EMAIL" in result.stderr
    assert _written(engine, acme.org) == before


def test_each_import_needs_its_own_permission(runner: Runner, acme: Acme, tmp_path: Path) -> None:
    accounts = runner(
        "--organization",
        "acme-payments",
        "accounts",
        "import",
        _write(tmp_path, GOOD),
        "--operator",
        "people@acme.co",
    )
    assert accounts.exit_code == 4
    assert "lacks bank_accounts.manage" in accounts.stderr
    logins = runner(
        "--organization",
        "acme-payments",
        "activity",
        "import",
        _logins(tmp_path),
        "--operator",
        "treasurer@acme.co",
    )
    assert logins.exit_code == 4
    assert "lacks users.manage" in logins.stderr


# --- every CSV field held to the file's character rule ---------------------------------------

ACCOUNT_FIELDS: Final = [
    # (the row as written, the column named, its 1-based position, the start of the message)
    ("ops-main,Banco\u202e,checking,****4321,COP", "bank", 10, "contains U+202E RIGHT-TO-LEFT"),
    ("ops-main,Banco\x1b[2J,checking,****4321,COP", "bank", 10, "contains U+001B ESCAPE"),
    ("ops-main,Banco\x07,checking,****4321,COP", "bank", 10, "contains U+0007 ALERT"),
    ("ops-main,Banco\u0085,checking,****4321,COP", "bank", 10, "contains U+0085 NEXT LINE"),
    ("ops-main,Banco,check\u200bing,****4321,COP", "account_type", 16, "contains U+200B ZERO"),
    ("ops-main,Banco,checking\u2028,****4321,COP", "account_type", 16, "contains U+2028 LINE"),
    ("ops-main,Banco,\u2066checking,****4321,COP", "account_type", 16, "contains U+2066 LEFT"),
    ("ops-main,Banco,checking,****4321\u200e,COP", "masked_number", 25, "contains U+200E LEFT"),
    ("ops-main,Banco,checking,****4321,CO\u200dP", "currency", 34, "contains U+200D ZERO WIDTH"),
    ("ops\u00admain,Banco,checking,****4321,COP", "key", 1, "contains U+00AD SOFT HYPHEN"),
    # A control at a field's edge, which stripping the padding would have hidden:
    # (the column is the value's, after what str.strip calls padding, U+0085 included)
    ("ops-main,\u0085Banco,checking,****4321,COP", "bank", 11, "contains U+0085 NEXT LINE"),
    ("ops-main,Banco\t,checking,****4321,COP", "bank", 10, "contains U+0009 CHARACTER TAB"),
    (
        "ops-main," + unicodedata.normalize("NFD", "Bancó") + ",checking,****4321,COP",
        "bank",
        10,
        "is not in Unicode NFC form",
    ),
    ("ops-main," + "B" * 101 + ",checking,****4321,COP", "bank", 10, "is 101 characters, more"),
    ("ops-main,Banco," + "c" * 33 + ",****4321,COP", "account_type", 16, "is 33 characters, more"),
]


@pytest.mark.parametrize(("row", "column", "col", "message"), ACCOUNT_FIELDS)
def test_accounts_import_holds_every_field_to_the_character_rule(
    runner: Runner,
    acme: Acme,
    engine: Engine,
    tmp_path: Path,
    row: str,
    column: str,
    col: int,
    message: str,
) -> None:
    path = _write(tmp_path, HEADER + "usd-1,Citi,savings,****9876,USD\n" + row + "\n")
    before = _written(engine, acme.org)
    result = runner(
        "--organization",
        "acme-payments",
        "accounts",
        "import",
        path,
        "--operator",
        "treasurer@acme.co",
    )
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {path}:3:{col}: {column}: {message}"), line
    assert all(c.isprintable() for c in line), line
    assert _written(engine, acme.org) == before  # the good row is not imported either


ACTIVITY_FIELDS: Final = [
    ("ana@acme.co\u202e,2026-01-02", "email", 1, "contains U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\x1b[31mana@acme.co,2026-01-02", "email", 1, "contains U+001B ESCAPE"),
    ("an\u0430@acme.co,2026-01-02", "email", 1, "contains U+0430 CYRILLIC SMALL LETTER A"),
    ("ana@acme.co,2026-01-02\x07", "last_login_at", 13, "contains U+0007 ALERT"),
    ("ana@acme.co,2026-01-02\u2028", "last_login_at", 13, "contains U+2028 LINE SEPARATOR"),
    ("ana@acme.co,2026\u200b-01-02", "last_login_at", 13, "contains U+200B ZERO WIDTH SPACE"),
    ("ana@acme.co," + "9" * 101, "last_login_at", 13, "is 101 characters, more than the 100"),
    ("a" * 250 + "@acme.co,2026-01-02", "email", 1, "is 258 characters, more than the 254"),
]


@pytest.mark.parametrize(("row", "column", "col", "message"), ACTIVITY_FIELDS)
def test_activity_import_holds_every_field_to_the_character_rule(
    runner: Runner,
    acme: Acme,
    engine: Engine,
    tmp_path: Path,
    row: str,
    column: str,
    col: int,
    message: str,
) -> None:
    path = _write(
        tmp_path, "email,last_login_at\ntreasurer@acme.co,2026-01-01T00:00:00Z\n" + row + "\n"
    )
    before = _written(engine, acme.org)
    result = runner(
        "--organization",
        "acme-payments",
        "activity",
        "import",
        path,
        "--operator",
        "people@acme.co",
    )
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {path}:3:{col}: {column}: {message}"), line
    assert all(c.isprintable() for c in line), line
    assert _written(engine, acme.org) == before


def test_the_file_name_recorded_in_the_audit_log_is_held_to_the_rule(
    runner: Runner, acme: Acme, engine: Engine, tmp_path: Path
) -> None:
    # activity import records the file's name in its event: a name with an ESC sequence or a
    # bidi override would reach the audit log and the evidence pack as free text.
    before = _written(engine, acme.org)
    for name in ("logins\x1b[2J.csv", "logins\u202evsc.csv"):
        path = _write(tmp_path, "email,last_login_at\nana@acme.co,2026-01-02\n", name)
        result = runner(
            "--organization", "acme-payments", "activity", "import", path, *IMPORT_AS_PEOPLE
        )
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("Error: the file name "), result.stderr
        assert "rename the file" in result.stderr
        assert all(c.isprintable() for c in result.stderr.rstrip("\n"))
    assert _written(engine, acme.org) == before


IMPORT_AS_PEOPLE: Final = ("--operator", "people@acme.co")
