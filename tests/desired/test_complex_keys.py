"""A mapping or a list as a key: valid YAML that Python cannot hold as a dict key when it nests a
list or a mapping, so yaml_rs gives no value and no reason. The format refuses such keys, and says
so where the key starts, never "YAML syntax error" at 1:1."""

from __future__ import annotations

import pytest

from userctl.desired.loader import read_yaml


@pytest.mark.parametrize(
    ("text", "kind", "line", "col"),
    [
        ("{{a: [1]}: 1}\n", "a mapping", 1, 2),
        ("? {a: {b: 1}}\n: 1\n", "a mapping", 1, 3),
        ("version: 1\nusers:\n  ? [1, [2]]\n  : x\n", "a list", 3, 5),
        ("{[a]: 1}\n", "a list", 1, 2),
    ],
)
def test_a_collection_as_a_key_is_refused_where_it_is(
    text: str, kind: str, line: int, col: int
) -> None:
    _, problems = read_yaml(text, "f.yaml")
    assert [(p.message, p.line, p.col) for p in problems] == [
        (f"keys must be plain strings, not {kind}", line, col)
    ]
