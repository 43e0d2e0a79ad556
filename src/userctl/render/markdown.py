"""A PR comment: summary table first, then what blocks, every destructive and every
privilege-granting step by address, whether a 2FA approval is needed, then every change folded in
<details>, capped in size.

Sizes are UTF-8 bytes, the unit GitHub's limits are enforced in (a job summary over 1 MiB is
dropped whole); the cuts fall between whole lines, so no character is ever split.

The cap never hides a risky step: the risky steps are named before any room is given to the
details, so only changes that are neither destructive nor privilege-granting can be missing from
the comment, and the comment counts, by action, whatever it leaves out. The risky steps are
listed most dangerous first (DANGER); only when even their addresses cannot all be named does it
name as many as fit in that order, so a step is never left unnamed while a less dangerous one is
named, and say how many of which action are not named, and where the whole plan is.

Everything taken from the plan's data is escaped: addresses go in code spans (`code`), free text
through `inline`; the diff block is a code block (no markdown or HTML inside it), and no line of
it can close its fence (each starts with a symbol, four spaces or "userctl").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from userctl.printable import printable
from userctl.render.common import (
    action_label,
    deferred_line,
    gate_line,
    is_blocked,
    is_summarised,
    policy_line,
    reason_line,
    summary_line,
    symbol,
    two_factor_line,
)
from userctl.render.text import change_lines, header

# GitHub refuses comments over 65,536 characters; bytes are never fewer than characters, so this
# many bytes leaves room for the wrapper.
MAX_BYTES = 60_000
# Up to this many steps of a list are written one a line; more are grouped by action, their
# addresses on the group's line.
MAX_LISTED = 50
FULL_PLAN = "The full plan is the `plan.json` artifact, or `userctl show plan.json`."
# GitHub colours `!` lines of a diff block (`~` lines would stay plain): updates are written so.
DIFF_SYMBOLS: Mapping[str, str] = {"~": "!"}
# The risky lists, in the order they are shown, and the flag that puts a change in each.
RISK_LISTS = (
    ("**:warning: Destructive steps ({n}):**", "destructive"),
    ("**:key: Privilege-granting steps ({n}):**", "grants_privilege"),
)


def code(text: str) -> str:
    """`text` as an inline code span that shows it verbatim (CommonMark): delimited by a backtick
    run longer than any inside it, padded with a space (which the parser strips) when it begins or
    ends with a backtick or a space (not when it is only spaces, which the parser keeps as they
    are). Control characters are escaped first: a raw newline would end the span's line, and the
    markdown around it could then start an HTML block."""
    text = printable(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.strip(" ") and (text[0] in "` " or text[-1] in "` ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_INLINE_SPECIAL = re.compile(r"[\\`*_\[\]~|]")


def inline(text: str) -> str:
    """Free text (a finding's message naming users and roles) as markdown that shows it as it is:
    `<`, `>` and `&` as entities (no raw HTML), the punctuation of links, emphasis, code spans and
    table cells backslash-escaped, control characters escaped."""
    text = printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _INLINE_SPECIAL.sub(lambda m: "\\" + m.group(), text)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _size(lines: Sequence[str]) -> int:
    """UTF-8 bytes of `lines` joined, each with its newline."""
    return sum(_bytes(line) + 1 for line in lines)


# What a risky step does, most dangerous first: the order the comment names them in.
DANGER: Sequence[str] = (
    "delete",
    "deactivation",
    "2FA disabled",
    "role change",
    "permission removal",
    "other destructive",
    "bank-account grant",
    "policy loosening",
    "privilege grant",
)
_DANGER_OF_ACTION: Mapping[tuple[str, str], str] = {
    ("user", "delete"): "delete",
    ("user", "replace"): "delete",
    ("role", "delete"): "delete",
    ("user", "deactivate"): "deactivation",
    ("user", "expire"): "deactivation",
    ("user", "disable_two_factor"): "2FA disabled",
    ("user", "change_role"): "role change",
    ("assignment", "assign"): "bank-account grant",
}


def danger(change: Mapping[str, Any]) -> int:
    """The rank in DANGER of a destructive or privilege-granting change."""
    kind, action = change["kind"], change["action"]
    named = _DANGER_OF_ACTION.get((kind, action))
    if named is None:
        if kind == "policy":
            named = "policy loosening" if change["destructive"] else "privilege grant"
        elif kind == "role" and change["destructive"]:
            named = "permission removal"
        else:
            named = "other destructive" if change["destructive"] else "privilege grant"
    return DANGER.index(named)


def _label(change: Mapping[str, Any]) -> str:
    return f"{change['kind']}.{change['action']}"


def _is_risky(change: Mapping[str, Any]) -> bool:
    return bool(change["destructive"] or change["grants_privilege"])


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {label}" for label, n in counter.most_common())


@dataclass(frozen=True, slots=True)
class _Step:
    """One entry of a risky list (a change both destructive and privilege-granting is in both)."""

    index: int  # of the change in the plan
    label: str  # kind.action, the group it is counted in
    address: str  # as a code span
    action: str


_Lists = Sequence[tuple[str, Sequence[_Step]]]


def _risk_lists(changes: Sequence[Mapping[str, Any]]) -> _Lists:
    lists = []
    for title, flag in RISK_LISTS:
        steps = [
            _Step(i, _label(c), code(c["address"]), action_label(c))
            for i, c in sorted(enumerate(changes), key=lambda ic: (danger(ic[1]), ic[0]))
            if c[flag]
        ]
        if steps:
            lists.append((title.format(n=len(steps)), steps))
    return lists


def _list_lines(
    lists: _Lists, named: set[tuple[int, int]], compact: bool, max_bytes: int
) -> tuple[list[str], set[int]]:
    """The risky lists naming the steps in `named` ((list, position) pairs), and the indices of the
    risky changes named in neither list. A short list that names all its steps is written one step
    a line unless `compact`; otherwise each action is one line: its count, then its addresses."""
    lines: list[str] = []
    for li, (title, steps) in enumerate(lists):
        lines.append(title)
        if (
            not compact
            and len(steps) <= MAX_LISTED
            and all((li, si) in named for si in range(len(steps)))
        ):
            lines += [f"- {s.address} {s.action}" for s in steps]
        else:
            groups: dict[str, list[tuple[int, _Step]]] = {}
            for si, s in enumerate(steps):
                groups.setdefault(s.label, []).append((si, s))
            for label, group in groups.items():
                shown = [s.address for si, s in group if (li, si) in named]
                line = f"- {label} × {len(group)}: " + ", ".join(shown)
                if len(shown) < len(group):
                    line += (
                        f"{' ' if shown else ''}… and {len(group) - len(shown)} more not named here"
                    )
                lines.append(line)
        lines.append("")
    named_changes = {lists[li][1][si].index for li, si in named}
    unnamed = {s.index for _, steps in lists for s in steps} - named_changes
    if unnamed:
        labels = {s.index: s.label for _, steps in lists for s in steps}
        counts = Counter(labels[i] for i in sorted(unnamed))
        lines += [
            f"**:warning: {len(unnamed)} destructive or privilege-granting step(s) are "
            f"not named in this comment ({_counts(counts)}), to keep it under "
            f"{max_bytes} bytes; every step it names is at least as dangerous. {FULL_PLAN}**",
            "",
        ]
    return lines, unnamed


def _risky(
    changes: Sequence[Mapping[str, Any]], budget: int, max_bytes: int
) -> tuple[list[str], set[int]]:
    """The risky lists within `budget` bytes: every step named when they fit, else as many as fit,
    most dangerous first across both lists (the indices of the risky changes left unnamed are
    returned)."""
    lists = _risk_lists(changes)
    every = {(li, si) for li, (_, steps) in enumerate(lists) for si in range(len(steps))}
    lines, unnamed = _list_lines(lists, every, compact=False, max_bytes=max_bytes)
    if _size(lines) <= budget:
        return lines, unnamed
    # Name steps in order while they fit. The lists naming none (every group line and the note at
    # their longest) bound the rest: each named step adds at most its address and a separator.
    room = budget - _size(_list_lines(lists, set(), compact=True, max_bytes=max_bytes)[0])
    named: set[tuple[int, int]] = set()
    by_danger = sorted(every, key=lambda p: (danger(changes[lists[p[0]][1][p[1]].index]), p))
    for li, si in by_danger:
        cost = _bytes(lists[li][1][si].address) + 2
        if cost > room:
            break
        named.add((li, si))
        room -= cost
    return _list_lines(lists, named, compact=True, max_bytes=max_bytes)


def _cut_note(
    named: Counter[str], unnamed: Counter[str], plain: Counter[str], max_bytes: int
) -> list[str]:
    """What the diff block leaves out, by kind, as markdown lines after it."""
    cut = sum(named.values()) + sum(unnamed.values()) + sum(plain.values())
    lines = [
        f"… {cut} more change(s) not shown in this diff, to keep this "
        f"comment under {max_bytes} bytes:"
    ]
    if named:
        lines.append(
            f"- {sum(named.values())} destructive or privilege-granting "
            f"({_counts(named)}), each named above"
        )
    if unnamed:
        lines.append(
            f"- {sum(unnamed.values())} destructive or privilege-granting ({_counts(unnamed)}), "
            "not named in this comment either"
        )
    if plain:
        lines.append(
            f"- {sum(plain.values())} neither destructive nor privilege-granting ({_counts(plain)})"
        )
    return lines + ["", FULL_PLAN]


def _details(data: Mapping[str, Any], budget: int, unnamed: set[int], max_bytes: int) -> str:
    """Every change in a folded diff block, cut between whole changes (never inside one) to fit in
    `budget` bytes, and a note counting by kind the changes it leaves out."""
    changes = data["changes"]
    total = len(changes)

    def wrap(title: str, body: list[str], note: list[str]) -> str:
        after = "\n".join(note) + "\n\n" if note else ""
        return (
            f"<details><summary>{title}</summary>\n\n```diff\n"
            + "\n".join(body)
            + "\n```\n\n"
            + after
            + "</details>\n"
        )

    def note(shown: int) -> list[str]:
        named: Counter[str] = Counter()
        left_unnamed: Counter[str] = Counter()
        plain: Counter[str] = Counter()
        for i in range(shown, total):
            c = changes[i]
            (plain if not _is_risky(c) else left_unnamed if i in unnamed else named)[_label(c)] += 1
        return _cut_note(named, left_unnamed, plain, max_bytes)

    body = [header(data), ""]
    blocks = [change_lines(c, shown_symbol=DIFF_SYMBOLS.get(symbol(c))) for c in changes]
    whole = wrap(f"All changes ({total})", body + [line for block in blocks for line in block], [])
    if _bytes(whole) <= budget:
        return whole
    # Room for the changes: the budget less the wrapper and the note when nothing is shown (the
    # note only shrinks as more is shown).
    room = budget - _bytes(wrap(f"Changes ({total} of {total} shown)", body, note(0)))
    shown = 0
    for block in blocks:
        size = _size(block)
        if size > room:
            break
        body += block
        room -= size
        shown += 1
    return wrap(f"Changes ({shown} of {total} shown)", body, note(shown))


def _notes(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    """The notes (which never block) folded under one line, so that the same hygiene notes on
    every plan do not push the risky steps down the comment."""
    notes = [f for f in findings if is_summarised(f)]
    if not notes:
        return []
    codes = Counter(str(f["code"]) for f in notes)
    listed = ", ".join(f"{code(c)} ×{n}" for c, n in sorted(codes.items()))
    return [
        f"<details><summary>{len(notes)} note(s), none blocking: {listed}</summary>",
        "",
        *(f"- note {code(f['code'])}: {inline(f['message'])}" for f in notes),
        "",
        "</details>",
        "",
    ]


def render(data: Mapping[str, Any], max_bytes: int = MAX_BYTES, saved_as: str | None = None) -> str:
    s = data["summary"]
    top = [
        f"### userctl plan: {code(data['organization'])}",
        "",
        # Not escaped: its values are an enum, a boolean and a number (plan.schema.json), and a
        # backslash before the underscore of min_admins would show in plain-text readers.
        gate_line(data),
        "",
        "| create | update | replace | delete | deferred | "
        "destructive | grant privilege | need 2FA |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['create']} | {s['update']} | {s['replace']} | {s['delete']} | {s['deferred']} | "
        f"{s['destructive']} | {s['grants_privilege']} | {s['requires_2fa']} |",
        "",
        f"**{summary_line(s)}**",
        "",
        inline(policy_line(data)),
        "",
    ]
    pending = deferred_line(data["changes"], "They are in the changes below, marked #.")
    if pending:
        top += [inline(pending), ""]
    reason = reason_line(data)
    if reason:
        top += [inline(reason), ""]
    if is_blocked(data):
        top.append("**:no_entry: This plan cannot be applied:**")
    for f in data["findings"]:
        if not is_summarised(f):
            top.append(
                f"- {'**blocking**' if f['blocking'] else 'note'} "
                f"{code(f['code'])}: {inline(f['message'])}"
            )
    if any(not is_summarised(f) for f in data["findings"]):
        top.append("")
    tail = _notes(data["findings"]) + [
        f"**2FA:** {two_factor_line(data, saved_as, code)}",
        "",
        f"Plan digest: {code(data['digest'])}",
        "",
    ]

    # The risky lists come first: they may use everything but the room the details need to say
    # what they leave out (at most: every change, each counted in every way).
    changes = data["changes"]
    every: Counter[str] = Counter(_label(c) for c in changes)
    total = str(len(changes))
    least_details = (
        _bytes(header(data))
        + 100
        + 2 * len(total)
        + _size(_cut_note(every, every, every, max_bytes))
    )
    risky, unnamed = _risky(
        changes, max_bytes - _size(top) - _size(tail) - least_details, max_bytes
    )
    head = top + risky + tail
    return "\n".join(head) + "\n" + _details(data, max_bytes - _size(head), unnamed, max_bytes)
