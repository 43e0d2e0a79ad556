"""Plan renderers. Each reads `Plan.to_data()` — the plan's one serialisation — and none
re-derives the diff."""

from __future__ import annotations

from typing import Any, Callable, Mapping

FORMATS = ("text", "json", "markdown", "html")


def render(
    data: Mapping[str, Any], fmt: str, *, color: bool = False, max_bytes: int | None = None
) -> str:
    """`max_bytes` sizes the markdown in UTF-8 bytes (default: fits a pull-request comment)."""
    from userctl.render import htmlpage, jsonfmt, markdown, text

    renderers: dict[str, Callable[[Mapping[str, Any]], str]] = {
        "text": lambda d: text.render(d, color=color),
        "json": jsonfmt.render,
        "markdown": lambda d: markdown.render(
            d, markdown.MAX_BYTES if max_bytes is None else max_bytes
        ),
        "html": htmlpage.render,
    }
    return renderers[fmt](data)
