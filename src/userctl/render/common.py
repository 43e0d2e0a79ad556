"""What every renderer says the same way: symbols, flags, value and diff wording, the summary."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

from userctl.errors import first_few
from userctl.hygiene import CODES
from userctl.plan import ACTION_TABLE
from userctl.printable import printable, shell_command, visible_json

# Fields a create shows, in reading order (email is already in the address).
SHOWN_ON_CREATE = (
    "first_name",
    "last_name",
    "id_type",
    "id_number",
    "phone",
    "role",
    "status",
    "two_factor",
    "force_password_reset",
    "expires",
    "description",
    "permissions",
    "value",
)


def symbol(change: Mapping[str, Any]) -> str:
    if change["deferred"]:
        return "#"
    return ACTION_TABLE[(change["kind"], change["action"])].symbol


def action_label(change: Mapping[str, Any]) -> str:
    """The action as shown: its name, or the table's label for it (`deactivate [expired]`)."""
    return ACTION_TABLE[(change["kind"], change["action"])].label or change["action"]


def reason_line(data: Mapping[str, Any]) -> str | None:
    """The plan's --reason, as every format shows it, or None."""
    reason = data["options"].get("reason")
    return f"Reason: {printable(reason)}" if reason else None


def flags(change: Mapping[str, Any]) -> list[str]:
    out = []
    if change["deferred"]:
        out.append("deferred")
    if change["destructive"]:
        out.append("destructive")
    if change["grants_privilege"]:
        out.append("privilege")
    if change["requires_2fa"]:
        out.append("2FA")
    return out


def value(v: Any) -> str:
    """A value as every renderer shows it: strings JSON-quoted, lists bare. The one place values
    are formatted: a string is quoted as JSON output writes it (printable.visible_json), every
    hidden character as one `\\uXXXX` escape."""
    if isinstance(v, list):
        return "[" + ", ".join(printable(str(x)) for x in v) + "]"
    if isinstance(v, str):
        return visible_json(json.dumps(v, ensure_ascii=False))
    return json.dumps(v)


def detail_lines(change: Mapping[str, Any]) -> list[str]:
    """Every line under a change: its fields, then what it takes away."""
    return field_lines(change) + impact_lines(change)


def field_lines(change: Mapping[str, Any]) -> list[str]:
    """Per-field lines under a change: the values a create sets, the fields others change."""
    in_force = change["diff"].get("value", {}) if change["kind"] == "policy" else {}
    if "default" in in_force:
        # A default is a value: the reader sees what is in force on each side, not a null.
        return [
            f"value: {_in_force(in_force['before'], in_force['default'])} -> "
            f"{_in_force(in_force['after'], in_force['default'])}"
        ]
    if (
        change["action"] == "create"
        and change["after"] is not None
        and change["kind"] != "assignment"
    ):
        after = change["after"]
        # An optional field left unset (no expiry) says nothing.
        return [
            f"{name} = {value(after[name])}"
            for name in SHOWN_ON_CREATE
            if after.get(name) is not None
        ]
    if change["kind"] == "assignment" or change["action"] == "delete":
        return []
    lines = []
    for name, d in change["diff"].items():
        if "added" in d:
            parts = [f"+{printable(str(x))}" for x in d["added"]] + [
                f"-{printable(str(x))}" for x in d["removed"]
            ]
            lines.append(f"{name}: {' '.join(parts)}")
        else:
            lines.append(f"{name}: {value(d['before'])} -> {value(d['after'])}")
    return lines


def _in_force(declared: Any, default: Any) -> str:
    return value(declared) if declared is not None else f"{value(default)} (default)"


def gate_line(data: Mapping[str, Any]) -> str:
    """The gate's settings in force, as every format's header shows them."""
    gate = data["gate"]
    what = "every change" if gate["two_factor_policy"] == "all" else "destructive changes"
    return (
        f"Gate: 2FA for {what} · four eyes {'on' if gate['four_eyes'] else 'off'} · "
        f"min_admins {gate['min_admins']}"
    )


def in_force_line(settings: Sequence[Mapping[str, Any]]) -> str:
    """The settings that always hold a value, each marked `(default)` as a plan's policy change
    marks the value in force that no declaration holds."""
    return "In force: " + ", ".join(
        f"{s['policy']} {value(s['value'])}{' (default)' if s['default'] else ''}" for s in settings
    )


def names(few: Mapping[str, Any]) -> str:
    """A capped list of names from a change's impact, worded as messages word lists."""
    return first_few([printable(n) for n in few["shown"]], len(few["shown"]), few["more"]) or "none"


def impact_lines(change: Mapping[str, Any]) -> list[str]:
    """What a change takes away: the record a delete or deactivation leaves behind (its user's
    name, role, status and bank accounts; a role's permissions), and who loses the permissions a
    role gives up."""
    impact, before = change.get("impact") or {}, change["before"]
    lines = []
    if change["kind"] == "role" and change["action"] == "delete" and before is not None:
        lines.append(
            f"was: {value(before['description'])}, permissions: "
            f"{', '.join(map(printable, before['permissions'])) or 'none'}"
        )
    if "bank_accounts" in impact and before is not None:
        name = printable(f"{before.get('first_name', '')} {before.get('last_name', '')}".strip())
        lines.append(
            f"was: {name or '(no name)'}, role {printable(str(before.get('role')))}, "
            f"{printable(str(before.get('status')))}, bank accounts: "
            f"{names(impact['bank_accounts'])}"
        )
    if "holders" in impact:
        removed = change["diff"].get("permissions", {}).get("removed") or []
        lines.append(
            f"users who lose {', '.join(map(printable, removed))}: {names(impact['holders'])}"
        )
    return lines


def summary_line(summary: Mapping[str, int]) -> str:
    if summary["total"] == 0:
        text = "No changes. The live state matches the file."
    else:
        text = (
            f"Plan: {summary['create']} to create, {summary['update']} to update, "
            f"{summary['replace']} to replace, {summary['delete']} to delete "
            f"({summary['destructive']} destructive, {summary['grants_privilege']} grant "
            f"privilege, {summary['requires_2fa']} need 2FA)."
        )
    if summary["deferred"]:
        text += f" {summary['deferred']} deferred (not applied now)."
    return text


def _backticked(text: str) -> str:
    return f"`{text}`"


def two_factor_line(
    data: Mapping[str, Any],
    saved_as: str | None = None,
    command: Callable[[str], str] = _backticked,
) -> str:
    """`saved_as`: the file the plan was saved to; only a saved plan can be approved, with the
    command shown as `command` quotes it (markdown: a code span no backtick in the path ends)."""
    n = data["summary"]["requires_2fa"]
    if not n:
        return "No step needs a 2FA confirmation."
    if saved_as is None:
        return (
            f"{n} step(s) need a 2FA confirmation: apply with --otp-code, or save the plan with "
            "`--out plan.json` and have that exact plan approved (`userctl approve plan.json`)."
        )
    approve = shell_command(
        "userctl", "approve", saved_as, "--operator", "EMAIL", "--otp-code", "CODE"
    )
    return (
        f"{n} step(s) need a 2FA confirmation: apply with --otp-code, or approve this exact plan "
        f"first with {command(approve)}."
    )


# What each 2FA policy asks for, in words (DESIGN §1, §3).
TWO_FACTOR_POLICIES: Mapping[str, str] = {
    "destructive": "destructive and privilege-granting steps need a TOTP code",
    "all": "every change to an existing user or role needs a TOTP code",
}


def policy_line(data: Mapping[str, Any]) -> str:
    """The 2FA policy and what it means for this plan, in words."""
    policy = str(data["two_factor_policy"])
    meaning = TWO_FACTOR_POLICIES.get(policy, "")
    n = data["summary"]["requires_2fa"]
    here = (
        f"the {n} step(s) marked 2FA need a TOTP code (apply --otp-code) or an approval"
        if n
        else f"{meaning}; none here"
    )
    return printable(f"2FA policy: {policy} — {here}.")


def deferred_line(changes: Sequence[Mapping[str, Any]], how: str) -> str:
    """The deferred steps in one line: what "deferred" means and how to see them."""
    deferred = [c for c in changes if c["deferred"]]
    if not deferred:
        return ""
    by_kind = Counter(f"{c['kind']} {c['action']}" for c in deferred)
    kinds = ", ".join(f"{n} {label}" for label, n in sorted(by_kind.items()))
    return (
        f"{len(deferred)} deferred ({kinds}): pending registration, done when those users finish "
        f"registering, not by this plan. {how}"
    )


def is_summarised(finding: Mapping[str, Any]) -> bool:
    """A hygiene note that does not block: about the organization rather than this plan, it is
    the same on every plan, so it is counted in one line instead of repeated (an expiry soon or a
    guard's note is about this plan, and is shown in full)."""
    return not finding["blocking"] and finding["code"] in CODES


def notes_line(findings: Sequence[Mapping[str, Any]], how: str) -> str:
    """The hygiene notes in one line, with their codes and how to see them."""
    notes = [f for f in findings if is_summarised(f)]
    if not notes:
        return ""
    by_code = Counter(str(f["code"]) for f in notes)
    codes = ", ".join(f"{code} ×{n}" for code, n in sorted(by_code.items()))
    return printable(f"{len(notes)} note(s) ({codes}). {how}")


def is_blocked(data: Mapping[str, Any]) -> bool:
    return any(f["blocking"] for f in data["findings"])
