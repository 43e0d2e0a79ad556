"""What a string shown to a reviewer may hold (DESIGN §2): no control or format character, NFC,
an ASCII email, a name in one of the scripts whose letters look alike. One rule for the loader
(desired/characters.py, with a fast screen over a whole file in fast_yaml.scan) and for apply's
check of the values a saved plan writes (state.limit_problem), which never went through the loader.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from typing import Callable, Final

REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})

# unicodedata has no name for a control character; these are Unicode's name aliases for them.
_C0_NAMES: Final = (
    "NULL|START OF HEADING|START OF TEXT|END OF TEXT|END OF TRANSMISSION|ENQUIRY|ACKNOWLEDGE|ALERT|"
    "BACKSPACE|CHARACTER TABULATION|LINE FEED|LINE TABULATION|FORM FEED|CARRIAGE RETURN|SHIFT OUT|"
    "SHIFT IN|DATA LINK ESCAPE|DEVICE CONTROL ONE|DEVICE CONTROL TWO|DEVICE CONTROL THREE|"
    "DEVICE CONTROL FOUR|NEGATIVE ACKNOWLEDGE|SYNCHRONOUS IDLE|END OF TRANSMISSION BLOCK|CANCEL|"
    "END OF MEDIUM|SUBSTITUTE|ESCAPE|INFORMATION SEPARATOR FOUR|INFORMATION SEPARATOR THREE|"
    "INFORMATION SEPARATOR TWO|INFORMATION SEPARATOR ONE"
).split("|")
CONTROL_NAMES: Final = {**dict(enumerate(_C0_NAMES)), 0x7F: "DELETE", 0x85: "NEXT LINE"}


# The scripts whose letters look alike, as the Unicode names of their letters begin. A letter's
# script is read from its name (unicodedata has no Script property); these blocks hold every
# letter so named (test_lookalike_names checks the whole of Unicode).
SCRIPTS: Final = ("LATIN", "GREEK", "CYRILLIC")
SCRIPT_BLOCKS: Final = (
    (0x0041, 0x0530),
    (0x1C80, 0x1C90),
    (0x1D00, 0x2000),
    (0x2090, 0x20A0),
    (0x2180, 0x2190),
    (0x2C60, 0x2C80),
    (0x2DE0, 0x2E00),
    (0xA640, 0xA6A0),
    (0xA720, 0xA800),
    (0xAB30, 0xAB70),
    (0xFB00, 0xFB07),
    (0x10780, 0x107C0),
    (0x1DF00, 0x1E090),
)


def mixed_scripts(text: str) -> str | None:
    """Why `text` is refused as a name for mixing Latin, Greek and Cyrillic letters, or None. The
    letter named is the first one outside the script most of its letters are in (the script of
    the first letter, on a tie): in "Аdmin", the Cyrillic А."""
    script_of, other_than = letter_scripts()
    first = script_of.get(text[:1])
    if first is not None and other_than[first](text) is None:
        return None  # a name that starts with a letter and keeps to its script: one search
    letters = [
        (position, char, script)
        for position, char in enumerate(text, 1)
        if (script := script_of.get(char))
    ]
    counts = {script: sum(1 for entry in letters if entry[2] == script) for script in SCRIPTS}
    if sum(1 for count in counts.values() if count) < 2:
        return None
    usual = max(SCRIPTS, key=lambda script: (counts[script], script == letters[0][2]))
    position, char, _ = next(entry for entry in letters if entry[2] != usual)
    return (
        f"mixes scripts: {named(char)} at position {position} among {usual.title()} "
        "letters; write it in one script"
    )


_Search = Callable[[str], "re.Match[str] | None"]


@functools.cache
def letter_scripts() -> tuple[dict[str, str], dict[str, _Search]]:
    """Each letter of SCRIPTS with its script, and for each script a search for a letter of the
    others. Built once, when a file is walked (a few milliseconds): a file the screen passes
    never needs them."""
    script_of: dict[str, str] = {}
    for start, end in SCRIPT_BLOCKS:
        for code in range(start, end):
            script = _script_of(chr(code))
            if script is not None:
                script_of[chr(code)] = script
    other_than = {
        script: _search_for(sorted(ord(c) for c, other in script_of.items() if other != script))
        for script in SCRIPTS
    }
    return script_of, other_than


def _search_for(codes: list[int]) -> _Search:
    """A search for any of `codes` (sorted), as a character class of ranges. The letters beyond
    U+FFFF get a class of their own: with them in it, `re` could not use its fast
    table for the rest."""
    runs: list[list[int]] = []
    for code in codes:
        if runs and runs[-1][1] == code - 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])

    def char_class(selected: list[list[int]]) -> str:
        return (
            "["
            + "".join(
                re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in selected
            )
            + "]"
        )

    basic = [r for r in runs if r[1] < 0x10000]
    beyond = [r for r in runs if r[1] >= 0x10000]
    return re.compile(char_class(basic) + ("|" + char_class(beyond) if beyond else "")).search


def _script_of(char: str) -> str | None:
    """LATIN, GREEK or CYRILLIC for a letter of one of them, else None."""
    if not char.isalpha():
        return None
    script = unicodedata.name(char, "").partition(" ")[0]
    return script if script in SCRIPTS else None


def text_problem(text: str) -> str | None:
    """Why `text` is refused as a value or a key, or None."""
    if not text.isprintable():  # false for every refused character (and for a few spaces, fine)
        hidden = hidden_characters(text)
        if hidden:
            return hidden
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        # Only text free of hidden characters gets here: the spelling shown is safe to copy.
        nfc = json.dumps(unicodedata.normalize("NFC", text), ensure_ascii=False)
        return (
            "is not in Unicode NFC form (a decomposed accent looks the same but is stored "
            f"differently): write it in NFC, as {nfc}"
        )
    return None


def free_text_problem(text: object, what: str, limit: int) -> str | None:
    """Why `text` cannot be a free-text field written into the audit log and shown on its pages
    (a plan's reason, a review's note), or None: non-empty, at most `limit` characters, and held
    to the rule every shown string follows."""
    if not isinstance(text, str) or not text.strip():
        return f"{what} must be non-empty text"
    if len(text) > limit:
        return f"{what} is {len(text)} characters, more than {limit}"
    problem = text_problem(text)
    return f"{what} {problem}" if problem else None


def email_problem(email: str) -> str | None:
    """Why `email` is refused as a user's address, or None."""
    hidden = hidden_characters(email)
    if hidden:
        return hidden
    for position, char in enumerate(email, 1):
        if not char.isascii():
            return (
                f"contains {named(char)} at position {position}: email addresses must be ASCII, "
                "as a look-alike address is a second identity; use the ASCII address"
            )
    return None


def hidden_characters(text: str) -> str | None:
    category = unicodedata.category
    hidden = [(i, c) for i, c in enumerate(text, 1) if category(c) in REFUSED_CATEGORIES]
    if not hidden:
        return None
    position, char = hidden[0]
    first = f"contains {named(char)} at position {position}"
    if len(hidden) == 1:
        return (
            f"{first}, a control or format character that would display differently "
            "from what is stored: remove it"
        )
    return (
        f"{first} and {len(hidden) - 1} more control or format characters, which would display "
        "differently from what is stored: remove them"
    )


def named(char: str) -> str:
    code = ord(char)
    return f"U+{code:04X} {unicodedata.name(char, '') or CONTROL_NAMES.get(code, '<control>')}"
