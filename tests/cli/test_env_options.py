"""Options a pipeline can set (issue 11, part 1): every option of every command has a USERCTL_*
variable shown in its --help, the variables take effect, the global options work after the
sub-command, a mistyped command gets a suggestion, every help ends with examples, and the
generated docs/variables.md lists exactly the variables there are."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import click
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import ORG, Org, drop_gone, exported, live_state, save_plan
from tests.cli.yaml_files import write_desired
from tests.conftest import Runner
from userctl.cli.main import cli
from userctl.cli.options import ENVIRONMENT
from userctl.state import DesiredState

USERCTL = str(Path(sys.executable).with_name("userctl"))


def walk(
    command: click.Command = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and group of the tree, as `userctl` loads them."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from walk(sub, (*path, name))


def options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and p.expose_value]


def help_of(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


TREE = list(walk())
PATHS = [path for path, _ in TREE]


def test_the_walk_sees_nested_commands() -> None:
    assert {
        ("audit", "verify"),
        ("users", "list"),
        ("db", "upgrade"),
        ("notifications", "send"),
        ("mfa", "enroll"),
        ("accounts", "import"),
    } <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "userctl")
def test_every_option_has_a_variable_shown_in_help(path: tuple[str, ...]) -> None:
    command = dict(TREE)[path]
    shown = " ".join(help_of(path).split())
    for option in options(command):
        assert isinstance(option.envvar, str) and option.envvar.startswith("USERCTL_"), (
            path,
            option.opts,
        )
        assert f"env var: {option.envvar}" in shown, (path, option.opts)


def envvars() -> dict[str, set[str]]:
    """Each variable of the tree -> the long names of the options it sets."""
    found: dict[str, set[str]] = {}
    for _, command in TREE:
        for option in options(command):
            found.setdefault(str(option.envvar), set()).add(max(option.opts, key=len))
    return found


def test_one_meaning_one_name() -> None:
    found = envvars()
    assert {name: flags for name, flags in found.items() if len(flags) > 1} == {}
    assert {
        "USERCTL_ALLOW_MASS_REMOVAL",
        "USERCTL_OPERATOR",
        "USERCTL_OTP_CODE",
        "USERCTL_LOCK_TIMEOUT",
        "USERCTL_MAX_AGE",
        "USERCTL_DATABASE_URL",
        "USERCTL_ORGANIZATION",
        "USERCTL_FILE",
        "USERCTL_PLAN_FORMAT",
        "USERCTL_AUDIT_LOG_FORMAT",
        "USERCTL_USERS_LIST_FORMAT",
        "USERCTL_INVITE_BASE_URL",
    } <= set(found)
    # The shared ones are the same variable on every command that has the option.
    operator = {
        path for path, command in TREE for o in options(command) if o.envvar == "USERCTL_OPERATOR"
    }
    assert {
        ("plan",),
        ("apply",),
        ("approve",),
        ("mfa", "enroll"),
        ("accounts", "import"),
    } <= operator


def test_the_secrets_are_no_options_and_are_listed_in_the_top_level_help() -> None:
    shown = " ".join(help_of(()).split())
    assert "Environment" in shown
    for name in ENVIRONMENT:
        assert name in shown
        assert name not in envvars()


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "userctl")
def test_every_help_ends_with_examples_of_itself(path: tuple[str, ...]) -> None:
    text = help_of(path).rstrip()
    head, _, examples = text.rpartition("\n  Examples:\n")
    assert head, f"no Examples block at the end of `userctl {' '.join(path)} --help`"
    lines = examples.splitlines()
    assert 1 <= len(lines) <= 2 and all(line.startswith("    ") for line in lines)
    assert all(" ".join(("userctl", *path)) in line for line in lines)


def test_the_variables_doc_lists_exactly_the_variables_and_is_up_to_date() -> None:
    from tests.cli import variables_doc

    text = variables_doc.DOC.read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `(USERCTL_[A-Z_]+)` \|", text, flags=re.MULTILINE))
    assert table == set(envvars()) | set(ENVIRONMENT)
    assert text == variables_doc.render(), (
        "docs/variables.md is out of date: run `python -m tests.cli.variables_doc`"
    )


# --- variables take effect ------------------------------------------------------------------


@pytest.fixture
def mass_removal(engine: Engine, org: Org, tmp_path: Path) -> Path:
    """A desired-state file that keeps only the operator: the mass-removal guard blocks it."""
    live = exported(live_state(engine))
    keep = {email: user for email, user in live.users.items() if email == org.root.email}
    return write_desired(tmp_path / "users.yaml", DesiredState(live.organization, live.roles, keep))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_allow_mass_removal_from_the_environment_lifts_the_guard(
    runner: Runner, mass_removal: Path
) -> None:
    blocked = runner("plan", "-f", str(mass_removal))
    assert blocked.exit_code == 4, blocked.output
    lifted = runner("plan", "-f", str(mass_removal), env={"USERCTL_ALLOW_MASS_REMOVAL": "1"})
    assert lifted.exit_code == 0, lifted.output


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_flag_variable_is_parsed_strictly(runner: Runner, mass_removal: Path) -> None:
    result = runner("plan", "-f", str(mass_removal), env={"USERCTL_ALLOW_MASS_REMOVAL": "perhaps"})
    assert result.exit_code == 1
    assert "USERCTL_ALLOW_MASS_REMOVAL" in result.stderr and "not a valid boolean" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_format_and_file_from_the_environment(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = write_desired(tmp_path / "users.yaml", exported(live_state(engine)))
    result = runner("plan", env={"USERCTL_FILE": str(path), "USERCTL_PLAN_FORMAT": "json"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["organization"] == ORG


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_operator_and_otp_code_from_the_environment_apply_without_echoing_the_code(
    runner: Runner, engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    code = org.root.code()
    result = runner(
        "apply",
        str(path),
        "--yes",
        env={"USERCTL_OPERATOR": "root@acme.co", "USERCTL_OTP_CODE": code},
    )
    assert result.exit_code == 0, result.output
    assert "verified by totp" in result.stdout and code not in result.output


# --- global options after the sub-command ---------------------------------------------------


def _invoke(args: list[str], env: dict[str, str | None] | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_global_options_after_the_sub_command_and_they_win(
    db_url: str, engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = write_desired(tmp_path / "users.yaml", exported(live_state(engine)))
    elsewhere = f"sqlite:///{tmp_path / 'nothing-here.db'}"

    after = _invoke(["plan", "-f", str(path), "--database-url", db_url])
    assert after.exit_code == 0, after.output
    wins = _invoke(["--database-url", elsewhere, "plan", "-f", str(path), "--database-url", db_url])
    assert wins.exit_code == 0, wins.output
    over_env = _invoke(
        ["audit", "verify", "--database-url", db_url], env={"USERCTL_DATABASE_URL": elsewhere}
    )
    assert over_env.exit_code == 0, over_env.output
    assert not (tmp_path / "nothing-here.db").exists()

    wrong_org = _invoke(["audit", "verify", "--database-url", db_url, "--organization", "nobody"])
    assert wrong_org.exit_code != 0 and "nobody" in wrong_org.stderr
    right_org = _invoke(
        [
            "--organization",
            "nobody",
            "audit",
            "verify",
            "--database-url",
            db_url,
            "--organization",
            ORG,
        ]
    )
    assert right_org.exit_code == 0, right_org.output


def test_debug_after_the_sub_command_shows_the_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERCTL_")}
    missing = str(tmp_path / "missing.yaml")
    quiet = subprocess.run(
        [USERCTL, "validate", "-f", missing], env=env, capture_output=True, text=True, timeout=60
    )
    loud = subprocess.run(
        [USERCTL, "validate", "-f", missing, "--debug"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    by_env = subprocess.run(
        [USERCTL, "validate", "-f", missing],
        env={**env, "USERCTL_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "Traceback" in by_env.stderr


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_database_url_variable_is_an_error_not_the_sqlite_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _invoke(["users", "list"], env={"USERCTL_DATABASE_URL": value})
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: USERCTL_DATABASE_URL is set but empty: give the database URL (unset "
        "USERCTL_DATABASE_URL and omit --database-url for the default sqlite:///userctl.db)\n"
    )
    assert os.listdir(tmp_path) == []  # no userctl.db was created


def test_an_empty_database_url_option_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["--database-url", "", "users", "list"], ["users", "list", "--database-url", " "]):
        result = _invoke(args)
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: --database-url is empty: give the database URL")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "wanted"),
    [(["plna"], "'plan'"), (["audit", "verfy"], "'verify'"), (["notifications", "sned"], "'send'")],
)
def test_a_mistyped_command_gets_a_suggestion(args: list[str], wanted: str) -> None:
    result = _invoke(args)
    assert result.exit_code == 1
    assert (
        f"No such command '{args[-1]}'" in result.stderr
        and f"Did you mean {wanted}?" in result.stderr
    )


def test_the_reference_states_the_flag_rule_click_applies() -> None:
    """docs/reference.md says which values turn a flag's variable on and off: exactly click's
    (an earlier README said 1/true/yes/on only, while click also took t, y and an empty value)."""
    reference = Path(__file__).resolve().parents[2] / "docs" / "reference.md"
    text = " ".join(reference.read_text(encoding="utf-8").split())
    rule = text.split("A flag's variable", 1)[1].split("anything else is an error", 1)[0]
    on_part, off_part = rule.split("turn the flag on", 1)
    on = set(re.findall(r"`([^`]*)`", on_part.split("ignored,", 1)[1]))
    off = set(re.findall(r"`([^`]*)`", off_part.split("leave it off", 1)[0]))
    if "the empty value" in off_part.split("leave it off", 1)[0]:
        off.add("")
    states = click.types.BoolParamType.bool_states
    assert on == {k for k, v in states.items() if v}
    assert off == {k for k, v in states.items() if not v}
