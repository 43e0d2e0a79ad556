"""The pre-commit hook of `.pre-commit-hooks.yaml`, run exactly as pre-commit runs it: the
hook's `entry`, then its `args`, then the staged files that match `files`, in a subprocess whose
PATH starts with the hook's Python environment (here: this test's)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from userctl.precommit import targets

HOOKS = Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml"

GOOD = """\
version: 1
organization: acme-payments
roles:
  Admin:
    permissions: [users.manage]
users:
  ana@acme.co:
    first_name: Ana
    last_name: Pérez
    id_type: CC
    id_number: "1020304050"
    phone: "+573001112233"
    role: Admin
"""
ROLES_ONLY = (
    "version: 1\norganization: acme-payments\nroles:\n  Admin:\n    permissions: [users.manage]\n"
)
USERS_ONLY = GOOD.split("users:\n", 1)[1]


def _hook() -> dict[str, Any]:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "userctl-validate"]
    return dict(hook)


def _selected(hook: dict[str, Any], path: str) -> bool:
    """pre-commit's choice of files for a hook: `files` searched, `exclude` not (both default to
    matching nothing excluded)."""
    return bool(re.search(hook.get("files", ""), path)) and not re.search(
        hook.get("exclude", "^$"), path
    )


def _run_hook(
    cwd: Path, files: Sequence[str], extra_args: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    hook = _hook()
    staged = [f for f in files if _selected(hook, f)]  # pre-commit passes only matching files
    command = [*shlex.split(hook["entry"]), *hook.get("args", []), *extra_args, *staged]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_hook_definition() -> None:
    hook = _hook()
    assert hook["language"] == "python"
    assert hook.get("pass_filenames", True) is True
    # By default: a users.yaml, or the *.yaml files of a users/ directory, in any folder...
    for path in ("users.yaml", "users/team.yaml", "org/users.yaml", "org/users/roles.yaml"):
        assert _selected(hook, path), path
    # ...and no other YAML of a repository, which userctl validate would reject.
    for path in (
        ".pre-commit-config.yaml",
        ".github/workflows/x.yml",
        ".github/workflows/users.yaml",
        "docker-compose.yml",
        "team.yaml",
        "users.yml",
        "users/sub/deep.yaml",
        "myusers.yaml",
        "users.yaml.bak",
        "README.md",
    ):
        assert not _selected(hook, path), path


def test_other_yaml_of_the_repository_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / ".pre-commit-config.yaml").write_text("repos: []\n", encoding="utf-8")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "x.yml").write_text(
        "on: push\njobs: {}\n", encoding="utf-8"
    )
    result = _run_hook(
        tmp_path, ["users.yaml", ".pre-commit-config.yaml", ".github/workflows/x.yml"]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("valid") == 1 and "users.yaml: valid" in result.stdout


def test_good_file_passes(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(GOOD, encoding="utf-8")
    result = _run_hook(tmp_path, ["users.yaml", "README.md"])
    assert result.returncode == 0, result.stderr
    assert "users.yaml: valid" in result.stdout


def test_bad_file_fails_with_file_line_col(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "users.yaml").write_text(
        GOOD.replace('"1020304050"', "0123456"), encoding="utf-8"
    )
    result = _run_hook(tmp_path, ["users.yaml", "other/users.yaml"])
    assert result.returncode == 1
    assert re.search(
        r"^other/users\.yaml:11:16: users\.ana@acme\.co\.id_number: .*quote", result.stderr, re.M
    ), result.stderr
    assert result.stderr.count("users.yaml") == 1 and "users.yaml: valid" in result.stdout


def test_a_users_directory_is_validated_as_one_desired_state_by_default(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.mkdir()
    (users / "roles.yaml").write_text(ROLES_ONLY, encoding="utf-8")
    (users / "team-a.yaml").write_text(
        "version: 1\norganization: acme-payments\nusers:\n" + USERS_ONLY, encoding="utf-8"
    )
    # Only the team file is staged: it names a role declared in roles.yaml, which is read with it.
    alone = _run_hook(tmp_path, ["users/team-a.yaml"])
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.count("valid") == 1
    both = _run_hook(tmp_path, ["users/team-a.yaml", "users/roles.yaml"])
    assert both.returncode == 0 and both.stdout.count("valid") == 1, both.stderr
    # A mistake in any file of the directory is reported at its own FILE:LINE:COL.
    (users / "team-a.yaml").write_text(
        "version: 1\norganization: acme-payments\nusers:\n"
        + USERS_ONLY.replace("role: Admin", "role: Admn"),
        encoding="utf-8",
    )
    broken = _run_hook(tmp_path, ["users/team-a.yaml"])
    assert broken.returncode == 1
    assert re.search(r"users/team-a\.yaml:\d+:\d+: .*Admn", broken.stderr), broken.stderr


def test_another_directory_is_one_desired_state_only_when_declared(tmp_path: Path) -> None:
    org = tmp_path / "org"
    org.mkdir()
    (org / "roles.yaml").write_text(ROLES_ONLY, encoding="utf-8")
    (org / "team-a.yaml").write_text(
        "version: 1\norganization: acme-payments\nusers:\n" + USERS_ONLY, encoding="utf-8"
    )
    # Selected by a project's own `files:` pattern, each file of a directory not named users/ is
    # a desired state of its own: the team file alone names a role it does not declare...
    alone = _run_hook(tmp_path, [], ["org/team-a.yaml"])
    assert alone.returncode == 1 and "Admin" in alone.stderr
    # ...declared as one desired state with --dir (the hook's `args`), it is valid.
    together = _run_hook(tmp_path, [], ["--dir", "org", "org/team-a.yaml", "org/roles.yaml"])
    assert together.returncode == 0, together.stderr
    assert together.stdout.count("valid") == 1


def test_targets_group_files_of_a_declared_directory() -> None:
    assert targets(["a.yaml", "org/x.yaml", "org/y.yaml", "b.yml", "org/sub/z.yaml"], ["org/"]) == [
        "a.yaml",
        "org",
        "b.yml",
        "org/sub/z.yaml",
    ]
    assert targets(
        ["users/a.yaml", "users.yaml", "x/users/b.yaml", "users/c.yaml", "team/users.yaml"], []
    ) == ["users", "users.yaml", "x/users", "team/users.yaml"]
    assert targets(["a.yaml", "a.yaml"], []) == ["a.yaml"]
