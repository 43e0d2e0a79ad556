"""The characters a desired state's strings may hold: what a reviewer reads must be what is stored.

Refused in every string value and mapping key, anywhere in a document:
- control and format characters (Unicode Cc and Cf: NUL, escape, tab, line feed, zero-width
  spaces and joiners, bidi embeddings, overrides and isolates, the BOM, the soft hyphen), and the
  line and paragraph separators (Zl, Zp), which break a line as a line feed does. They show as
  nothing, or rearrange what follows, and YAML's double-quoted escapes (`"\\0"`, `"\\u202E"`) put
  them in a value whose source reads as plain ASCII (a NUL would pass and then fail on PostgreSQL);
- text not in NFC: a decomposed accent looks like the composed one and is another string;
- `${...}`, however it is written (a plan must be reproducible from git alone);
- in an email (a key of `users`) any character that is not ASCII: a Cyrillic a (U+0430) looks like
  a Latin one, and the address is a second identity;
- in a name (the organization, a role's name and each reference to it, a user's first and last
  name, a bank-account key) letters of two of the scripts whose letters look alike: Latin, Greek
  and Cyrillic. "Аdmin" with a Cyrillic А reads as "Admin" and is another string. A name wholly
  in one script is fine; digits, spaces and punctuation belong to none. Descriptions are prose
  and may quote a word in another script.

Nearly every file needs no look at its strings at all: `screen` reads the bytes once and, when it
can, proves that no string of the document can hold any of these (its Latin letters are all Latin
by name, so they cannot mix scripts either).
"""

from __future__ import annotations

import enum
import re
from typing import Any, Final

from userctl.desired.fast_yaml import uncommented
from userctl.desired.strict_yaml import Marks
from userctl.errors import Path, Problem
from userctl.names import email_problem, mixed_scripts, text_problem

# Bytes that cannot bring a refused character into any value: printable ASCII and the line feed,
# less the backslash (a double-quoted escape can spell anything). False alarms only cost the walk
# over every string.
_INERT: Final = bytes(sorted(set(range(0x20, 0x7F)) - set(b"\\"))) + b"\n"
# A `|` or `>` where a node starts is a block scalar's header: the block keeps its line breaks.
# Anywhere else (`a > b`, a comment's `userctl schema > file`) it is a character like any other.
_BLOCK_HEADER: Final = re.compile(rb"[|>]")
_CR: Final = 0x0D
# The UTF-8 of U+00C0..U+027F (the letters of Latin-1, Latin Extended-A and -B: every accented
# name of the languages this product serves): lead bytes 0xC3-0xC9 and continuation bytes. None of
# these characters is refused, each is NFC, and none composes with its neighbour, ASCII or not
# (test_loader_characters proves all three), so text made of them and ASCII is NFC.
LATIN_BYTES: Final = frozenset(range(0x80, 0xC0)) | frozenset(range(0xC3, 0xCA))
# Where a line holds nothing but spaces, a multi-line scalar folds the line break into a line feed
# (one line break alone folds into a space). One literal-led pattern finds such a line after an LF
# or a CRLF; a file breaking lines with a lone CR is walked instead (an alternation for it would
# make the search crawl).
_BLANK_LINE: Final = re.compile(rb"\n *+[\r\n]")
_LONE_CR: Final = re.compile(rb"\r(?!\n)")

_USERS: Final[Path] = ("users",)
_NAMES_OF_A_USER: Final = ("first_name", "last_name", "role")


class Screen(enum.Enum):
    CLEAN = enum.auto()  # no string can hold a refused character
    EMAILS = enum.auto()  # only an email can: it holds a letter of LATIN_BYTES, fine anywhere else
    WALK = enum.auto()  # every string must be looked at


def screen(data: bytes) -> Screen:
    """What `data` (a document's UTF-8, already checked) leaves to check in its strings.

    Without escapes and block scalars, a string holds the characters of the text it was read
    from, with single line breaks folded into spaces: when that text holds only ASCII and Latin
    letters, and no `${` nor blank line that would fold into a line feed, no string can be refused,
    except an email for being non-ASCII. One `translate` and two searches over the bytes, instead
    of a walk over every string of the file."""
    rest = set(data.translate(None, _INERT))
    carriage_return = _CR in rest
    rest.discard(_CR)
    if not rest <= LATIN_BYTES:
        return Screen.WALK
    if _BLANK_LINE.search(data) or b"${" in data or (carriage_return and _LONE_CR.search(data)):
        return Screen.WALK
    if (b"|" in data or b">" in data) and uncommented(data, _BLOCK_HEADER, node_start=True):
        return Screen.WALK
    return Screen.EMAILS if rest else Screen.CLEAN


def check(value: dict[str, Any], data: bytes, marks: Marks) -> list[Problem]:
    """A problem for every string of `value` (read from `data`) holding a refused character,
    located with `marks` at the value, or at the key for a key."""
    verdict = screen(data)
    if verdict is Screen.CLEAN:
        return []
    if verdict is Screen.WALK:
        found = _walk(value)
        found += _mixed_names(value, {(path, key) for path, key, _ in found})
    else:
        found = _emails(value)
    located = ((message, path, marks.position(path, key=key)) for path, key, message in found)
    return [Problem(message, path, line=line, col=col) for message, path, (line, col) in located]


_Found = list[tuple[Path, bool, str]]  # (path, at the key, message)


def _walk(root: dict[str, Any]) -> _Found:
    # Iterative: a document may nest deep before the schema refuses it. Paths are built only for
    # containers and problems, never for each of a million clean strings.
    found: _Found = []
    pending: list[tuple[Path, Any]] = [((), root)]
    while pending:
        path, node = pending.pop()
        key_problem = email_problem if path == _USERS else text_problem
        steps: Any = node.items() if node.__class__ is dict else enumerate(node)
        for step, child in steps:
            if step.__class__ is str and (
                not (step.isprintable() and step.isascii()) or "${" in step
            ):
                message = SUBSTITUTION if "${" in step else key_problem(step)
                if message is not None:
                    found.append((path + (step,), True, message))
            if child.__class__ is str:
                if not (child.isprintable() and child.isascii()) or "${" in child:
                    message = _value_problem(child)
                    if message is not None:
                        found.append((path + (step,), False, message))
            elif child.__class__ is dict or child.__class__ is list:
                pending.append((path + (step,), child))
    return found


# A `|` or `>` block keeps its last line break unless told not to: the one line break a one-line
# value holds, which the author did not mean. Refused all the same (stripping it would store what
# the YAML does not say), with the way to write it.
_FINAL_BREAK: Final = (
    "ends with a line break, which a | or > block scalar keeps: write |- or >- to drop it"
)


SUBSTITUTION: Final = (
    "${...} substitution is not supported: a plan must be reproducible from git alone; "
    "write the value itself"
)


def _value_problem(text: str) -> str | None:
    if "${" in text:
        return SUBSTITUTION
    message = text_problem(text)
    if message is not None and text.endswith("\n") and text_problem(text.rstrip("\n")) is None:
        return _FINAL_BREAK
    return message


def _emails(root: dict[str, Any]) -> _Found:
    users = root.get("users")
    if users.__class__ is not dict or "".join(users).isascii():
        return []
    found: _Found = []
    for email in users:
        message = email_problem(email)
        if message is not None:
            found.append((_USERS + (email,), True, message))
    return found


def _mixed_names(root: dict[str, Any], refused: set[tuple[Path, bool]]) -> _Found:
    """A problem for each name (see the module's docstring) that mixes scripts, but those already
    refused for another reason: one problem per string."""
    found: _Found = []

    def check(path: Path, text: Any, key: bool = False) -> None:
        if text.__class__ is str and not text.isascii() and (path, key) not in refused:
            message = mixed_scripts(text)
            if message is not None:
                found.append((path, key, message))

    check(("organization",), root.get("organization"))
    roles, users = root.get("roles"), root.get("users")
    for name in roles if roles.__class__ is dict else ():
        check(("roles", name), name, key=True)
    for email, user in users.items() if users.__class__ is dict else ():
        if user.__class__ is dict:
            for field in _NAMES_OF_A_USER:
                check(("users", email, field), user.get(field))
            accounts = user.get("bank_accounts")
            for i, account in enumerate(accounts) if accounts.__class__ is list else ():
                check(("users", email, "bank_accounts", i), account)
    return found
