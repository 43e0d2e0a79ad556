"""Where two readings of one document differ: the spec's (yaml_rs) and libyaml's, which gives
the marks. A value stored must be the value the YAML spec gives the text the reviewer read, so a
file the two read differently is refused at the first place they part."""

from __future__ import annotations

import math
from typing import Any

from userctl.errors import Path


def first_difference(a: Any, b: Any) -> Path | None:
    """The path of the first node where `a` and `b` differ in value or type (1 == True == 1.0 in
    Python, not here), or None when they are the same all the way down. Iterative: a document
    may nest deep."""
    pending: list[tuple[Path, Any, Any]] = [((), a, b)]
    while pending:
        path, x, y = pending.pop()
        if type(x) is not type(y):
            return path
        if isinstance(x, dict):
            if list(x) != list(y):
                return path
            pending.extend((path + (k,), x[k], y[k]) for k in reversed(list(x)))
        elif isinstance(x, list):
            if len(x) != len(y):
                return path
            pending.extend(
                (path + (i,), v, w) for i, (v, w) in reversed(list(enumerate(zip(x, y))))
            )
        elif isinstance(x, float) and math.isnan(x):
            if not math.isnan(y):
                return path
        elif x != y:
            return path
    return None
