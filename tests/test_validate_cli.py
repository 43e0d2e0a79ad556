"""`userctl validate` and `userctl schema` through the real CLI (click's CliRunner)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from userctl.cli.main import cli
from userctl.desired.schema import schema_text

FIXTURES = Path(__file__).parent / "fixtures" / "loader"


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    monkeypatch.delenv("USERCTL_ORGANIZATION", raising=False)


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_a_valid_file_prints_one_line_and_exits_0() -> None:
    result = run("validate", "-f", "valid_full.yaml")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "valid_full.yaml: valid (3 roles, 3 users)\n", "")


def test_counts_are_singular_when_one() -> None:
    result = run("validate", "--file", "valid_block_scalars.yaml")
    assert result.stdout == "valid_block_scalars.yaml: valid (2 roles, 1 user)\n"


def test_a_directory_counts_its_files() -> None:
    result = run("validate", "-f", "dir_valid")
    assert (result.exit_code, result.stdout) == (0, "dir_valid: valid (2 roles, 2 users, 3 files)\n")


def test_problems_go_to_stderr_sorted_then_counted_and_exit_1() -> None:
    result = run("validate", "-f", "invalid_semantic.yaml")
    expected = (FIXTURES / "invalid_semantic.expected").read_text(encoding="utf-8")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == expected + "6 problems found\n"
    lines = expected.splitlines()
    assert lines == sorted(lines, key=lambda l: [int(x) for x in l.split(":")[1:3]])


def test_one_problem_is_singular() -> None:
    result = run("validate", "-f", "invalid_syntax.yaml")
    assert result.exit_code == 1
    assert result.stderr.endswith("\n1 problem found\n")


def test_problems_in_several_files_are_sorted_by_file_then_line() -> None:
    result = run("validate", "-f", "dir_conflicts")
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and lines[-1] == "5 problems found"
    assert all(line.startswith(os.path.join("dir_conflicts", "b.yaml:")) for line in lines[:-1])


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.yaml")))
def test_no_fixture_ever_produces_a_traceback(name: str) -> None:
    result = run("validate", "-f", name)
    assert result.exit_code == (0 if name.startswith("valid_") else 1)
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    if result.exit_code:
        assert result.stderr.splitlines()[0].startswith(f"{name}:")


def test_validate_never_touches_the_database(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    result = run("--database-url", f"sqlite:///{db}", "validate", "-f", "valid_full.yaml")
    assert result.exit_code == 0 and not db.exists()
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    assert run("--database-url", unreachable, "validate", "-f", "valid_full.yaml").exit_code == 0


def test_validate_does_not_import_the_database_layer(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom userctl.cli.main import cli\n"
        "try:\n    cli.main(['validate', '-f', 'valid_full.yaml'], prog_name='userctl')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'sqlalchemy' not in sys.modules and 'yaml' not in sys.modules, sorted(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=FIXTURES, check=False)
    assert done.returncode == 0, done.stderr


def test_organization_option_must_match_the_file() -> None:
    assert run("--organization", "acme-payments", "validate", "-f", "valid_full.yaml").exit_code == 0
    result = run("--organization", "other", "validate", "-f", "valid_full.yaml")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --organization other does not match valid_full.yaml, which declares 'acme-payments'\n"
    )


def test_a_missing_file_is_one_clear_error() -> None:
    result = run("validate", "-f", "missing.yaml")
    assert (result.exit_code, result.stderr) == (1, "Error: missing.yaml: no such file or directory\n")


def test_the_file_option_is_required() -> None:
    result = run("validate")
    assert result.exit_code == 1 and "Missing option '-f' / '--file'" in result.stderr


def test_schema_prints_exactly_the_schema_file() -> None:
    result = run("schema")
    assert result.exit_code == 0
    assert result.stdout == schema_text()
    assert result.stdout == (FIXTURES.parent.parent.parent / "schemas" / "userctl.schema.json").read_text(encoding="utf-8")
