"""Plan renderers. Each reads `Plan.to_data()` — the plan's one serialisation — and none
re-derives the diff."""

from __future__ import annotations

from typing import Any, Callable, Mapping

FORMATS = ("text", "json", "markdown", "html")


def render(data: Mapping[str, Any], fmt: str, *, color: bool = False) -> str:
    from userctl.render import htmlpage, jsonfmt, markdown, text

    renderers: dict[str, Callable[[Mapping[str, Any]], str]] = {
        "text": lambda d: text.render(d, color=color),
        "json": jsonfmt.render,
        "markdown": markdown.render,
        "html": htmlpage.render,
    }
    return renderers[fmt](data)
