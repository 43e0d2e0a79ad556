"""A PR comment: summary table first, then what blocks and what is destructive (and whether a
2FA approval is needed), then every change folded in <details>, capped in size."""

from __future__ import annotations

from typing import Any, Mapping

from userctl.render.common import is_blocked, summary_line, two_factor_line
from userctl.render.text import change_lines, header

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

    # Cut between whole changes, never inside one, and say how many (and how many destructive)
    # the comment leaves out: a reviewer must not mistake a capped comment for the whole plan.
    changes = data["changes"]
    budget = max_chars - len("\n".join(head)) - 600
    lines = [header(data), ""]
    used = len(lines[0]) + 2
    shown = 0
    for change in changes:
        block = change_lines(change)
        size = sum(len(line) + 1 for line in block)
        if used + size > budget:
            break
        lines += block
        used += size
        shown += 1
    total = len(changes)
    if shown < total:
        left = changes[shown:]
        destructive_left = sum(1 for c in left if c["destructive"])
        lines += [
            "",
            f"… {total - shown} more change(s) not shown here ({destructive_left} of them destructive, listed above), "
            f"to keep this comment under {max_chars} characters; run `userctl plan` for the full plan.",
        ]
        title = f"Changes ({shown} of {total} shown)"
    else:
        title = f"All changes ({total})"
    body = "\n".join(lines) + "\n"
    details = f"<details><summary>{title}</summary>\n\n```diff\n" + body + "```\n\n</details>\n"
    return "\n".join(head) + "\n" + details
