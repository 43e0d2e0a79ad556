"""fast_yaml.scan's first look for ambiguous booleans (one pass over a shape of the bytes) must
never let a file through that the seven patterns alone would send to the marked reader: the
reference below is the scan as it was before that look, and the verdicts must be the same. And
the email screen, which skips email_problem for ASCII printable emails, must name the same ones."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from hypothesis import example, given, settings
from hypothesis import strategies as st

from userctl.desired import characters
from userctl.desired import fast_yaml as f
from userctl.desired.strict_yaml import AMBIGUOUS_BOOLEANS
from userctl.names import email_problem


def reference_scan(data: bytes) -> f.Scan:
    """The scan before the first look (integ7), the spec: the seven patterns, each a pass."""
    found = set(data.translate(None, f._PLAIN))
    blocks = ord("|") in found or ord(">") in found
    suspect = bool(
        found & f._CONTROLS
        or any(look.search(data) for byte, look in f._SECOND_LOOK.items() if byte in found)
        or (blocks and f.uncommented(data, f._ODD_BLOCK, node_start=True))
        or (found & f._INDICATORS and f._INDICATOR_AT_START.match(data))
        or (found & f._INDICATORS and f.uncommented(data, f._INDICATOR_AT_NODE))
        or f._AMBIGUOUS_AT_START.match(data)
        or any(f.uncommented(data, p) for p in f._AMBIGUOUS)
    )
    rest = found - f._INERT - {ord("\r")}
    walk = (
        not rest <= f.LATIN_BYTES
        or f._BLANK_LINE.search(data)
        or (b"{" in data and b"${" in data)
        or (ord("\r") in found and f._LONE_CR.search(data))
        or (blocks and f.uncommented(data, f._BLOCK_HEADER, node_start=True))
    )
    screen = f.Screen.WALK if walk else f.Screen.EMAILS if rest else f.Screen.CLEAN
    return f.Scan(suspect, screen)


_STARTS: Final = (":", ": ", ":\n  ", "- ", "-\t", "-\n", "[", "[ ", "{", "{ ", ",", ", ", "\n")
_STARTS_CR: Final = ("\r", "\r  ", "\r\n", "\n   ", ":\r\n ", ",\r")
_ENDS: Final = ("", "\n", " \n", "\t#", " # c", ",", "]", "}", ":", ": 1", "\r\n", "\r", "  ")


def test_every_ambiguous_word_in_every_place_is_suspect() -> None:
    for word in sorted(AMBIGUOUS_BOOLEANS):
        for start in _STARTS + _STARTS_CR:
            for end in _ENDS:
                data = f"a{start}{word}{end}".encode()
                assert f.scan(data) == reference_scan(data), data
                assert f.scan(data).suspect, data


_PIECES: Final = st.sampled_from(
    [
        *sorted(AMBIGUOUS_BOOLEANS),
        *_STARTS,
        *_STARTS_CR,
        *_ENDS,
        "true", "false", "Nolan", "Off-site", "yess", "no-reply@x.com", "optional", "NOx",
        "#", " #", "# x: no", "'", '"', "' #", '"a #', "a", "b: ", "  ", " ", "\t", "\n\n",
        "${", "|", ">-", "|\n  ", "&a", "*a", "!t", "? ", "<<", "é", "José", "Ж", "\u2028",
        "\x85", "\xa0", "%YAML", "\ufeff", "\\", "\\u00e9", "---", "...", "\v", "\f",
        "x" * 250, " " * 200,
    ]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, max_size=24).map("".join))
@example("# x: no\nyes: 1\n")
@example("# a 'x: no\nyes: 1\n")
@example("a: b # 'c: OFF\r- OFF\n")
@example("# " + "x" * 505 + " no\n")
@example("# " + "x" * 500 + " no" + " " * 20 + "\n")
@example("a: b\n# " + "x" * 490 + ", yes" + "\t" * 30 + "# c\n")
@example("# " + "x" * 508 + "\nno")
@example("# " + "x" * 506 + " no")
def test_property_the_first_look_changes_no_verdict(text: str) -> None:
    data = text.encode()
    assert f.scan(data) == reference_scan(data)


def test_the_first_look_changes_no_verdict_on_the_repository_files() -> None:
    root = Path(__file__).parents[2]
    files = [*root.glob("examples/**/*.y*ml"), *root.glob("tests/fixtures/**/*")]
    suite = Path("/work/shared/yaml-test-suite")
    files += [*suite.glob("**/in.yaml")] if suite.is_dir() else []
    for path in files:
        if path.is_file():
            data = path.read_bytes()
            assert f.scan(data) == reference_scan(data), path


@given(st.text(st.characters(max_codepoint=0x7F)))
def test_property_an_ascii_printable_email_has_no_problem(email: str) -> None:
    # characters._emails calls email_problem only for the others
    if email.isprintable():
        assert email_problem(email) is None


def test_the_email_screen_names_each_non_ascii_email_and_only_those() -> None:
    emails = [f"user{i}@example.com" for i in range(50)] + [
        "usér@example.com",
        "b\x7f@x.io",
        "a\u0430@x.io",
    ]
    value = {"users": dict.fromkeys(emails, {})}

    class Marks:
        def position(self, path: object, *, key: bool = False) -> tuple[int, int]:
            return (1, 1)

    found = characters.check(value, f.Screen.EMAILS, Marks())  # type: ignore[arg-type]
    assert [p.path for p in found] == [("users", e) for e in emails[-3:]]
    assert [p.message for p in found] == [email_problem(e) for e in emails[-3:]]
