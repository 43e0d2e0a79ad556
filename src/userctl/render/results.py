"""What the commands that act (validate, apply, approve, audit verify, accounts import,
notifications send) report to a pipeline with `--format json`, or as GitHub workflow annotations.
Pure: each function turns a command's result into plain data; every document is described by a
schema in schemas/ (docs/reference.md lists them), and every instant in it is written by
`clock.iso_z`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from userctl.clock import iso_z
from userctl.errors import Problem
from userctl.printable import json_text, printable


def document(data: Any) -> str:
    """One JSON document for stdout: indented, UTF-8 as is, ending in a newline."""
    return json_text(data)


# --- validate ---------------------------------------------------------------------------------


def problem_data(problem: Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "col": problem.col if problem.col is not None or problem.line is None else 1,
        "path": problem.dotted_path(),
        "message": problem.message,
    }


def validation(
    files: Sequence[str],
    problems: Sequence[Problem],
    organization: str | None = None,
    roles: int | None = None,
    users: int | None = None,
) -> dict[str, Any]:
    """`validate --format json`: the files checked, whether they are valid, and every problem."""
    return {
        "valid": not problems,
        "files": list(files),
        "organization": organization,
        "roles": roles,
        "users": users,
        "problems": [problem_data(p) for p in problems],
    }


def _escape_data(text: str) -> str:
    # GitHub's own escaping of workflow command data (actions/toolkit, command.ts escapeData);
    # then every other control or format character as an escape: shown in the pull request as
    # written, a bidi override in a refused key must not reorder the line.
    return printable(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(problem: Problem) -> str:
    """`::error file=F,line=L,col=C::PATH: message`: GitHub shows it on that line of the pull
    request's diff. Properties that are unknown are left out, never guessed."""
    properties = []
    if problem.file is not None:
        properties.append(f"file={_escape_property(problem.file)}")
        if problem.line is not None:
            properties.append(f"line={problem.line}")
            properties.append(f"col={problem.col or 1}")
    head = "::error " + ",".join(properties) if properties else "::error"
    return f"{head}::{_escape_data(problem.dotted_path() + ': ' + problem.message)}"


# --- apply and approve ------------------------------------------------------------------------


def verification(operator_verified: bool, approvers: Sequence[str]) -> str:
    """How a plan's 2FA was met: the applier's own code, approvals, both, or not needed."""
    if operator_verified and approvers:
        return "code+approvals"
    if operator_verified:
        return "code"
    return "approvals" if approvers else "none"


def applied(
    *,
    organization: str,
    plan_digest: str,
    actions: Iterable[str],
    operator: str,
    operator_verified: bool,
    approvers: Sequence[str],
    serial: int | None,
    audit_head: str | None,
    audit_seqs: tuple[int, int] | None,
    invited: Sequence[str],
    delivery: tuple[int, int] | None,
    at: dt.datetime,
    checkpoint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`apply --format json`. `actions` are the applied changes' "kind.action" names; `delivery`
    is (sent, still queued) when invitations were sent after commit, None when not tried."""
    counts = Counter(actions)
    return {
        "organization": organization,
        "plan_digest": plan_digest,
        "applied_at": iso_z(at),
        "applied": sum(counts.values()),
        "changes": dict(sorted(counts.items())),
        "operator": operator,
        "verified_by": operator if operator_verified else None,
        "verification": verification(operator_verified, approvers),
        "approvals_used": list(approvers),
        "serial": serial,
        "audit_head": audit_head,
        "audit_events": None
        if audit_seqs is None
        else {"first_seq": audit_seqs[0], "last_seq": audit_seqs[1]},
        "invitations": {
            "queued": len(invited),
            "recipients": list(invited),
            "delivery": None
            if delivery is None
            else {"sent": delivery[0], "still_queued": delivery[1]},
        },
        "checkpoint": None if checkpoint is None else dict(checkpoint),
    }


def approved(
    *,
    organization: str,
    plan_digest: str,
    approver: str,
    approval_id: int,
    valid_until: dt.datetime,
    audit_head: str,
    at: dt.datetime,
) -> dict[str, Any]:
    """`approve --format json`."""
    return {
        "organization": organization,
        "plan_digest": plan_digest,
        "approver": approver,
        "approval_id": approval_id,
        "approved_at": iso_z(at),
        "valid_until": iso_z(valid_until),
        "audit_head": audit_head,
    }


# --- audit verify -----------------------------------------------------------------------------


def chain_verification(
    *,
    organization: str,
    events: int,
    head: str,
    expected_head: str | None,
    hmac_checked: bool,
    problem: str | None,
    bad_seq: int | None,
    bad_id: int | None,
    after_head: int | None,
    signed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`audit verify --format json`: `broken` names the first bad event (its seq and row id; null
    for a --head that is no event of the chain) and why; `events_after_head` counts the events
    appended after an intact --head; `signed` is the checkpoints' verification (--public-key)."""
    return {
        "organization": organization,
        "ok": problem is None,
        "events": events,
        "head": head,
        "expected_head": expected_head,
        "events_after_head": after_head,
        "hmac_checked": hmac_checked,
        "broken": None if problem is None else {"seq": bad_seq, "id": bad_id, "reason": problem},
        "signed": None if signed is None else dict(signed),
    }


# --- accounts import and notifications send ---------------------------------------------------


def accounts_imported(
    organization: str, registered: Sequence[str], present: Sequence[str], audit_head: str | None
) -> dict[str, Any]:
    """`accounts import --format json`: every key of the file, registered now or already present."""
    outcome = {**{k: "already_present" for k in present}, **{k: "registered" for k in registered}}
    return {
        "organization": organization,
        "registered": len(registered),
        "already_present": len(present),
        "accounts": [{"key": key, "status": outcome[key]} for key in sorted(outcome)],
        "audit_head": audit_head,
    }


def notifications_sent(
    sent: int, failed: int, cancelled: int, deliveries: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """`notifications send --format json`: one entry per invitation it tried, never a token."""
    return {
        "sent": sent,
        "failed": failed,
        "cancelled": cancelled,
        "notifications": [dict(d) for d in deliveries],
    }
