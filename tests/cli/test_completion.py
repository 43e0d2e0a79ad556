"""Shell completion, as docs/pipeline.md documents it:
`eval "$(_USERCTL_COMPLETE=bash_source userctl)"`. Run through the installed `userctl` script,
since completion happens before any command runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# The console script installed next to this interpreter (a virtualenv), else the one on PATH.
_BESIDE = Path(sys.executable).with_name("userctl")
USERCTL = str(_BESIDE) if _BESIDE.exists() else (shutil.which("userctl") or "userctl")


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [USERCTL],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bash_source_prints_a_completion_script() -> None:
    result = _run({"_USERCTL_COMPLETE": "bash_source"})
    assert result.returncode == 0, result.stderr
    assert "_userctl_completion()" in result.stdout
    assert "complete -o nosort -F _userctl_completion userctl" in result.stdout


def test_completes_lazy_commands_and_their_subcommands() -> None:
    top = _run(
        {"_USERCTL_COMPLETE": "bash_complete", "COMP_WORDS": "userctl us", "COMP_CWORD": "1"}
    )
    assert top.stdout.splitlines() == ["plain,users"]
    sub = _run(
        {"_USERCTL_COMPLETE": "bash_complete", "COMP_WORDS": "userctl accounts ", "COMP_CWORD": "2"}
    )
    assert sub.stdout.splitlines() == ["plain,import", "plain,list"]
    choice = _run(
        {
            "_USERCTL_COMPLETE": "bash_complete",
            "COMP_WORDS": "userctl users list --status in",
            "COMP_CWORD": "4",
        }
    )
    assert choice.stdout.splitlines() == [
        "plain,invited",
        "plain,inactive",
    ]  # in LIVE_STATUSES order
