"""The access review (PCI DSS 7.2.4; SOC 2 access sampling): who has what in one organization,
joined to the audit log — for each grant (a user's role, each bank account assigned to them) the
apply that made it: when, which plan digest, which operator, verified how, approved by whom,
with which reason — with a summary (privileged users, dormant users, policy violations) and a
digest over the report's content, which an attestation names. Also what `review status`
decides. Pure: the edges read the users, the audit events and the findings and hand them here.

Audit events are read as plain data (`apply.audit.list_events`); a `reason` is read where the
event carries one (`plan --reason`): null in the data, "—" on the page, where none was given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final, Iterable, Mapping, Sequence

from userctl.clock import iso_z, naive_utc, parse_utc
from userctl.hygiene import Account, ReviewSettings, is_dormant, privileged
from userctl.plan import Finding, assignment_address, compute_digest, user_address

REPORT_KIND: Final = "userctl access review"
# 2: each user carries `expires` (a report of format 1 cannot show it, so it is made again).
REPORT_VERSION: Final = 2
ATTEST_ACTION: Final = "review.attest"
APPROVE_ACTION: Final = "plan.approve"
NO_REASON: Final = "—"


@dataclass(frozen=True, slots=True)
class ReviewUser:
    account: Account
    first_name: str
    last_name: str
    two_factor: str
    bank_accounts: frozenset[str]
    # Their last day (YYYY-MM-DD), or None: shown beside each user, not only as a finding when it
    # is near, so the reviewer sees whose access already has an end (DESIGN §8 invariant 3).
    expires: str | None = None


def grant_events(
    events: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """The event that last granted each user their role (by user address) and each bank account
    (by assignment address): a creation, re-creation or reactivation, or a change of role; an
    assignment."""
    roles: dict[str, Mapping[str, Any]] = {}
    accounts: dict[str, Mapping[str, Any]] = {}
    for event in events:
        action, after, before = str(event["action"]), event.get("after"), event.get("before")
        if action.endswith(".assign"):
            accounts[str(event["address"])] = event
        elif (
            isinstance(after, Mapping)
            and "role" in after
            and (
                action.rsplit(".", 1)[-1] in ("create", "replace", "activate")
                or not isinstance(before, Mapping)
                or before.get("role") != after.get("role")
            )
        ):
            roles[str(event["address"])] = event
    return roles, accounts


def approvals_by_digest(events: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Plan digest -> who approved it (with a TOTP code) and when, in order."""
    found: dict[str, list[dict[str, str]]] = {}
    for event in events:
        if event["action"] == APPROVE_ACTION and event.get("plan_digest"):
            found.setdefault(str(event["plan_digest"]), []).append(
                {"approver": str(event["operator"]), "time": str(event["time"])}
            )
    return found


def reason_of(event: Mapping[str, Any]) -> str | None:
    """The event's `plan --reason`; None (shown as NO_REASON) when none was given."""
    reason = event.get("reason")
    return str(reason) if reason else None


def provenance(
    event: Mapping[str, Any] | None, approvals: Mapping[str, Sequence[Mapping[str, str]]]
) -> dict[str, Any] | None:
    """How a grant came about, from the event that made it (None: no audit record, e.g. written
    by the platform or before userctl)."""
    if event is None:
        return None
    digest = event.get("plan_digest")
    approved = (
        [a for a in approvals.get(str(digest), ()) if a["time"] <= str(event["time"])]
        if digest
        else []
    )
    return {
        "time": event["time"],
        "seq": event["seq"],
        "action": event["action"],
        "plan_digest": digest,
        "operator": event["operator"],
        "operator_verified": event.get("operator_verified"),
        "verified_by": event["verified_by"],
        "approved_by": approved,
        "reason": reason_of(event),
    }


def build_report(
    organization: str,
    organization_name: str,
    users: Sequence[ReviewUser],
    events: Sequence[Mapping[str, Any]],
    findings: Sequence[Finding],
    policy_results: Sequence[Mapping[str, Any]],
    settings: ReviewSettings,
    audit_head: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """The report as data (its JSON form), its digest included."""
    roles, accounts = grant_events(events)
    approvals = approvals_by_digest(events)
    rows: list[dict[str, Any]] = []
    for u in sorted(users, key=lambda r: r.account.email):
        a = u.account
        held = privileged(a.permissions)
        role_event = roles.get(user_address(a.email))
        if role_event is not None and (role_event.get("after") or {}).get("role") != a.role:
            role_event = None  # the role changed outside userctl since: no record of this grant
        rows.append(
            {
                "email": a.email,
                "name": f"{u.first_name} {u.last_name}",
                "status": a.status,
                "role": a.role,
                "permissions": sorted(a.permissions),
                "privileged_permissions": held,
                "two_factor": u.two_factor,
                "totp_enrolled": a.totp_enrolled,
                "last_login_at": iso_z(a.last_login_at) if a.last_login_at else None,
                "dormant": is_dormant(a, settings, now),
                "expires": u.expires,
                "grants": [
                    {
                        "kind": "role",
                        "name": a.role,
                        "granted_by": provenance(role_event, approvals),
                    },
                    *(
                        {
                            "kind": "bank_account",
                            "name": key,
                            "granted_by": provenance(
                                accounts.get(assignment_address(a.email, key)), approvals
                            ),
                        }
                        for key in sorted(u.bank_accounts)
                    ),
                ],
            }
        )
    content: dict[str, Any] = {
        "kind": REPORT_KIND,
        "format_version": REPORT_VERSION,
        "organization": organization,
        "organization_name": organization_name,
        "generated_at": iso_z(now),
        "audit_head": audit_head,
        "settings": settings.to_data(),
        "summary": {
            "users": len(rows),
            "active_users": sum(r["status"] == "active" for r in rows),
            "privileged_users": [
                r["email"]
                for r in rows
                if r["privileged_permissions"] and r["status"] != "inactive"
            ],
            "dormant_users": [r["email"] for r in rows if r["dormant"]],
            "policy_violations": list(policy_results),
            "hygiene_findings": len(findings),
        },
        "users": rows,
        "findings": [f.to_data() for f in findings],
    }
    return {**content, "digest": report_digest(content)}


def report_digest(data: Mapping[str, Any]) -> str:
    """The digest over everything in the report but the digest itself."""
    return compute_digest({k: v for k, v in data.items() if k != "digest"})


def report_problem(data: Any, organization: str) -> str | None:
    """Why `data` (a report's JSON) cannot be attested for `organization`, or None."""
    if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
        return (
            f"not a userctl access review (format_version {REPORT_VERSION}): run "
            "`userctl review --format json`"
        )
    if data.get("format_version") != REPORT_VERSION:
        return (
            f"it is an access review of format_version {data.get('format_version')!r}, made by "
            f"another version of userctl (this one reads {REPORT_VERSION}): run "
            "`userctl review --format json` again"
        )
    if data.get("digest") != report_digest(data):
        return (
            f"its content does not match its digest {data.get('digest')}: the "
            "report was edited after it was made"
        )
    if data.get("organization") != organization:
        return (
            f"it is the review of organization {data.get('organization')!r}, not of {organization}"
        )
    return None


# The audit actions that change nobody's access (DESIGN §8 invariant 5): a report made before
# them still describes the organization. Every other action (any applied change, an enrolment,
# an activity import that moves last logins) makes a report stale: a new kind of event is
# stale until it is declared harmless here.
NO_ACCESS_ACTIONS: Final[Mapping[str, str]] = {
    ATTEST_ACTION: "an attestation records a review, it changes no grant",
    APPROVE_ACTION: "an approval confirms a plan; the plan's apply is what changes access",
    "otp.failure": "a refused code is booked against the operator's lockout",
    "otp.lockout": "a lockout stops confirmations for a while, it grants nothing",
    "notification.resend": "an invitation sent again; the invited user's access is unchanged",
    "bank_account.import": "registers payout accounts; assigning them is what grants access",
}
# What a re-derived report is not compared on: the digest is recomputed, the audit head is
# judged by staleness (the log may have grown by harmless events), and the report is re-derived
# at its own generated_at.
NOT_COMPARED: Final = frozenset({"digest", "audit_head", "generated_at"})


def access_changes_since(
    events: Sequence[Mapping[str, Any]], audit_head: str, genesis: str
) -> list[Mapping[str, Any]] | None:
    """The events after `audit_head` that change access (all of them when the head is the empty
    chain's), or None when `audit_head` is not in `events`."""
    if audit_head == genesis:
        after: Sequence[Mapping[str, Any]] = events
    else:
        at = next((i for i, e in enumerate(events) if e["hash"] == audit_head), None)
        if at is None:
            return None
        after = events[at + 1 :]
    return [e for e in after if e["action"] not in NO_ACCESS_ACTIONS]


def report_differences(saved: Mapping[str, Any], derived: Mapping[str, Any]) -> list[str]:
    """What `saved` says that the report re-derived from the database does not, one sentence
    each: users omitted or invented, a user's field shown otherwise, then any other part."""
    found: list[str] = []
    users = saved.get("users")
    saved_users = (
        {str(u.get("email")): u for u in users if isinstance(u, dict)}
        if isinstance(users, list)
        else {}
    )
    if not isinstance(users, list) or len(saved_users) != len(users):
        found.append("its users are not a list of distinct users")
    real = {str(u["email"]): u for u in derived["users"]}
    for email, u in real.items():
        mine = saved_users.get(email)
        if mine is None:
            found.append(f"the report omits {u['role']} {email}")
            continue
        for key, value in u.items():
            if mine.get(key) != value:
                shown = "grants" if key == "grants" else key
                found.append(
                    f"the report shows {email}'s {shown} as {_short(mine.get(key))}, "
                    f"the database {_short(value)}"
                )
    found += [
        f"the report lists {email}, who is not a user of {derived['organization']}"
        for email in saved_users
        if email not in real
    ]
    found += [
        f"its {key} differs from the database's"
        for key in sorted(set(saved) | set(derived))
        if key not in NOT_COMPARED and key != "users" and saved.get(key) != derived.get(key)
    ]
    return found


def _short(value: Any, limit: int = 60) -> str:
    import json

    text = json.dumps(value, ensure_ascii=True, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def attestation_record(data: Mapping[str, Any], reviewer: str, note: str | None) -> dict[str, Any]:
    """What an attestation's audit event says it attests."""
    return {
        "report_digest": data["digest"],
        "report_generated_at": data["generated_at"],
        "report_audit_head": data["audit_head"],
        "users": data["summary"]["users"],
        "reviewer": reviewer,
        "note": note,
    }


def attestations(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in events if e["action"] == ATTEST_ACTION]


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    last: Mapping[str, Any] | None  # the last attestation event
    due_at: dt.datetime | None
    overdue: bool

    def to_data(self, settings: ReviewSettings) -> dict[str, Any]:
        return {
            "last_attested_at": self.last["time"] if self.last else None,
            "reviewer": self.last["operator"] if self.last else None,
            "report_digest": (self.last.get("after") or {}).get("report_digest")
            if self.last
            else None,
            "review_every_days": settings.review_every_days,
            "due_at": iso_z(self.due_at) if self.due_at else None,
            "overdue": self.overdue,
        }


def review_status(
    events: Sequence[Mapping[str, Any]], settings: ReviewSettings, now: dt.datetime
) -> ReviewStatus:
    """Overdue when no review was ever attested, or the last one is older than the interval."""
    done = attestations(events)
    if not done:
        return ReviewStatus(None, None, True)
    last = done[-1]
    attested = parse_utc(str(last["time"]))
    # An attestation dated near the calendar's end (a wrong clock, a hand-edited row) would
    # overflow: the review is then due at the last instant there is, never a crash.
    room = dt.datetime.max - attested
    due = attested + min(dt.timedelta(days=settings.review_every_days), room)
    return ReviewStatus(last, due, naive_utc(now) > due)


# The evidence of an audit period (`userctl evidence`): pure selections over the audit events.

JOINER_ACTIONS: Final = {
    "user.create": "joiner",
    "user.activate": "joiner",
    "user.replace": "joiner",
    "user.change_role": "mover",
    "user.deactivate": "leaver",
    "user.delete": "leaver",
}


def in_period(
    events: Iterable[Mapping[str, Any]], since: dt.datetime, until: dt.datetime
) -> list[Mapping[str, Any]]:
    """The events at or after `since` and before `until` (naive UTC)."""
    return [e for e in events if since <= parse_utc(str(e["time"])) < until]


def applied_plans(
    events: Sequence[Mapping[str, Any]], period: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Every plan applied in `period` (events carrying its digest, approvals aside), with its
    approvals (found anywhere in `events`: a plan may be approved before the period starts),
    operator, how it was verified, reasons and changes."""
    approvals = approvals_by_digest(events)
    plans: dict[str, dict[str, Any]] = {}
    for e in period:
        digest = e.get("plan_digest")
        if not digest or e["action"] == APPROVE_ACTION:
            continue
        plan = plans.setdefault(
            str(digest),
            {
                "plan_digest": digest,
                "applied_at": e["time"],
                "operator": e["operator"],
                "verified_by": e["verified_by"],
                "operator_verified": e.get("operator_verified"),
                "approved_by": [
                    a for a in approvals.get(str(digest), ()) if a["time"] <= str(e["time"])
                ],
                "reasons": [],
                "changes": [],
            },
        )
        reason = reason_of(e)
        if reason is not None and reason not in plan["reasons"]:
            plan["reasons"].append(reason)
        plan["changes"].append({"seq": e["seq"], "action": e["action"], "address": e["address"]})
    return list(plans.values())


def joiners_movers_leavers(
    events: Sequence[Mapping[str, Any]], period: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Creations and reactivations (joiners), role changes (movers), deactivations and deletions
    (leavers) in `period`, each with time, operator, approval and reason."""
    approvals = approvals_by_digest(events)
    rows: list[dict[str, Any]] = []
    for e in period:
        kind = JOINER_ACTIONS.get(str(e["action"]))
        if kind is None:
            continue
        before, after = e.get("before") or {}, e.get("after") or {}
        granted = provenance(e, approvals) or {}
        rows.append(
            {
                "time": e["time"],
                "kind": kind,
                "action": e["action"],
                "user": e["address"],
                "role_before": before.get("role"),
                "role_after": after.get("role"),
                "operator": e["operator"],
                "verified_by": e["verified_by"],
                "approved_by": [a["approver"] for a in granted.get("approved_by", ())],
                "reason": reason_of(e),
                "plan_digest": e.get("plan_digest"),
                "seq": e["seq"],
            }
        )
    return rows
