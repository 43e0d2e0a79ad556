"""`userctl validate` and `userctl schema` through the real CLI (click's CliRunner)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from userctl.cli.main import cli
from userctl.desired.schema import schema_text

FIXTURES = Path(__file__).parents[1] / "fixtures" / "loader"


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    monkeypatch.delenv("USERCTL_ORGANIZATION", raising=False)


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_a_valid_file_prints_one_line_and_exits_0() -> None:
    result = run("validate", "-f", "valid_full.yaml")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "valid_full.yaml: valid (3 roles, 3 users)\n",
        "",
    )


def test_counts_are_singular_when_one() -> None:
    result = run("validate", "--file", "valid_block_scalars.yaml")
    assert result.stdout == "valid_block_scalars.yaml: valid (2 roles, 1 user)\n"


def test_a_directory_counts_its_files() -> None:
    result = run("validate", "-f", "dir_valid")
    assert (result.exit_code, result.stdout) == (
        0,
        "dir_valid: valid (2 roles, 2 users, 3 files)\n",
    )


def test_problems_go_to_stderr_sorted_then_counted_and_exit_1() -> None:
    result = run("validate", "-f", "invalid_semantic.yaml")
    expected = (FIXTURES / "invalid_semantic.expected").read_text(encoding="utf-8")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == expected + "6 problems found\n"
    lines = expected.splitlines()
    assert lines == sorted(lines, key=lambda line: [int(x) for x in line.split(":")[1:3]])


def test_one_problem_is_singular() -> None:
    result = run("validate", "-f", "invalid_syntax.yaml")
    assert result.exit_code == 1
    assert result.stderr.endswith("\n1 problem found\n")


def test_problems_in_several_files_are_sorted_by_file_then_line() -> None:
    result = run("validate", "-f", "dir_conflicts")
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and lines[-1] == "6 problems found"
    places = [(file, int(line)) for file, line, *_ in (entry.split(":") for entry in lines[:-1])]
    a, b = os.path.join("dir_conflicts", "a.yaml"), os.path.join("dir_conflicts", "b.yaml")
    # a.yaml's one problem is on line 21, below most of b.yaml's: by file first, it still comes
    # first.
    assert places == [(a, 21), (b, 2), (b, 4), (b, 7), (b, 14), (b, 25)]


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
        "import sys\nfrom userctl.cli.main import cli\ntry:\n"
        "    cli.main(['validate', '-f', 'valid_full.yaml'], prog_name='userctl')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'sqlalchemy' not in sys.modules and 'yaml' not in sys.modules, "
        "sorted(sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=FIXTURES, check=False
    )
    assert done.returncode == 0, done.stderr


def test_organization_option_must_match_the_file() -> None:
    assert (
        run("--organization", "acme-payments", "validate", "-f", "valid_full.yaml").exit_code == 0
    )
    result = run("--organization", "other", "validate", "-f", "valid_full.yaml")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --organization other does not match valid_full.yaml, "
        "which declares 'acme-payments'\n"
    )


def test_a_missing_file_is_one_clear_error() -> None:
    result = run("validate", "-f", "missing.yaml")
    assert (result.exit_code, result.stderr) == (
        1,
        "Error: missing.yaml: no such file or directory\n",
    )


def _write_bad(tmp_path: Path, kind: str) -> Path:
    from userctl.desired.reader import MAX_FILE_BYTES

    f = tmp_path / f"{kind}.yaml"
    if kind == "empty":
        f.write_text("# nothing but a comment\n\n")
    elif kind == "not_utf8":
        f.write_bytes(
            "version: 1\norganization: x-org\nroles:\n  Opé: {permissions: []}\n".encode("latin-1")
        )
    else:
        with open(f, "wb") as fh:  # sparse: no disk used, and never read
            fh.truncate(MAX_FILE_BYTES + 1)
    return f


@pytest.mark.parametrize(
    "kind,where,message",
    [
        ("empty", "1:1", "the file is empty"),
        ("not_utf8", "4:5", "the file is not UTF-8: byte 0xe9 at line 4, column 5"),
        ("oversize", "1:1", "the file is 64.0 MiB, over the 64 MiB limit"),
    ],
)
def test_unreadable_files_are_one_located_problem_through_the_cli(
    tmp_path: Path, kind: str, where: str, message: str
) -> None:
    f = _write_bad(tmp_path, kind)
    result = run("validate", "-f", str(f))
    assert result.exit_code == 1 and result.stdout == ""
    first, count = result.stderr.splitlines()
    assert first.startswith(f"{f}:{where}: (document): {message}")
    assert count == "1 problem found" and "Traceback" not in result.stderr


def test_dev_null_is_reported_as_empty_not_missing() -> None:
    result = run("validate", "-f", "/dev/null")
    assert result.exit_code == 1
    assert result.stderr.startswith("/dev/null:1:1: (document): the file is empty")
    assert "no such file" not in result.stderr


def test_a_broken_file_of_a_directory_makes_no_false_alarms_in_the_others(tmp_path: Path) -> None:
    (tmp_path / "a-roles.yaml").write_text(
        "version: 1\norganization: x-org\nroles:\n  Admin: {permissions: [\n"
    )
    (tmp_path / "b-users.yaml").write_text(
        "version: 1\norganization: x-org\nusers:\n  ana@x.co:\n    first_name: Ana\n"
        "    last_name: Ruiz\n    id_type: CC\n    id_number: '1234'\n"
        "    phone: '+5730011122'\n    role: Admin\n"
    )
    (tmp_path / "c-team.yaml").mkdir()
    result = run("validate", "-f", str(tmp_path))
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and lines[-1] == "2 problems found", result.stderr
    assert lines[0].startswith(f"{tmp_path}/a-roles.yaml:") and "YAML syntax error" in lines[0]
    assert lines[1].startswith(f"{tmp_path}/c-team.yaml:1:1: (document): this is a directory")


def test_the_file_option_is_required() -> None:
    result = run("validate")
    assert result.exit_code == 1 and "Missing option '-f' / '--file'" in result.stderr


def test_schema_prints_exactly_the_schema_file() -> None:
    result = run("schema")
    assert result.exit_code == 0
    assert result.stdout == schema_text()
    assert result.stdout == (
        FIXTURES.parent.parent.parent / "schemas" / "userctl.schema.json"
    ).read_text(encoding="utf-8")


# --- --format json and github --------------------------------------------------------------


def test_json_lists_every_problem_with_its_place() -> None:
    from tests.cli.json_outputs import checked

    result = run("validate", "-f", "invalid_semantic.yaml", "--format", "json")
    assert result.exit_code == 1
    data = checked("validate.schema.json", result.stdout)
    expected = (FIXTURES / "invalid_semantic.expected").read_text(encoding="utf-8").splitlines()
    assert (data["valid"], data["files"]) == (False, ["invalid_semantic.yaml"])
    assert [
        f"{p['file']}:{p['line']}:{p['col']}: {p['path']}: {p['message']}" for p in data["problems"]
    ] == expected


def test_json_of_a_valid_directory() -> None:
    from tests.cli.json_outputs import checked

    result = run("validate", "-f", "dir_valid", "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    data = checked("validate.schema.json", result.stdout)
    assert (data["valid"], data["roles"], data["users"], data["problems"], len(data["files"])) == (
        True,
        2,
        2,
        [],
        3,
    )


def test_github_prints_one_annotation_per_problem_and_nothing_when_valid() -> None:
    result = run("validate", "-f", "invalid_semantic.yaml", "--format", "github")
    assert result.exit_code == 1
    expected = (FIXTURES / "invalid_semantic.expected").read_text(encoding="utf-8").splitlines()
    assert len(result.stdout.splitlines()) == len(expected)
    first = result.stdout.splitlines()[0]
    assert (
        first
        == "::error file=invalid_semantic.yaml,line=15,col=11::users.ana@semantic.example.role: "
        "unknown role 'Admn' (did you mean 'Admin'?)"
    )
    valid = run("validate", "-f", "valid_full.yaml", "--format", "github")
    assert (valid.exit_code, valid.stdout) == (0, "")
    assert "valid" in valid.stderr


def test_github_escapes_what_would_end_a_property_or_the_message(tmp_path: Path) -> None:
    folder = tmp_path / "team,a:b%"
    folder.mkdir()
    (folder / "users.yaml").write_text(
        'version: 1\norganization: acme\nroles: {}\nusers:\n  a@acme.co:\n    role: "50%"\n',
        encoding="utf-8",
    )
    result = run("validate", "-f", str(folder / "users.yaml"), "--format", "github")
    assert result.exit_code == 1
    shown = str(folder / "users.yaml").replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
    lines = result.stdout.splitlines()
    assert all(line.startswith(f"::error file={shown},line=") for line in lines)
    assert any("::users.a@acme.co.role: unknown role '50%25'" in line for line in lines)
