"""Plan renderers. Each reads `Plan.to_data()` — the plan's one serialisation — and none
re-derives the diff."""

from __future__ import annotations

from typing import Any, Callable, Mapping

FORMATS = ("text", "json", "markdown", "html")


def render(
    data: Mapping[str, Any],
    fmt: str,
    *,
    color: bool = False,
    max_bytes: int | None = None,
    verbose: bool = False,
    saved_as: str | None = None,
) -> str:
    """`max_bytes` sizes the markdown in UTF-8 bytes (default: what fits in a pull-request
    comment); `verbose` shows deferred steps and notes in full instead of one line each;
    `saved_as` is the file the plan was saved to (only a saved plan can be approved, so only
    then is approving offered)."""
    from userctl.render import htmlpage, jsonfmt, markdown, text

    renderers: dict[str, Callable[[Mapping[str, Any]], str]] = {
        "text": lambda d: text.render(d, color=color, verbose=verbose),
        "json": jsonfmt.render,
        "markdown": lambda d: markdown.render(
            d, markdown.MAX_BYTES if max_bytes is None else max_bytes, saved_as=saved_as
        ),
        "html": lambda d: htmlpage.render(d, saved_as=saved_as),
    }
    return renderers[fmt](data)
