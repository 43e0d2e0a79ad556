"""Text from a desired-state file, the database or a command line, made safe to show: the ONE
decision of which characters no output writes raw (DESIGN §8 invariant 7), and the two ways of
writing them visibly: `printable` for text, tables, CSV, Markdown and HTML; `visible_json` for
JSON. Used by the renderers and by error messages alike."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from typing import Any, Final

# Anything but printable ASCII: the fast path of `printable` skips the usual all-ASCII text.
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e]")

# Controls (Cc: ESC, BEL, U+0085 NEXT LINE...), format characters (Cf: U+202E RIGHT-TO-LEFT
# OVERRIDE, U+2066.. isolates, U+200B ZERO WIDTH SPACE...), the line and paragraph separators (Zl,
# Zp: U+2028 breaks a line as a line feed does), lone surrogates (Cs), private-use (Co) and
# unassigned (Cn) code points: each shows as nothing, moves or breaks what follows, or shows as
# whatever a font or a later Unicode makes of it.
HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# Letters (Lo) that every font draws as blank space: a name made of them looks empty.
_BLANK_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0")


def is_hidden(ch: str) -> bool:
    """Whether `ch` is written as an escape by every output."""
    return unicodedata.category(ch) in HIDDEN_CATEGORIES or ch in _BLANK_LETTERS


def printable(text: str) -> str:
    """`text` with every hidden character (`is_hidden`) written as an escape (`\\x1b`, `\\u202e`).

    Names, emails and descriptions come from a file anyone may propose in a pull request, or from
    a database any platform writes: raw, an ESC would drive the reviewer's terminal (clear it,
    retitle it) and a bidi override would make the text read differently from what it is, in a
    terminal, a PR comment, a spreadsheet or an HTML page. A backslash already in the text is left
    as it is: the escape is for reading, not parsing."""
    if not _NOT_PLAIN_ASCII.search(text) or _nothing_hidden(text):
        return text
    return _hidden().sub(lambda m: _escape(m.group()) if is_hidden(m.group()) else m.group(), text)


def shell_command(*words: str) -> str:
    """A command line a reader may copy into a POSIX shell: each word quoted where it needs it
    (shlex.quote; `plan.json` and `ana@acme.co` stay as they are). A path or an email may hold
    backticks, `$` and braces (an email's local part allows all three), which pasted unquoted
    would run as commands on the machine of whoever pastes it: an approver, an admin. Hidden
    characters are escaped first (`printable`), for the same reason as anywhere else."""
    import shlex  # only a message suggesting a command needs it

    return " ".join(shlex.quote(printable(word)) for word in words)


def visible_json(encoded: str) -> str:
    """JSON text (from json.dumps with ensure_ascii=False) with every hidden character written as
    a `\\uXXXX` escape. JSON's own syntax is ASCII, so such a character can only be inside a
    string, where the escape decodes to the very same string: what a reader parses is unchanged
    (a saved plan keeps its digest), only what a person or a terminal sees is. json.dumps escapes
    C0 controls itself, but leaves DEL, C1, Cf and the separators raw."""
    if encoded.isascii() and "\x7f" not in encoded:
        # json.dumps writes every C0 control in a string as an escape already, but not DEL.
        return encoded
    # A raw C0 control (a line feed, once indented) can only be the document's own layout.
    if _nothing_hidden(encoded.replace("\n", "")):
        return encoded
    return _hidden().sub(
        lambda m: (
            _json_escape(m.group()) if m.group() >= "\x20" and is_hidden(m.group()) else m.group()
        ),
        encoded,
    )


def json_text(data: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """`data` as one JSON document ending in a newline, UTF-8 as is but hidden characters escaped:
    every JSON a command prints or a file it writes is made here."""
    return (
        visible_json(json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False))
        + "\n"
    )


def _nothing_hidden(text: str) -> bool:
    """A fast proof that `text` holds no hidden character: every hidden character is one that
    str.isprintable refuses, but for the blank letters. One pass in C over a plan of 30 MB, where
    looking at each character in Python took seconds."""
    return text.isprintable() and not any(letter in text for letter in _BLANK_LETTERS)


@functools.cache
def _hidden() -> re.Pattern[str]:
    """A search for any hidden character of the BMP (`is_hidden`), as a class of ranges, or any
    character beyond it (rare: emoji, historic scripts), which the caller judges one by one. Beyond
    the BMP, `re` would test a class range by range for every character of the text; within it,
    one table lookup. Built once, when a text first fails `_nothing_hidden`."""
    codes = [
        c
        for c in range(0x10000)
        if (not chr(c).isprintable() or chr(c) in _BLANK_LETTERS) and is_hidden(chr(c))
    ]
    runs: list[list[int]] = []
    for code in codes:
        if runs and runs[-1][1] == code - 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return re.compile(
        "["
        + "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in runs)
        + "]|[\U00010000-\U0010ffff]"
    )


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    # JSON has no 8-digit escape: a character beyond the BMP is its UTF-16 surrogate pair.
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
