"""Terraform-like text: `+ ~ - -/+` per change, per-field lines, a summary line."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

import click

from userctl.printable import printable
from userctl.render.common import (
    action_label,
    deferred_line,
    detail_lines,
    flags,
    gate_line,
    is_summarised,
    notes_line,
    policy_line,
    reason_line,
    summary_line,
    symbol,
)

# How to see in full what a plan summarises by default.
SEE_PENDING = "See them: --verbose."
SEE_NOTES = "See them: --verbose, or `userctl hygiene`."

COLORS = {"+": "green", "-": "red", "~": "yellow", "-/+": "magenta", "#": "bright_black"}


class _Paint(Protocol):
    def __call__(self, s: str, fg: str | None = None, bold: bool = False) -> str: ...


def _plain(s: str, fg: str | None = None, bold: bool = False) -> str:
    return s


def header(data: Mapping[str, Any]) -> str:
    return printable(
        f"userctl plan for organization {data['organization']!r} (digest {data['digest'][:19]}…)"
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
        policy_line(data),
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


def render(data: Mapping[str, Any], *, color: bool = False, verbose: bool = False) -> str:
    """The changes first, as a reviewer reads them. Deferred steps (which this plan does not
    apply) and notes (which do not block it) are one line each unless `verbose`: repeated on every
    plan, they buried the change under review. Blocking findings are always shown in full."""
    paint = _painter(color)

    out = [
        header(data),
        gate_line(data),
        policy_line(data),
        *filter(None, [reason_line(data)]),
        "",
    ]
    shown = [c for c in data["changes"] if verbose or not c["deferred"]]
    for change in shown:
        out += change_lines(change, paint)
    if shown:
        out.append("")
    findings = [f for f in data["findings"] if verbose or not is_summarised(f)]
    for finding in findings:
        label = "BLOCKED" if finding["blocking"] else "note"
        out.append(
            paint(
                printable(f"{label} [{finding['code']}]: {finding['message']}"),
                "red" if finding["blocking"] else "cyan",
                bold=finding["blocking"],
            )
        )
    if not verbose:
        for line in (
            deferred_line(data["changes"], SEE_PENDING),
            notes_line(data["findings"], SEE_NOTES),
        ):
            if line:
                out.append(paint(line, "bright_black"))
    if out[-1] != "":
        out.append("")
    out.append(paint(summary_line(data["summary"]), bold=True))
    return "\n".join(out) + "\n"
