"""Every command block of README.md runs as written (issue 20, part 1): the README cannot drift
from the product again. The blocks run in order, in one bash -e shell, in a fresh copy of the
repository with a fresh demo database, as a newcomer pasting them would.

Two things differ from a newcomer's machine, for speed and safety only: the venv-creation line
is not run (a `python3 -m venv .venv` and `pip install -e` in the copy would rewrite this
test's own venv and point its editable install at the copy); instead `.venv` in the copy is a
link to this interpreter's venv, which already has everything the line installs. And the test
command runs as `pytest -q --collect-only` (the whole suite inside one test would take minutes):
it still proves the command line is right and collects the tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV_LINE = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install -q -e \"\.\[[a-z,]+\]\"")
TEST_COMMAND = ".venv/bin/python -m pytest -q"


def blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def runnable(block: str) -> str:
    """The block as the test runs it (see the module docstring for the two substitutions)."""
    block = block.replace(TEST_COMMAND, TEST_COMMAND + " --collect-only", 1)
    return "\n".join(
        VENV_LINE.sub("true", line) + ("" if not VENV_LINE.match(line) else " # venv reused")
        for line in block.splitlines()
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The repository's files, without databases, secrets, caches or the venv."""
    copy = tmp_path / "userctl"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "*.db", "admin.json", "__pycache__", ".*_cache", "*.egg-info", "out"
        ),
    )
    (copy / ".venv").symlink_to(sys.prefix)
    return copy


def _env() -> dict[str, str]:
    """A newcomer's shell: no USERCTL_* setting (but the test servers'), no venv active."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("USERCTL_") or k.startswith("USERCTL_TEST_")
    }
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


# A TOTP code is accepted once: before a later block that uses one, wait for the next 30-second
# step, as a person pasting the blocks some time apart would have.
WAIT_FOR_A_FRESH_CODE = "sleep \"$(python3 -c 'import time; print(30.5 - time.time() % 30)')\""


def run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_block_of_the_readme_runs_as_written(clone: Path) -> None:
    found = blocks(README.read_text(encoding="utf-8"))
    assert len(found) >= 6
    # One shell, as one terminal: the Quickstart's venv and `totp` hold for the blocks after it.
    script: list[str] = []
    for i, block in enumerate(found, 1):
        if i > 1 and "$(totp)" in block:
            script.append(WAIT_FOR_A_FRESH_CODE)
        script += [f"echo '== README block {i}' >&2", runnable(block)]
    result = run("\n".join(script), clone)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"== README block {len(found)}" in result.stderr


def test_the_quickstart_pasted_twice_exits_0_and_keeps_the_secret(clone: Path) -> None:
    quickstart = runnable(blocks(README.read_text(encoding="utf-8"))[0])
    first = run(quickstart, clone)
    assert first.returncode == 0, first.stdout + first.stderr
    secret = (clone / "admin.json").read_bytes()
    second = run(quickstart, clone)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already initialised" in second.stderr
    assert (clone / "admin.json").read_bytes() == secret
    assert pyotp.TOTP(json.loads(secret)["totp_secret"]).now().isdigit()


def test_the_secret_file_is_git_ignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "admin.json"], cwd=ROOT, capture_output=True
    )
    assert ignored.returncode == 0


def test_ci_runs_the_test_command_the_readme_gives() -> None:
    [block] = [b for b in blocks(README.read_text(encoding="utf-8")) if "pytest" in b]
    assert TEST_COMMAND in block
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(TEST_COMMAND)}$", ci, flags=re.MULTILINE)


def test_every_command_block_is_one_the_test_runs() -> None:
    # A block fenced as `bash` or `console` would escape the test above.
    fences = re.findall(r"^```(\S*)$", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert set(fences) <= {"sh", ""}


def test_the_readme_is_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) < 200
