"""The auditor's page: one self-contained HTML file (inline CSS, no script, no external request),
rendered from `templates/plan.html.j2`.

Data in, string out. This module shapes the plan's data into what the template shows (risky steps
first, then every change by kind, with counts); the template only lays it out. Everything it
prints passes through one gate, the environment's `finalize`: control and format characters are
escaped (a bidi override would make an address read as another), then autoescape HTML-escapes
the text, quotes included, so it is safe in text and in attributes alike. Only the page's own
markup (a `Markup` value) passes unchanged, and this module makes none from the plan's data.

Jinja2 is imported on first use: `plan` in any other format never loads it.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from userctl.plan import ACTION_TABLE
from userctl.printable import printable
from userctl.render.common import (
    TWO_FACTOR_POLICIES,
    action_label,
    deferred_line,
    field_lines,
    flags,
    gate_line,
    impact_lines,
    is_blocked,
    reason_line,
    summary_line,
    symbol,
    two_factor_line,
)

if TYPE_CHECKING:
    from jinja2 import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"

# From this many changes on, the tables below the fold are laid out only when scrolled to or
# printed: a big page opens several times faster, a small one stays an ordinary page.
LAZY_FROM = 300
# The groups of the page, in order: (anchor, heading, kind).
# Policies change rarely: their group is shown only when it has a change; the others always are.
ALWAYS_SHOWN = frozenset({"role", "user", "assignment"})
GROUPS = (
    ("policies", "Policies", "policy"),
    ("roles", "Roles", "role"),
    ("users", "Users", "user"),
    ("assignments", "Bank-account assignments", "assignment"),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One change as the page shows it."""

    number: int  # its place in the apply order, from 1
    anchor: str  # the id of its row in its group's table
    symbol: str
    address: str
    action: str
    kind: str
    flags: tuple[str, ...]
    tone: str  # the row's CSS class: destructive, privilege, deferred or plain
    fields: tuple[str, ...]
    impact: tuple[str, ...]  # what it takes away: the before-state, who loses a permission
    note: str | None


@dataclass(frozen=True, slots=True)
class Group:
    anchor: str
    title: str
    rows: tuple[Row, ...]
    counts: str  # "2 create, 1 delete"


def _row(number: int, change: Mapping[str, Any]) -> Row:
    tone = (
        "deferred"
        if change["deferred"]
        else "destructive"
        if change["destructive"]
        else "privilege"
        if change["grants_privilege"]
        else "plain"
    )
    return Row(
        number,
        f"c{number}",
        symbol(change),
        change["address"],
        action_label(change),
        change["kind"],
        tuple(flags(change)),
        tone,
        tuple(field_lines(change)),
        tuple(impact_lines(change)),
        change["note"],
    )


def _counts(rows: Sequence[Row], changes: Sequence[Mapping[str, Any]]) -> str:
    by: Counter[str] = Counter()
    for row in rows:
        change = changes[row.number - 1]
        by[
            "deferred"
            if change["deferred"]
            else ACTION_TABLE[(change["kind"], change["action"])].bucket
        ] += 1
    return ", ".join(
        f"{by[b]} {b}" for b in ("create", "update", "replace", "delete", "deferred") if by[b]
    )


@functools.cache
def _template() -> "Template":
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from markupsafe import Markup

    def finalize(value: Any) -> Any:
        """The one gate of every printed value: the page's own markup as it is, anything else
        made printable (then HTML-escaped by autoescape)."""
        return (
            value
            if isinstance(value, Markup)
            else printable(value if isinstance(value, str) else str(value))
        )

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=finalize,
        undefined=StrictUndefined,  # a name the template gets wrong fails, never prints ""
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("plan.html.j2")


def render(data: Mapping[str, Any], saved_as: str | None = None) -> str:
    changes = data["changes"]
    rows = [_row(i, c) for i, c in enumerate(changes, 1)]
    groups = []
    for anchor, title, kind in GROUPS:
        mine = tuple(r for r in rows if r.kind == kind)
        if mine or kind in ALWAYS_SHOWN:
            groups.append(Group(anchor, title, mine, _counts(mine, changes)))
    provenance = data.get("provenance") or {}
    return _template().render(
        data=data,
        summary=data["summary"],
        summary_line=summary_line(data["summary"]),
        two_factor_line=two_factor_line(data, saved_as),
        gate_line=gate_line(data),
        deferred_line=deferred_line(changes, "They are listed with the changes below."),
        policy_meaning=TWO_FACTOR_POLICIES.get(str(data["two_factor_policy"]), ""),
        reason_line=reason_line(data),
        blocked=is_blocked(data),
        # What blocks the plan comes first; notes (hygiene, expiries) after the risky steps, so a
        # long list of them never pushes those below the fold.
        blocking=[f for f in data["findings"] if f["blocking"]],
        notes=[f for f in data["findings"] if not f["blocking"]],
        provenance=provenance,
        files=sorted((provenance.get("files") or {}).items()),
        attention=[r for r in rows if r.tone in ("destructive", "privilege")],
        groups=groups,
        options=data["options"],
        preconditions=sorted(data["preconditions"].items()),
        lazy=len(changes) >= LAZY_FROM,
    )
