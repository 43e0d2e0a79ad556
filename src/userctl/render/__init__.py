"""Plan renderers. Each reads `Plan.to_data()` — the plan's one serialisation — and none
re-derives the diff."""

from __future__ import annotations

from typing import Any, Mapping

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
    # Only the requested renderer is imported: the HTML page's (Jinja2) alone costs more than a
    # small plan's whole diff.
    if fmt == "text":
        from userctl.render import text

        return text.render(data, color=color, verbose=verbose)
    if fmt == "json":
        from userctl.render import jsonfmt

        return jsonfmt.render(data)
    if fmt == "markdown":
        from userctl.render import markdown

        return markdown.render(
            data, markdown.MAX_BYTES if max_bytes is None else max_bytes, saved_as=saved_as
        )
    if fmt == "html":
        from userctl.render import htmlpage

        return htmlpage.render(data, saved_as=saved_as)
    raise KeyError(fmt)
