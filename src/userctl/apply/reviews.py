"""The access review at the edge: reading one organization's report (users, grants joined to the
audit log, hygiene findings, policy results) and recording a reviewer's TOTP attestation of one
exact report as an audit event, under the organization lock like every writer."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Mapping

from userctl import hygiene, review
from userctl.errors import Refused
from userctl.state import Organization

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# A reviewer reads the log the report is joined to.
REVIEWER_PERMISSION = "audit.view"


def policy_results(conn: "Connection", org_id: int) -> list[dict[str, Any]]:
    """The organization's current policy violations, as {code, message} records. None until the
    policies (issue 12) are merged: this is where their check of the live state is called."""
    del conn, org_id
    return []


def read_report(conn: "Connection", org_id: int, org: Organization, now: dt.datetime) -> dict[str, Any]:
    """The access review of organization `org_id` as it is now, in the caller's transaction."""
    from userctl.apply.audit import chain_head, list_events
    from userctl.db.hygiene import read_facts, settings_for
    from userctl.db.snapshot import read_live_state

    live = read_live_state(conn, org.slug)
    settings = settings_for(conn, org_id)
    everyone = read_facts(conn, org_id, settings, now, everyone=True)
    flagged = hygiene.findings(read_facts(conn, org_id, settings, now), settings, now)
    users = [
        review.ReviewUser(a, live.users[a.email].first_name, live.users[a.email].last_name, live.users[a.email].two_factor,
                          live.users[a.email].bank_accounts)
        for a in everyone.accounts
    ]
    return review.build_report(org.slug, org.name, users, list_events(conn, org_id), flagged, policy_results(conn, org_id), settings,
                               chain_head(conn, org_id), now)


def attest(engine: "Engine", organization: str, report: Mapping[str, Any], reviewer: str, otp_code: str, note: str | None,
           *, now: dt.datetime, lock_timeout_s: float) -> str:
    """Record `reviewer`'s TOTP-confirmed attestation of `report` (checked: its digest recomputed
    from its content, and that it is this organization's); returns the new audit chain head."""
    from userctl.apply import audit, otp
    from userctl.apply.operators import load_operator
    from userctl.plan import organization_address

    problem = review.report_problem(report, organization)
    if problem is not None:
        raise Refused(f"cannot attest this report: {problem}")

    def work(conn: "Connection", org_id: int) -> str:
        me = load_operator(conn, org_id, reviewer, [REVIEWER_PERMISSION])
        otp.verify_operator_code(conn, me.id, otp_code, now)
        return audit.append_events(conn, org_id, [audit.AuditRecord(
            operator=me.email, verified_by="totp", operator_verified=True, action=review.ATTEST_ACTION,
            address=organization_address(organization), after=review.attestation_record(report, me.email, note),
        )], now)

    return otp.locked_write(engine, organization, work, now=now, lock_timeout_s=lock_timeout_s)


def read_evidence(conn: "Connection", org_id: int, org: Organization, since: dt.datetime, until: dt.datetime,
                  now: dt.datetime) -> tuple[dict[str, str], bool]:
    """The evidence pack of [since, until) as file name -> text (SHA256SUMS aside), and whether
    the audit chain verified. Every file opens without userctl: JSON, CSV and HTML."""
    import json

    from userctl.apply.audit import ENV_KEY, list_events, verify_chain
    from userctl.clock import iso_z
    from userctl.render import review as page

    verified = verify_chain(conn, org_id)
    events = list_events(conn, org_id)
    period = review.in_period(events, since, until)
    plans = review.applied_plans(events, period)
    jml = review.joiners_movers_leavers(events, period)
    attested = review.attestations(period)
    report = read_report(conn, org_id, org, now)
    violations = report["summary"]["policy_violations"]
    verification = {"ok": verified.ok, "events": verified.events, "chain_head": verified.head,
                    "hmac_checked": verified.hmac_checked, "problem": verified.problem, "verified_at": iso_z(now)}
    window = {"since": iso_z(since), "until": iso_z(until) + " (exclusive)"}

    def dump(data: Any) -> str:
        return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"

    title = f"{org.name} ({org.slug})"
    files = {
        "audit-log.json": dump({"organization": org.slug, "period": window, "verification": verification,
                                "events": list(period)}),
        "audit-log.csv": page.records_csv(page.AUDIT_COLUMNS, list(period)),
        "plans.json": dump(plans),
        "plans.html": page.plans_html(f"Plans applied, {title}", plans),
        "joiners-movers-leavers.csv": page.records_csv(page.JML_COLUMNS, jml),
        "joiners-movers-leavers.html": page.records_html(f"Joiners, movers and leavers, {title}", page.JML_COLUMNS, jml,
                                                         f"{window['since']} to {window['until']}"),
        "attestations.json": dump(list(attested)),
        "policy-results.json": dump({"checked_at": iso_z(now), "violations": violations}),
        "hygiene.json": dump({"checked_at": iso_z(now), "settings": report["settings"], "findings": report["findings"]}),
        "review.json": dump(report),
        "review.html": page.render_html(report),
    }
    chain = (f"intact: {verified.events} events" if verified.ok else f"BROKEN: {verified.problem}") + (
        "" if verified.hmac_checked else f" (HMACs not checked: {ENV_KEY} was not set)")
    facts = [
        ("organization", title), ("period", f"{window['since']} to {window['until']}"), ("generated", iso_z(now)),
        ("audit chain", chain), ("chain head", verified.head), ("events in the period", str(len(period))),
        ("plans applied", str(len(plans))), ("joiners / movers / leavers",
                                             " / ".join(str(sum(r["kind"] == k for r in jml)) for k in ("joiner", "mover", "leaver"))),
        ("review attestations in the period", str(len(attested))), ("policy violations now", str(len(violations))),
        ("hygiene findings now", str(len(report["findings"]))),
    ]
    described = [
        ("audit-log.json", "the audit events of the period, with the whole chain's verification and head"),
        ("audit-log.csv", "the same events for a spreadsheet"),
        ("plans.html", "every plan applied in the period: operator, verification, approvals, reasons, changes"),
        ("plans.json", "the same as data"),
        ("joiners-movers-leavers.html", "creations, role changes, deactivations and deletions, with operator, approval, reason"),
        ("joiners-movers-leavers.csv", "the same for a spreadsheet (sampling)"),
        ("attestations.json", "access reviews attested in the period"),
        ("review.html", "the access review as of now"), ("review.json", "the same, with its digest"),
        ("policy-results.json", "the policies checked against the live state now"),
        ("hygiene.json", "dormant users, expired invitations, privileged users without 2FA, now"),
        ("SHA256SUMS", "the SHA-256 of every file of this pack"),
    ]
    files["index.html"] = page.index_html(f"Audit evidence: {title}", facts, described)
    return files, verified.ok
