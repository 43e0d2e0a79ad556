"""The one decision of which characters no output writes raw (printable.is_hidden) and its two
writers: `printable` for text, `json_text` for JSON, which must parse to the very same data."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from userctl.printable import (
    HIDDEN_CATEGORIES,
    _hidden,
    _nothing_hidden,
    is_hidden,
    json_text,
    printable,
    visible_json,
)


def test_the_hidden_characters_are_the_controls_formats_separators_and_blanks() -> None:
    for ch in "\x00\x07\x1b\x7f\x85\u200b\u200e\u202e\u2066\u2028\u2029\ufeff\ue000\U000e0001":
        assert is_hidden(ch), f"U+{ord(ch):04X}"
    for ch in "\u3164\u115f\u1160\uffa0":  # Hangul fillers: letters every font leaves blank
        assert is_hidden(ch)
    for ch in "aé Ω я中😀\u00a0-":
        assert not is_hidden(ch)
    assert {"Cc", "Cf", "Zl", "Zp"} <= HIDDEN_CATEGORIES


def test_the_fast_paths_agree_with_the_rule_on_every_code_point() -> None:
    # printable and visible_json skip text that the fast proof passes, and search the rest with a
    # table built from is_hidden (within the BMP; beyond it each character found is judged by
    # is_hidden itself): neither may miss a hidden character, nor escape another.
    table = _hidden()
    for code in range(0x110000):
        ch = chr(code)
        hidden = is_hidden(ch)
        if hidden:
            assert not _nothing_hidden(ch), f"U+{code:04X}"
        if code < 0x10000:
            assert bool(table.fullmatch(ch)) == hidden, f"U+{code:04X}"
    assert printable("a\U000e0001\U0001f600b") == "a\\U000e0001\U0001f600b"


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_json_text_parses_to_the_same_data_and_shows_nothing_hidden(data: object) -> None:
    text = json_text(data)
    assert json.loads(text) == data
    assert not any(is_hidden(ch) and ch != "\n" for ch in text)
    assert json.loads(visible_json(json.dumps(data, ensure_ascii=False))) == data


def test_a_lone_surrogate_and_a_character_beyond_the_bmp_in_json() -> None:
    data = {"k": "a\ud800\U000e0001\U0001f600\u202e"}
    text = json_text(data)
    assert '"a\\ud800\\udb40\\udc01\U0001f600\\u202e"' in text
    assert json.loads(text) == data


@given(st.text())
def test_printable_shows_every_hidden_character_as_an_escape(text: str) -> None:
    shown = printable(text)
    assert not any(is_hidden(ch) for ch in shown)
    if not any(is_hidden(ch) for ch in text):
        assert shown == text


def test_json_escapes_del_which_json_dumps_leaves_raw() -> None:
    """DEL is ASCII, so a document that is all ASCII is not yet free of hidden characters."""
    from userctl.printable import json_text

    assert json_text({"name": "a\x7fb"}, indent=None) == '{"name": "a\\u007fb"}\n'
