"""Terraform-like text: `+ ~ - -/+` per change, per-field lines, a summary line."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

import click

from userctl.printable import printable
from userctl.render.common import (
    action_label,
    detail_lines,
    flags,
    gate_line,
    reason_line,
    summary_line,
    symbol,
)

COLORS = {"+": "green", "-": "red", "~": "yellow", "-/+": "magenta", "#": "bright_black"}


class _Paint(Protocol):
    def __call__(self, s: str, fg: str | None = None, bold: bool = False) -> str: ...


def _plain(s: str, fg: str | None = None, bold: bool = False) -> str:
    return s


def header(data: Mapping[str, Any]) -> str:
    return printable(
        f"userctl plan for organization {data['organization']!r} "
        f"(2FA policy: {data['two_factor_policy']}, digest {data['digest'][:19]}…)"
    )


def change_lines(
    change: Mapping[str, Any], paint: _Paint = _plain, shown_symbol: str | None = None
) -> list[str]:
    """One change as its head line and indented details (the markdown cap cuts between these).
    `shown_symbol` replaces the change's symbol at the start of the head line (markdown writes
    updates as `!`, which GitHub colours). Nothing taken from the data reaches the terminal
    unescaped: addresses and notes go through `printable`, values through `value`."""
    sym = symbol(change)
    tags = flags(change)
    head = f"{shown_symbol or sym} {printable(change['address'])} {action_label(change)}"
    if tags:
        head += "  [" + ", ".join(tags) + "]"
    out = [paint(head, COLORS[sym], bold=change["destructive"])]
    for line in detail_lines(change):
        out.append(paint(f"    {line}", COLORS[sym] if sym != "#" else "bright_black"))
    if change["note"]:
        out.append(paint(f"    ({printable(change['note'])})", "bright_black"))
    return out


def _painter(color: bool) -> _Paint:
    def paint(s: str, fg: str | None = None, bold: bool = False) -> str:
        return click.style(s, fg=fg, bold=bold) if color else s

    return paint


def provenance_line(data: Mapping[str, Any]) -> str:
    """Where a saved plan says it came from: evidence for a reader, trusted by nobody."""
    p = data.get("provenance") or {}
    if not p:
        return ""
    files = (
        ", ".join(f"{name} ({digest[:15]}…)" for name, digest in p["files"].items()) or "no file"
    )
    commit = f" at git commit {p['git_commit'][:12]}" if p["git_commit"] else ""
    return printable(
        f"Made {p['created_at']} by userctl {p['userctl_version']} from {files}{commit}."
    )


def approval_text(data: Mapping[str, Any], *, color: bool = False) -> str:
    """What `approve` shows before it asks for a code: the plan's summary, every destructive and
    privilege-granting step, and the digest the approval will be bound to."""
    paint = _painter(color)
    out = [
        header(data),
        gate_line(data),
        provenance_line(data),
        *filter(None, [reason_line(data)]),
        "",
    ]
    risky = [c for c in data["changes"] if c["destructive"] or c["grants_privilege"]]
    if risky:
        out.append(f"Destructive or privilege-granting steps ({len(risky)}):")
        for change in risky:
            out += change_lines(change, paint)
        out.append("")
    out.append(paint(summary_line(data["summary"]), bold=True))
    out.append(f"Digest: {data['digest']}")
    return "\n".join(line for line in out if line is not None) + "\n"


def render(data: Mapping[str, Any], *, color: bool = False) -> str:
    paint = _painter(color)

    out = [header(data), gate_line(data), *filter(None, [reason_line(data)]), ""]
    for change in data["changes"]:
        out += change_lines(change, paint)
    if data["changes"]:
        out.append("")
    for finding in data["findings"]:
        label = "BLOCKED" if finding["blocking"] else "note"
        out.append(
            paint(
                printable(f"{label} [{finding['code']}]: {finding['message']}"),
                "red" if finding["blocking"] else "cyan",
                bold=finding["blocking"],
            )
        )
    if data["findings"]:
        out.append("")
    out.append(paint(summary_line(data["summary"]), bold=True))
    return "\n".join(out) + "\n"
