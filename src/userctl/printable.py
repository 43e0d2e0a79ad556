"""Text from a desired-state file or the database, made safe to show: every control and format
character written as an escape. Used by the renderers and by error messages alike."""

from __future__ import annotations

import re
import unicodedata

# Anything but printable ASCII: the fast path of `printable` skips the usual all-ASCII text.
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e]")


def printable(text: str) -> str:
    """`text` with every control (Unicode Cc: ESC, BEL, C1...) and format character (Cf: U+202E
    RIGHT-TO-LEFT OVERRIDE, zero-width joiners...) written as an escape (`\\x1b`, `\\u202e`).

    Names, emails and descriptions come from a file anyone may propose in a pull request: raw,
    an ESC would drive the reviewer's terminal (clear it, retitle it) and a bidi override would
    make the text read differently from what it is, in a terminal, a PR comment or an HTML page.
    A backslash already in the text is left as it is: the escape is for reading, not parsing."""
    if not _NOT_PLAIN_ASCII.search(text):
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
