"""Arguments and variables that are not text: refused before any command runs."""

from __future__ import annotations

import os
import sys

import click

from userctl.errors import UsageError


def refuse_undecodable(argv: list[str]) -> None:
    """Refuse an argument, or a USERCTL_* variable, whose bytes are not text in the locale's
    encoding. Python hands them over anyway, each bad byte as a lone surrogate, which no database,
    digest or file can store: the first statement to meet one would fail as an "unexpected" error.
    The message names the argument, never its value: it may be a password or a code."""
    encoding = sys.getfilesystemencoding()
    named = [(_argument_name(argv, i), value) for i, value in enumerate(argv)]
    named += [(name, value) for name, value in os.environ.items() if name.startswith("USERCTL_")]
    for what, value in named:
        try:
            value.encode(encoding)
        except UnicodeEncodeError as exc:
            byte = (
                ord(exc.object[exc.start]) & 0xFF
            )  # surrogateescape keeps the byte in the low bits
            shown = encoding.upper()
            raise UsageError(
                f"{what} is not {shown} text (byte 0x{byte:02x} cannot be "
                f"decoded): give it in {shown}"
            ) from None


def _argument_name(argv: list[str], i: int) -> str:
    """How a message names argv[i]: the option it is the value of, or its position."""
    option, equals, _ = argv[i].partition("=")
    if option.startswith("--") and equals:
        return f"the value of {option}"
    if i > 0 and argv[i - 1].startswith("-") and "=" not in argv[i - 1]:
        return f"the value of {argv[i - 1]}"
    return f"argument {i + 1}"


def env_flag(name: str) -> bool:
    """A flag's variable as click reads it (strictly: a value that is not a boolean is false here,
    and click then refuses it as a usage error)."""
    try:
        return bool(os.environ.get(name) and click.BOOL.convert(os.environ[name], None, None))
    except click.BadParameter:
        return False
