"""Terraform-like text: `+ ~ - -/+` per change, per-field lines, a summary line."""

from __future__ import annotations

from typing import Any, Mapping

import click

from userctl.render.common import detail_lines, flags, summary_line, symbol

COLORS = {"+": "green", "-": "red", "~": "yellow", "-/+": "magenta", "#": "bright_black"}


def render(data: Mapping[str, Any], *, color: bool = False) -> str:
    def paint(s: str, fg: str | None = None, bold: bool = False) -> str:
        return click.style(s, fg=fg, bold=bold) if color else s

    out = [
        f"userctl plan for organization {data['organization']!r} "
        f"(2FA policy: {data['two_factor_policy']}, digest {data['digest'][:19]}…)",
        "",
    ]
    for change in data["changes"]:
        sym = symbol(change)
        tags = flags(change)
        head = f"{sym} {change['address']} {change['action']}"
        if tags:
            head += "  [" + ", ".join(tags) + "]"
        out.append(paint(head, COLORS[sym], bold=change["destructive"]))
        for line in detail_lines(change):
            out.append(paint(f"    {line}", COLORS[sym] if sym != "#" else "bright_black"))
        if change["note"]:
            out.append(paint(f"    ({change['note']})", "bright_black"))
    if data["changes"]:
        out.append("")
    for finding in data["findings"]:
        label = "BLOCKED" if finding["blocking"] else "note"
        out.append(paint(f"{label} [{finding['code']}]: {finding['message']}", "red" if finding["blocking"] else "cyan", bold=finding["blocking"]))
    if data["findings"]:
        out.append("")
    out.append(paint(summary_line(data["summary"]), bold=True))
    return "\n".join(out) + "\n"
