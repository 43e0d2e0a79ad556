"""The access review at the edge: reading one organization's report (users, grants joined to the
audit log, hygiene findings, policy results) and recording a reviewer's TOTP attestation of one
exact report as an audit event, under the organization lock like every writer."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any, Mapping

from userctl import review
from userctl.errors import Refused, UsageError
from userctl.names import free_text_problem
from userctl.state import LiveState, Organization
from userctl.verification import OWN_CODE

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# What an attestation's note may hold: a paragraph, not a document.
MAX_NOTE = 2000
# A reviewer reads the log the report is joined to.
REVIEWER_PERMISSION = "audit.view"


def read_report_file(path: str) -> Any:
    """A saved report as JSON, bounded like every document read; its digest is checked by
    whoever reads it (read_report)."""
    from userctl.desired.reader import MAX_DOCUMENT_BYTES, read_bounded

    data = read_bounded(
        path,
        MAX_DOCUMENT_BYTES,
        what="report",
        advice="it is not one `userctl review --format json` wrote",
    )
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise UsageError(
            f"{path} is not a report: not JSON (write one with `userctl review --format json`)"
        ) from None


def policy_results(live: LiveState) -> list[dict[str, Any]]:
    """The organization's current policy violations (what `policy check` reports), as {code,
    message} records."""
    from userctl import policies

    return [{"code": f"policy.{v.rule}", "message": v.message} for v in policies.check(live)]


def read_report(
    conn: "Connection",
    org_id: int,
    org: Organization,
    now: dt.datetime,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The access review of organization `org_id` as it is now, in the caller's transaction.
    `events`: the organization's audit events (`audit.list_events`), when the caller has read
    them in this transaction already; read here otherwise."""
    from userctl.apply.audit import chain_head, list_events
    from userctl.db.hygiene import findings_now, read_facts, settings_for
    from userctl.db.snapshot import read_live_state

    live = read_live_state(conn, org.slug)
    settings = settings_for(conn, org_id)
    everyone = read_facts(conn, org_id, settings, now, everyone=True)
    flagged = findings_now(conn, org_id, live, settings, now)
    users = [
        review.ReviewUser(
            a,
            live.users[a.email].first_name,
            live.users[a.email].last_name,
            live.users[a.email].two_factor,
            live.users[a.email].bank_accounts,
            live.users[a.email].expires,
        )
        for a in everyone.accounts
    ]
    return review.build_report(
        org.slug,
        org.name,
        users,
        list_events(conn, org_id) if events is None else events,
        flagged,
        policy_results(live),
        settings,
        chain_head(conn, org_id),
        now,
    )


def attest(
    engine: "Engine",
    organization: str,
    report: Mapping[str, Any],
    reviewer: str,
    otp_code: str,
    note: str | None,
    *,
    now: dt.datetime,
    lock_timeout_s: float,
    code_read_at: dt.datetime | None = None,
) -> str:
    """Record `reviewer`'s TOTP-confirmed attestation of `report` (checked: its digest recomputed
    from its content, and that it is this organization's); returns the new audit chain head. The
    code is judged at `code_read_at` (default `now`), when the command read it."""
    from userctl.apply import audit, otp
    from userctl.apply.operators import load_operator
    from userctl.plan import organization_address

    problem = review.report_problem(report, organization)
    if problem is not None:
        raise Refused(f"cannot attest this report: {problem}")
    # The note goes into the audit log and the evidence pages: held to the reason's rule.
    problem = None if note is None else free_text_problem(note, "the note", MAX_NOTE)
    if problem is not None:
        raise UsageError(f"--note: {problem}")

    def work(conn: "Connection", org_id: int) -> str:
        me = load_operator(conn, org_id, reviewer, [REVIEWER_PERMISSION], now=now)
        # Before the code: a refused report spends no time step and writes nothing.
        problem = rederived_problem(conn, org_id, report, now)
        if problem is not None:
            raise Refused(f"cannot attest this report: {problem}. Nothing was written")
        otp.verify_operator_code(conn, me.id, otp_code, now, read_at=code_read_at or now)
        return audit.append_events(
            conn,
            org_id,
            [
                audit.AuditRecord(
                    operator=me.email,
                    verified_by=OWN_CODE.to_text(),
                    operator_verified=True,
                    action=review.ATTEST_ACTION,
                    address=organization_address(organization),
                    after=review.attestation_record(report, me.email, note),
                )
            ],
            now,
        )

    return otp.locked_write(engine, organization, work, now=now, lock_timeout_s=lock_timeout_s)


def rederived_problem(
    conn: "Connection", org_id: int, report: Mapping[str, Any], now: dt.datetime
) -> str | None:
    """Why `report` is not the organization's access review as the database has it (DESIGN §8
    invariant 5: a saved report is evidence, never authority), or None. It is stale when an event
    that changes access (review.NO_ACCESS_ACTIONS says which do not) follows its audit_head; it is
    wrong when the report re-derived at its own generated_at differs from it. In the caller's
    transaction, under the organization lock, so nothing can change between check and record."""
    from userctl.apply.audit import GENESIS, list_events
    from userctl.clock import iso_z, naive_utc, parse_utc
    from userctl.db.snapshot import read_organization

    head = str(report.get("audit_head"))
    events = list_events(conn, org_id)
    changes = review.access_changes_since(events, head, GENESIS)
    if changes is None:
        return f"its audit_head {head} is not in the audit log of {report.get('organization')}"
    if changes:
        first = changes[0]
        return (
            f"access changed since it was made: {len(changes)} access-changing event(s) after "
            f"its audit_head, the first #{first['seq']} {first['action']} {first['address']} at "
            f"{first['time']}; make a new report with `userctl review --format json`"
        )
    try:
        made = parse_utc(str(report.get("generated_at")))
    except ValueError:
        return f"its generated_at {report.get('generated_at')!r} is not an instant"
    # Made no earlier than the event it names as its head, and not in the future: a report
    # back-dated before its own head is re-derived at a moment it cannot describe.
    head_time = next((e["time"] for e in events if e["hash"] == head), None)
    if made > naive_utc(now) or (head_time is not None and iso_z(made) < head_time):
        return (
            f"its generated_at {iso_z(made)} is not between its audit_head's event "
            f"({head_time or 'none'}) and now"
        )
    _, org = read_organization(conn, str(report.get("organization")))
    # The events read above, in this transaction: the log is read once, under the lock.
    rederived = read_report(conn, org_id, org, made, events)
    differences = review.report_differences(report, rederived)
    if differences:
        return (
            "it differs from the database: "
            + "; ".join(differences[:5])
            + (f" and {len(differences) - 5} more difference(s)" if len(differences) > 5 else "")
        )
    return None


def read_evidence(
    conn: "Connection",
    org_id: int,
    org: Organization,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
) -> dict[str, Any]:
    """The evidence of [since, until) as data, for `render.review.evidence_files`: the whole
    chain's verification, the period's events, the plans applied, joiners/movers/leavers,
    attestations, and the access review as of now (its policy results and hygiene findings)."""
    from userctl.apply.audit import ENV_KEY, list_events, verify_chain
    from userctl.clock import iso_z

    verified = verify_chain(conn, org_id)
    events = list_events(conn, org_id)
    period = review.in_period(events, since, until)
    return {
        "organization": org.slug,
        "title": f"{org.name} ({org.slug})",
        "generated_at": iso_z(now),
        "period": {"since": iso_z(since), "until": iso_z(until), "until_exclusive": True},
        "verification": {
            "ok": verified.ok,
            "events": verified.events,
            "chain_head": verified.head,
            "hmac_checked": verified.hmac_checked,
            "hmac_key": ENV_KEY,
            "problem": verified.problem,
            "verified_at": iso_z(now),
        },
        "events": period,
        "plans": review.applied_plans(events, period),
        "joiners_movers_leavers": review.joiners_movers_leavers(events, period),
        "attestations": review.attestations(period),
        "review": read_report(conn, org_id, org, now),
    }
