"""Every refusal is one sentence naming what to do, never a misleading one: "run `userctl db
upgrade`" only when the schema really is behind, whatever else a database error says; and a
symbolic link loop among a directory's *.yaml files called a loop, not a link to a file that does
not exist."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Connection, Engine

from tests.apply.apply_helpers import Org
from tests.conftest import Runner
from userctl.cli.main import cli
from userctl.db import migrate, snapshot

FIXTURES = Path(__file__).parents[1] / "fixtures" / "loader"
UPGRADE = "run `userctl db upgrade`"


# --- database errors ------------------------------------------------------------------------------


def _failing_read(monkeypatch: pytest.MonkeyPatch, error: Exception | None = None) -> None:
    """The organization's lookup fails as a statement fails: with `error`, or with a real one from
    the database (a column that is not there)."""

    def resolve(conn: Connection, slug: str | None) -> Any:
        if error is not None:
            raise error
        return conn.execute(sa.text("SELECT no_such_column FROM organizations")).all()

    monkeypatch.setattr(snapshot, "resolve_organization", resolve)


def _set_revision(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = :r"), {"r": revision}
        )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_database_error_on_a_schema_that_is_behind_says_to_upgrade(
    engine: Engine, org: Org, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database at an older revision, read by a command that did not check first (or moved back
    # under it after its check): the failure is the schema's, and upgrading is what to do.
    _set_revision(engine, "0001")
    monkeypatch.setattr(migrate, "require_current", lambda engine: None)
    _failing_read(monkeypatch)
    result = runner("users", "list")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: database error: no such column: no_such_column; database at {runner.db_url} is at "
        f"revision 0001, expected {migrate.HEAD_REVISION}: {UPGRADE}"
    ]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_database_error_on_a_current_schema_says_what_failed_and_no_upgrade(
    engine: Engine, org: Org, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_read(monkeypatch)
    result = runner("users", "list")
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        result.stderr
        == "Error: database error: no such column: no_such_column; rerun with --debug for details\n"
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_missing_table_on_a_current_schema_is_not_blamed_on_the_revision(
    engine: Engine, org: Org, runner: Runner
) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE audit_events"))
    result = runner("audit", "log")
    assert result.exit_code == 1
    assert (
        result.stderr
        == "Error: database error: no such table: audit_events; rerun with --debug for details\n"
    )


class _DriverError(Exception):
    """What pymysql raises: (code, text)."""


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    "orig,said",
    [
        (
            _DriverError(1406, "Data too long for column 'first_name' at row 1"),
            "Data too long for column 'first_name' at row 1",
        ),
        (
            ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
            "PostgreSQL text fields cannot contain NUL (0x00) bytes",
        ),
        (
            ValueError("value too long for type character varying(100)\nDETAIL: ..."),
            "value too long for type character varying(100)",
        ),
    ],
    ids=["mariadb-too-long", "postgresql-nul", "postgresql-too-long"],
)
def test_the_drivers_words_are_the_sentence(
    engine: Engine,
    org: Org,
    runner: Runner,
    monkeypatch: pytest.MonkeyPatch,
    orig: Exception,
    said: str,
) -> None:
    _failing_read(monkeypatch, sa.exc.DataError("SELECT ...", {}, orig))
    result = runner("users", "list")
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: database error: {said}; rerun with --debug for details\n",
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_debug_still_shows_the_database_error_itself(
    engine: Engine, org: Org, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_read(monkeypatch)
    with pytest.raises(Exception) as raised:
        runner("--debug", "users", "list")
    assert "no such column: no_such_column" in str(raised.value)
    assert isinstance(raised.value.__cause__, sa.exc.OperationalError)


def test_a_database_error_outside_any_command_is_one_sentence() -> None:
    from userctl.cli.failures import unexpected as _unexpected

    message = _unexpected(sa.exc.OperationalError("SELECT 1", {}, ValueError("disk I/O error")))
    assert message == "Error: database error: disk I/O error; rerun with --debug for details."


# --- symbolic link loops --------------------------------------------------------------------------

LOOP = "following the links never reaches a file; fix the link or remove it"


def test_a_link_loop_in_a_directory_is_named_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("USERCTL_ORGANIZATION", raising=False)
    (tmp_path / "a-roles.yaml").write_bytes((FIXTURES / "valid_minimal.yaml").read_bytes())
    os.symlink("c-ring.yaml", tmp_path / "b-ring.yaml")
    os.symlink("b-ring.yaml", tmp_path / "c-ring.yaml")
    os.symlink("d-self.yaml", tmp_path / "d-self.yaml")
    os.symlink("gone.yaml", tmp_path / "e-broken.yaml")
    result = CliRunner().invoke(cli, ["validate", "-f", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{tmp_path}/b-ring.yaml:1:1: (document): this is a symbolic link loop: it "
        f"points to c-ring.yaml, and {LOOP}",
        f"{tmp_path}/c-ring.yaml:1:1: (document): this is a symbolic link loop: it "
        f"points to b-ring.yaml, and {LOOP}",
        f"{tmp_path}/d-self.yaml:1:1: (document): this is a symbolic link loop: it "
        f"points to d-self.yaml, and {LOOP}",
        # A link to nothing is still a broken link.
        f"{tmp_path}/e-broken.yaml:1:1: (document): this is a broken link: it points to gone.yaml, "
        "which does not exist; fix the link or remove it",
        "4 problems found",
    ]


def test_a_link_loop_given_as_the_file_is_named_a_loop(tmp_path: Path) -> None:
    os.symlink("self.yaml", tmp_path / "self.yaml")
    result = CliRunner().invoke(
        cli, ["validate", "-f", str(tmp_path / "self.yaml")], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{tmp_path}/self.yaml:1:1: (document): this is a symbolic link loop: it "
        f"points to self.yaml, and {LOOP}"
    )


@pytest.mark.parametrize(
    "text",
    ["\ufeff\ufeff", "\ufeff# roles\n\ufeff\n", "# roles\n  \ufeff\n"],
    ids=["two", "lines", "indented"],
)
def test_a_file_of_byte_order_marks_and_comments_is_empty(tmp_path: Path, text: str) -> None:
    # Found by test_fuzz: libyaml skips a BOM wherever a token may start, so such a file loaded as
    # no document with no problem, and failed later as "unexpected IndexError".
    f = tmp_path / "users.yaml"
    f.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", "-f", str(f)], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(
        f"{f}:1:1: (document): the file is empty (only whitespace or comments)"
    )


# --- bytes that are not text ----------------------------------------------------------------------
# Python hands undecodable bytes of the command line, the environment and file names over as lone
# surrogates ("\udcff" for the byte 0xff), which no database, digest or file can store.


@pytest.mark.parametrize(
    "args,named",
    [
        (["users", "show", "ana\udcff@acme.co"], "argument 5"),  # after --database-url URL
        (["--organization", "acme\udcfe", "users", "list"], "the value of --organization"),
        (["--organization=acme\udcfe", "users", "list"], "the value of --organization"),
    ],
    ids=["positional", "option", "option="],
)
def test_an_argument_that_is_not_utf8_is_refused_without_its_value(
    tmp_path: Path, args: list[str], named: str
) -> None:
    result = CliRunner().invoke(
        cli, ["--database-url", f"sqlite:///{tmp_path / 'none.db'}", *args], catch_exceptions=False
    )
    byte = "0xff" if "\udcff" in "".join(args) else "0xfe"
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: {named} is not UTF-8 text (byte {byte} cannot be decoded): give it in UTF-8\n",
    )
    assert not (tmp_path / "none.db").exists()


def test_a_variable_that_is_not_utf8_is_refused_without_its_value(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["--database-url", f"sqlite:///{tmp_path / 'none.db'}", "users", "list"],
        env={"USERCTL_SMTP_URL": "smtp://user:s\udce9cret@mail"},
        catch_exceptions=False,
    )
    assert (result.exit_code, result.stderr) == (
        1,
        "Error: USERCTL_SMTP_URL is not UTF-8 text (byte 0xe9 cannot "
        "be decoded): give it in UTF-8\n",
    )


def test_a_file_of_a_directory_whose_name_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a-roles.yaml").write_bytes((FIXTURES / "valid_minimal.yaml").read_bytes())
    with open(os.fsencode(tmp_path) + b"/b-caf\xe9.yaml", "wb") as fh:  # a Latin-1 name
        fh.write((FIXTURES / "valid_minimal.yaml").read_bytes())
    result = CliRunner().invoke(cli, ["validate", "-f", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 1
    first, count = result.stderr.splitlines()
    assert first.startswith(f"{tmp_path}/b-caf") and count == "1 problem found"
    assert first.endswith(".yaml:1:1: (document): this file's name is not UTF-8 text: rename it")
