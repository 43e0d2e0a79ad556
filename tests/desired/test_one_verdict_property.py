"""One verdict, as a property: a desired-state file written many ways that do not change its data
(comments, even ones that read like anchors or tags; no space after ':' in flow style; the quoting
of keys and of strings that need none; block or flow style) loads to the same value with the same
problems. A plain ambiguous word is refused however it is written around."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from userctl.desired.loader import read_yaml, text_problems

# Words a reader takes for a string, and words YAML reads otherwise unless quoted.
PLAIN_SAFE = ["Ana", "Mary Ann", "O'Neil", "José", "Ruiz", "Vega"]
NEEDS_QUOTES = ["No", "Yes", "True", "off", "Null", "0123", "1e3", "~"]
COMMENTS = ["# owner: *team*", "# &anchor", "# !!str", "# No", "# ${HOME}", "# ? key", "# |"]
PERMISSIONS = ["users.view", "payouts.view", "audit.view"]


@dataclass(frozen=True)
class Style:
    """How one rendering writes the file: drawn once per scalar from these lists."""

    quotes: list[int]  # 0 plain (where allowed), 1 single, 2 double
    flow: list[bool]  # per user: flow mapping or block
    tight: list[bool]  # per flow entry with a quoted key: no space after ':'
    comments: list[int]  # per line: -1 none, else a COMMENTS index


class Writer:
    def __init__(self, style: Style) -> None:
        self.style = style
        self.n = 0

    def _draw(self, options: list[Any], default: Any) -> Any:
        self.n += 1
        return options[self.n % len(options)] if options else default

    def scalar(self, text: str, *, plain_ok: bool) -> str:
        quote = self._draw(self.style.quotes, 0)
        if quote == 0 and plain_ok:
            return text
        if quote == 1 or (quote == 0 and "'" not in text):
            return "'" + text.replace("'", "''") + "'"
        return json.dumps(text)

    def key(self, text: str) -> tuple[str, bool]:
        written = self.scalar(text, plain_ok=True)
        return written, written[0] in "'\""

    def line(self, text: str) -> str:
        comment = self._draw(self.style.comments, -1)
        return text + (f"  {COMMENTS[comment]}" if comment >= 0 else "") + "\n"

    def value(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, list):
            gap = ", " if self._draw(self.style.tight, False) else ","
            return "[" + gap.join(self.value(v) for v in value) + "]"
        return self.scalar(value, plain_ok=value in PLAIN_SAFE or value in PERMISSIONS)


def render(data: dict[str, Any], style: Style, plain_word: tuple[str, str] | None = None) -> str:
    """`data` as YAML in `style`; `plain_word`: (email, field) written as a plain ambiguous No."""
    w = Writer(style)
    out = w.line(f"version: {data['version']}")
    out += w.line(f"organization: {w.value(data['organization'])}")
    out += w.line("roles:")
    for name, role in data["roles"].items():
        out += w.line(f"  {w.key(name)[0]}:")
        out += w.line(f"    permissions: {w.value(role['permissions'])}")
    out += w.line("users:")
    for email, user in data["users"].items():
        fields = {k: w.value(v) for k, v in user.items()}
        if plain_word is not None and plain_word[0] == email:
            fields[plain_word[1]] = "No"
        if w._draw(style.flow, False):
            entries = []
            for field, written in fields.items():
                key, quoted = w.key(field)
                tight = quoted and w._draw(style.tight, False)
                entries.append(f"{key}:{'' if tight else ' '}{written}")
            out += w.line(f"  {w.key(email)[0]}: {{{', '.join(entries)}}}")
        else:
            out += w.line(f"  {w.key(email)[0]}:")
            for field, written in fields.items():
                out += w.line(f"    {w.key(field)[0]}: {written}")
    return out


names = st.sampled_from(PLAIN_SAFE + NEEDS_QUOTES)


@st.composite
def desired_states(draw: st.DrawFn) -> dict[str, Any]:
    roles = {
        "Admin": {
            "permissions": draw(st.lists(st.sampled_from(PERMISSIONS), min_size=1, unique=True))
        }
    }
    users = {}
    for i in range(draw(st.integers(1, 3))):
        user: dict[str, Any] = {
            "first_name": draw(names),
            "last_name": draw(names),
            "id_type": "CC",
            "id_number": f"0{i}12345",
            "phone": f"+57300111222{i}",
            "role": "Admin",
        }
        if draw(st.booleans()):
            user["force_password_reset"] = draw(st.booleans())
        users[f"u{i}@example.com"] = user
    return {"version": 1, "organization": "acme", "roles": roles, "users": users}


styles = st.builds(
    Style,
    quotes=st.lists(st.integers(0, 2), max_size=7),
    flow=st.lists(st.booleans(), max_size=3),
    tight=st.lists(st.booleans(), max_size=5),
    comments=st.lists(st.integers(-1, len(COMMENTS) - 1), max_size=7),
)
PLAIN_ONLY = Style([0], [False], [False], [-1])


@settings(max_examples=150, deadline=None)
@given(desired_states(), styles)
def test_text_that_does_not_change_the_data_does_not_change_the_result(
    data: dict[str, Any], style: Style
) -> None:
    text = render(data, style)
    value, problems = read_yaml(text, "x.yaml")
    assert problems == [] and value == data, text
    assert read_yaml(text, "x.yaml", parser="precise") == (data, []), (
        text
    )  # the marked reader agrees
    assert text_problems(text, "x.yaml") == [], text
    assert value == read_yaml(render(data, PLAIN_ONLY), "x.yaml")[0]


@settings(max_examples=150, deadline=None)
@given(desired_states(), styles, st.sampled_from(["first_name", "last_name"]))
def test_a_plain_ambiguous_word_is_refused_however_it_is_written_around(
    data: dict[str, Any], style: Style, field: str
) -> None:
    email = next(iter(data["users"]))
    text = render(data, style, plain_word=(email, field))
    problems = text_problems(text, "x.yaml")
    assert read_yaml(text, "x.yaml", parser="precise")[1] == read_yaml(text, "x.yaml")[1], text
    assert [p.message for p in problems] == [
        "'No' is ambiguous in YAML: use true or false; quote it (\"No\") if you meant a string"
    ], text
    line = next(i for i, t in enumerate(text.splitlines(), 1) if email in t)
    assert problems[0].line is not None and problems[0].line >= line, text
