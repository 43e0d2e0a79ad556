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

Nearly every file needs no look at its strings at all: fast_yaml.scan reads the bytes once and,
when it can, proves that no string of the document can hold any of these (its Latin letters are
all Latin by name, so they cannot mix scripts either).
"""

from __future__ import annotations

from typing import Any, Final

from userctl.desired.fast_yaml import Screen
from userctl.desired.strict_yaml import Marks
from userctl.errors import Path, Problem
from userctl.names import email_problem, mixed_scripts, text_problem

_USERS: Final[Path] = ("users",)
_NAMES_OF_A_USER: Final = ("first_name", "last_name", "role")


def check(value: dict[str, Any], screen: Screen, marks: Marks) -> list[Problem]:
    """A problem for every string of `value` holding a refused character, located with `marks` at
    the value, or at the key for a key. `screen`: what the scan of its bytes left to check."""
    if screen is Screen.CLEAN:
        return []
    if screen is Screen.WALK:
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
    for email in users:  # one in thousands may be refused: the others cost a str method
        message = None if email.isascii() and email.isprintable() else email_problem(email)
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
