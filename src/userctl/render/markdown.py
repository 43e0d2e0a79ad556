"""A PR comment: summary table first, then what blocks and what is destructive (and whether a
2FA approval is needed), then every change folded in <details>, capped in size."""

from __future__ import annotations

from typing import Any, Mapping

from userctl.render.common import is_blocked, summary_line, two_factor_line
from userctl.render.text import render as render_text

# GitHub refuses comments over 65,536 characters; leave room for the wrapper.
MAX_CHARS = 60_000
MAX_LISTED = 50


def render(data: Mapping[str, Any], max_chars: int = MAX_CHARS) -> str:
    s = data["summary"]
    head = [
        f"### userctl plan: `{data['organization']}`",
        "",
        "| create | update | replace | delete | deferred | destructive | need 2FA |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['create']} | {s['update']} | {s['replace']} | {s['delete']} | {s['deferred']} | {s['destructive']} | {s['requires_2fa']} |",
        "",
        f"**{summary_line(s)}**",
        "",
    ]
    if is_blocked(data):
        head.append("**:no_entry: This plan cannot be applied:**")
    for f in data["findings"]:
        head.append(f"- {'**blocking**' if f['blocking'] else 'note'} `{f['code']}`: {f['message']}")
    if data["findings"]:
        head.append("")
    destructive = [c for c in data["changes"] if c["destructive"]]
    if destructive:
        head.append(f"**:warning: Destructive steps ({len(destructive)}):**")
        for c in destructive[:MAX_LISTED]:
            head.append(f"- `{c['address']}` {c['action']}")
        if len(destructive) > MAX_LISTED:
            head.append(f"- … and {len(destructive) - MAX_LISTED} more (see the details below)")
        head.append("")
    head += [f"**2FA:** {two_factor_line(data)}", "", f"Plan digest: `{data['digest']}`", ""]

    body = render_text(data, color=False)
    fence_open, fence_close = "```diff\n", "```\n"
    wrapper = f"<details><summary>All changes ({len(data['changes'])})</summary>\n\n" + fence_open + fence_close + "\n</details>\n"
    budget = max_chars - len("\n".join(head)) - len(wrapper) - 200
    if len(body) > budget:
        kept = body[: max(budget, 0)].rsplit("\n", 1)[0] + "\n"
        cut_lines = body.count("\n") - kept.count("\n")
        body = kept + f"… {cut_lines} more lines cut to keep this comment under {max_chars} characters; run `userctl plan` for the full plan.\n"
    details = f"<details><summary>All changes ({len(data['changes'])})</summary>\n\n" + fence_open + body + fence_close + "\n</details>\n"
    return "\n".join(head) + "\n" + details
