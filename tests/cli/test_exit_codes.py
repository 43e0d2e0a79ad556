"""Every exit code comes from one table (errors.ExitCode / errors.EXIT_CODES), and only
cli/main.py ends the process with one: a pipeline branches on these codes, so a command that
picked its own, or a bug that exited 1 like a typo, would send it the wrong way (DESIGN §5)."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from userctl.cli import commands as cli_commands
from userctl.cli.main import cli
from userctl.errors import (
    EXIT_CODES,
    AuditChainBroken,
    ExitCode,
    GuardBlocked,
    InputError,
    StalePlan,
    UsageError,
    exit_code_of,
    plan_exit_code,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "userctl"
# The table, and the one place that ends the process with a code from it. precommit.py relays
# the CLI's own codes (the worst of several runs) and may not import the core (layering).
# cli/leave.py ends the console script's process with the code main's exit carries, picking none.
MAY_EXIT = {
    SRC / "errors.py",
    SRC / "cli" / "main.py",
    SRC / "cli" / "leave.py",
    SRC / "precommit.py",
}


def _leaves(group: click.Group, ctx: click.Context, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += _leaves(command, click.Context(command, parent=ctx), (*path, name))
    return found


COMMANDS = _leaves(cli, click.Context(cli), ())


def _run(*args: str, debug: bool = False) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), input="", catch_exceptions=debug)


def test_the_walk_sees_the_whole_tree() -> None:
    # A walk that missed the sub-groups would make the tests below vacuous.
    assert ("plan",) in COMMANDS and ("audit", "verify") in COMMANDS
    assert ("mfa", "enroll") in COMMANDS and len(COMMANDS) > 30


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_wrong_option_with_the_tables_code(
    command: tuple[str, ...],
) -> None:
    result = _run(*command, "--no-such-option")
    assert result.exit_code == ExitCode.ERROR, result.output
    assert "No such option" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_on_an_empty_database_exits_with_a_code_of_the_table(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    # Run bare against a database nobody created: each fails its own way (a missing option, no
    # schema, no organization...) or succeeds, but always with a code of the table and never as
    # a bug.
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = _run("--database-url", url, *command)
    assert result.exit_code in set(ExitCode), result.output
    assert result.exit_code != ExitCode.SOFTWARE, result.output
    assert "Traceback" not in result.output


def _crash() -> None:
    raise RuntimeError("the index was off by one")


CRASH = click.command("crash")(_crash)


def test_an_unexpected_error_exits_70_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug cannot be reached through real input (tests/cli/test_fuzz*.py hold that): a command
    # that raises stands in for one.
    monkeypatch.setitem(cli_commands.COMMANDS, "crash", f"{__name__}:CRASH")
    result = _run("crash")
    assert result.exit_code == ExitCode.SOFTWARE == 70
    assert result.stderr.splitlines() == [
        "Error: unexpected RuntimeError: the index was off by one. "
        "Rerun with --debug for the traceback."
    ]
    assert "Traceback" not in result.output
    debugged = _run("--debug", "crash", debug=True)
    assert isinstance(debugged.exception, RuntimeError)


def test_the_table_maps_each_kind_of_error() -> None:
    assert exit_code_of(InputError([])) == exit_code_of(UsageError("x")) == ExitCode.ERROR
    assert exit_code_of(GuardBlocked("x")) == exit_code_of(StalePlan("x")) == ExitCode.REFUSED
    assert exit_code_of(AuditChainBroken("x")) == ExitCode.REFUSED
    assert exit_code_of(ValueError("x")) == ExitCode.SOFTWARE
    assert set(EXIT_CODES.values()) <= set(ExitCode)


@pytest.mark.parametrize(
    ("blocked", "detailed", "changes", "needs_2fa", "code"),
    [
        (True, False, False, False, ExitCode.REFUSED),
        (True, True, True, True, ExitCode.REFUSED),
        (False, False, True, True, ExitCode.OK),
        (False, True, False, False, ExitCode.OK),
        (False, True, True, False, ExitCode.CHANGES),
        (False, True, True, True, ExitCode.CHANGES_NEED_2FA),
    ],
)
def test_plans_codes_come_from_the_table(
    blocked: bool, detailed: bool, changes: bool, needs_2fa: bool, code: ExitCode
) -> None:
    got = plan_exit_code(blocked=blocked, detailed=detailed, changes=changes, needs_2fa=needs_2fa)
    assert got == code


def _exits_of(path: Path, root: Path = SRC) -> list[str]:
    """What in `path` picks an exit code itself: sys.exit / ctx.exit / SystemExit / click's Exit,
    an `exit_code` of its own, or a command returning a bare number."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("exit", "_exit", "SystemExit", "Exit"):
                found.append(f"{where}: {name}(...)")
        elif isinstance(node, ast.Raise) and isinstance(node.exc, (ast.Name, ast.Attribute)):
            # `raise SystemExit` without a call (a call is seen above)
            if getattr(node.exc, "id", getattr(node.exc, "attr", "")) in ("SystemExit", "Exit"):
                found.append(f"{where}: raise {ast.unparse(node.exc)}")
        elif isinstance(node, (ast.Attribute, ast.Name)):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if name == "exit_code":
                found.append(f"{where}: exit_code")
        elif isinstance(node, ast.Return) and path.relative_to(root).parts[0] == "cli":
            value = node.value
            if isinstance(value, ast.Constant) and type(value.value) is int:
                found.append(f"{where}: return {value.value}")
    return found


def test_no_module_but_the_table_and_main_picks_an_exit_code() -> None:
    sources = sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)
    found = [hit for path in sources if path not in MAY_EXIT for hit in _exits_of(path)]
    assert found == []


def test_the_exit_check_sees_each_way_of_exiting(tmp_path: Path) -> None:
    sample = tmp_path / "cli" / "sample.py"
    sample.parent.mkdir()
    sample.write_text(
        "import sys\n"
        "class Odd(Exception):\n    exit_code = 5\n"
        "def a(ctx):\n    ctx.exit(3)\n"
        "def b():\n    sys.exit(2)\n"
        "def c():\n    raise SystemExit(1)\n"
        "def d():\n    return 2\n"
        "def e():\n    raise SystemExit\n",
        encoding="utf-8",
    )
    lines = sorted(int(hit.split(":")[1]) for hit in _exits_of(sample, root=tmp_path))
    assert lines == [3, 5, 7, 9, 11, 13]
