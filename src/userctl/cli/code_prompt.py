"""Asking for a TOTP code: on a terminal only, hidden, tried again after a typo; each code handed
on as a GivenCode, which holds the moment it was read."""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

import click

from userctl.apply.given import GivenCode
from userctl.cli.context import app
from userctl.cli.messages import say
from userctl.errors import CodeRejected

T = TypeVar("T")
# Typing slips happen; three tries stay well inside the lockout (otp.MAX_FAILURES in a row).
MAX_PROMPTED_CODES = 3


def read_code(prompt: str) -> GivenCode:
    """A code typed at a hidden prompt, read the moment the prompt returned."""
    from userctl.clock import utcnow  # looked up now: a test's clock is the one read

    code = click.prompt(prompt, hide_input=True, err=True)
    return GivenCode(code, utcnow())


def with_code(
    run: Callable[[GivenCode], T],
    code: str | None,
    ask: bool,
    prompt: str = "TOTP code",
) -> T:
    """`run(given)`, where `ask` says the code is to be typed at a hidden prompt (read_code), and
    a code given by option or variable was read when the command started. `run` has the code
    judged at `given.read_at` (otp.verify_operator_code). A typed code that is rejected is asked
    for again, up to MAX_PROMPTED_CODES times: each try is a whole `run`, so it is checked, and a
    wrong one counted, in its own locked transaction that writes nothing else
    (otp.locked_write). A code given by option or variable is never tried again: nobody is there
    to type another."""
    started = app().started_at  # the command's start: read before any prompt can return
    for attempt in range(1, MAX_PROMPTED_CODES + 1):
        given = read_code(prompt) if ask else GivenCode(code, started)
        try:
            return run(given)
        except CodeRejected as exc:
            if not ask or attempt == MAX_PROMPTED_CODES:
                raise
            say(f"Error: {exc}", err=True)
    raise AssertionError("unreachable: the last attempt returns or raises")


def interactive() -> bool:
    """Whether there is someone to ask: a prompt needs a keyboard on stdin, and is written to
    stderr so that it never mixes into output a script captures."""
    return sys.stdin.isatty() and sys.stderr.isatty()
