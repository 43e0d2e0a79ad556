"""The access review (`userctl.review.build_report`'s data) as CSV (one row per grant) and as one
self-contained HTML page an auditor reads and prints: inline CSS, no scripts, no external
requests; the table's header repeats on every printed page and no row is split across pages."""

from __future__ import annotations

from html import escape
from typing import Any, Final, Mapping, Sequence

from userctl.printable import json_text, printable
from userctl.render.tables import _csv_cell, _csv_lines
from userctl.verification import Verification

NONE: Final = "—"


def e(text: str) -> str:
    """`text` safe anywhere in the page, attribute values included (hidden characters shown)."""
    return escape(printable(text))


CSV_COLUMNS = (
    "email",
    "name",
    "status",
    "role",
    "privileged_permissions",
    "two_factor",
    "totp_enrolled",
    "last_login_at",
    "dormant",
    "expires",
    "grant",
    "grant_name",
    "granted_at",
    "plan_digest",
    "operator",
    "operator_verified",
    "verified_by",
    "approved_by",
    "reason",
)


def approvers(granted: Mapping[str, Any] | None) -> str:
    if not granted or not granted["approved_by"]:
        return NONE
    return ", ".join(f"{a['approver']} ({a['time']})" for a in granted["approved_by"])


def verified(granted: Mapping[str, Any]) -> str:
    """How a grant was confirmed, as stored, and whether the operator gave a code of their own
    (unknown, None, for events written before that was recorded)."""
    how = str(granted["verified_by"])
    try:
        init = Verification.from_text(how, operator_verified=False).init
    except ValueError:
        init = False  # text no writer produces (an edited row or report): shown as it is
    if granted.get("operator_verified") is False and not init:
        # init enrols the first admin: there is no code to give yet.
        how += " (operator gave no code)"
    return how


def render_csv(data: Mapping[str, Any]) -> str:
    rows: list[list[str]] = [list(CSV_COLUMNS)]
    for u in data["users"]:
        for g in u["grants"]:
            by = g["granted_by"] or {}
            values: dict[str, Any] = {
                **{
                    k: u[k]
                    for k in (
                        "email",
                        "name",
                        "status",
                        "role",
                        "privileged_permissions",
                        "two_factor",
                        "totp_enrolled",
                        "last_login_at",
                        "dormant",
                        "expires",
                    )
                },
                "grant": g["kind"],
                "grant_name": g["name"],
                "granted_at": by.get("time"),
                "plan_digest": by.get("plan_digest"),
                "operator": by.get("operator"),
                "operator_verified": by.get("operator_verified"),
                "verified_by": by.get("verified_by"),
                "approved_by": approvers(by) if by else None,
                "reason": by.get("reason"),
            }
            rows.append(["" if values[c] is None else _csv_cell(values[c]) for c in CSV_COLUMNS])
    return _csv_lines(rows)


STYLE = """
body{font:13px/1.4 system-ui,sans-serif;margin:2em;color:#1b1f24}
h1{font-size:1.4em}table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{font-family:ui-monospace,monospace;font-size:.9em}
td,th,code{overflow-wrap:anywhere}
.summary td{font-size:1.2em;font-weight:bold}.dormant{background:#fff8e1}\
.privileged{background:#fff1f0}
.grant{margin:0 0 .4em}.none{color:#57606a}.blocking{color:#b42318;font-weight:bold}
thead{display:table-header-group}tr{break-inside:avoid;page-break-inside:avoid}
@page{size:A4 landscape;margin:10mm}
@media print{body{margin:0;font-size:10px}thead{display:table-header-group}\
tr{break-inside:avoid;page-break-inside:avoid}
a{color:inherit;text-decoration:none}}
"""


def _breakable(text: str) -> str:
    """`text` escaped, with a line-break opportunity after each `@` and `.`: an email or an
    address then wraps between its parts, not mid-word (overflow-wrap is the last resort)."""
    return e(text).replace("@", "@<wbr>").replace(".", ".<wbr>")


def _grant(g: Mapping[str, Any]) -> str:
    by = g["granted_by"]
    label = f"{'role' if g['kind'] == 'role' else 'bank account'} <b>{e(g['name'])}</b>"
    if by is None:
        return (
            f'<div class="grant">{label}: <span class="none">no audit record (not '
            "granted through userctl)</span></div>"
        )
    digest = (
        f"<code>{e(by['plan_digest'])}</code>"
        if by["plan_digest"]
        else '<span class="none">no plan</span>'
    )
    return (
        f'<div class="grant">{label}: {e(by["time"])} by {e(by["operator"])}, '
        f"verified {e(verified(by))}; approved by {e(approvers(by))}; "
        f"reason: {e(by['reason'] or NONE)}; plan {digest}</div>"
    )


def _listed(emails: list[str]) -> str:
    return e(", ".join(emails)) or NONE


def render_html(data: Mapping[str, Any]) -> str:
    s = data["summary"]
    rows = []
    for u in data["users"]:
        cls = "dormant" if u["dormant"] else "privileged" if u["privileged_permissions"] else ""
        rows.append(
            f'<tr class="{cls}" data-email="{e(u["email"])}">'
            f"<td>{e(u['name'])}<br><code>{_breakable(u['email'])}</code></td>"
            f"<td>{e(u['status'])}</td><td>{e(u['expires'] or 'none')}</td>"
            f"<td>{e(u['role'])}</td>"
            f"<td>{e(', '.join(u['permissions'])) or NONE}"
            + (
                f"<br><b>privileged:</b> {e(', '.join(u['privileged_permissions']))}"
                if u["privileged_permissions"]
                else ""
            )
            + f"</td><td>{e(u['two_factor'])}, "
            f"{'enrolled' if u['totp_enrolled'] else 'not enrolled'}</td>"
            f"<td>{e(u['last_login_at'] or 'never')}"
            f"{' <b>(dormant)</b>' if u['dormant'] else ''}</td>"
            f"<td>{''.join(_grant(g) for g in u['grants'])}</td></tr>"
        )
    violations = (
        "".join(f"<li>{e(str(v.get('message', v)))}</li>" for v in s["policy_violations"])
        or "<li>none</li>"
    )
    findings = (
        "".join(
            f'<li class="{"blocking" if f["blocking"] else ""}"><code>{e(f["code"])}</code>: '
            f"{e(f['message'])}</li>"
            for f in data["findings"]
        )
        or "<li>none</li>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Access review: {e(data["organization_name"])} ({e(data["organization"])})</title>
<style>{STYLE}</style></head>
<body><main>
<h1>Access review: {e(data["organization_name"])} (<code>{e(data["organization"])}</code>)</h1>
<p>Generated {e(data["generated_at"])} &middot; \
audit chain head <code>{e(data["audit_head"])}</code>
&middot; report digest <code id="digest">{e(data["digest"])}</code></p>
<h2>Summary</h2>
<table class="summary"><thead><tr><th>users</th><th>active</th><th>privileged users</th>\
<th>dormant users (over {e(str(data["settings"]["max_inactive_days"]))} days)</th>\
<th>policy violations</th><th>hygiene findings</th></tr></thead>
<tbody><tr><td>{s["users"]}</td><td>{s["active_users"]}</td>\
<td>{len(s["privileged_users"])}</td><td>{len(s["dormant_users"])}</td>\
<td>{len(s["policy_violations"])}</td><td>{s["hygiene_findings"]}</td></tr></tbody></table>
<p><b>Privileged users:</b> {_listed(s["privileged_users"])}</p>
<p><b>Dormant users:</b> {_listed(s["dormant_users"])}</p>
<p><b>Policy violations:</b></p><ul>{violations}</ul>
<p><b>Hygiene findings:</b></p><ul>{findings}</ul>
<h2>Users and their grants</h2>
<table id="users"><thead><tr><th>user</th><th>status</th><th>last day</th><th>role</th>\
<th>permissions</th>\
<th>2FA</th><th>last login</th><th>grants: when, by whom, verified how, approved by whom, why</th>\
</tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>
<p>To attest this review: \
<code>userctl review attest REPORT.json --reviewer EMAIL --otp-code CODE</code> \
with the JSON form of this report (same digest).</p>
</main></body></html>
"""


# The evidence pack's pages and tables (`userctl evidence`).

JML_COLUMNS: Final = (
    "time",
    "kind",
    "action",
    "user",
    "role_before",
    "role_after",
    "operator",
    "verified_by",
    "approved_by",
    "reason",
    "plan_digest",
    "seq",
)
AUDIT_COLUMNS: Final = (
    "seq",
    "time",
    "operator",
    "verified_by",
    "operator_verified",
    "plan_digest",
    "action",
    "address",
    "reason",
    "hash",
)


def records_csv(columns: tuple[str, ...], records: Sequence[Mapping[str, Any]]) -> str:
    """`records` as CSV, every value as in JSON but lists joined and nothing as an empty cell."""
    return _csv_lines(
        [
            list(columns),
            *(["" if r.get(c) is None else _csv_cell(r.get(c)) for c in columns] for r in records),
        ]
    )


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{STYLE}</style></head>
<body><main>
<h1>{e(title)}</h1>
{body}
</main></body></html>
"""


def _cell(value: Any) -> str:
    if value is None or value == []:
        return NONE
    if isinstance(value, list):
        return _breakable(
            ", ".join(
                v if isinstance(v, str) else f"{v.get('approver')} ({v.get('time')})" for v in value
            )
        )
    return _breakable(str(value))


def records_html(
    title: str, columns: tuple[str, ...], records: Sequence[Mapping[str, Any]], intro: str = ""
) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in records
    )
    return _page(
        title,
        f"<p>{e(intro)}</p><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f"<p>{len(records)} row(s).</p>",
    )


def plans_html(title: str, plans: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for p in plans:
        changes = "".join(
            f"<li>#{c['seq']} <code>{e(c['action'])}</code> <code>{e(c['address'])}</code></li>"
            for c in p["changes"]
        )
        parts.append(
            f"<h2>Plan <code>{e(p['plan_digest'])}</code></h2><p>Applied {e(p['applied_at'])} by "
            f"{e(p['operator'])}, verified {e(verified(p))}; approved by "
            f"{_cell(p['approved_by'])}; reason(s): "
            f"{e('; '.join(p['reasons']) or NONE)}</p><ul>{changes}</ul>"
        )
    return _page(title, "".join(parts) or "<p>No plan was applied in this period.</p>")


def index_html(title: str, facts: list[tuple[str, str]], files: list[tuple[str, str]]) -> str:
    listed = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    links = "".join(
        f'<li><a href="{e(name)}">{e(name)}</a>: {e(what)}</li>' for name, what in files
    )
    return _page(
        title,
        f"<table>{listed}</table><h2>Files</h2><ul>{links}</ul><p>Check every file against "
        "<code>SHA256SUMS</code>: <code>sha256sum -c SHA256SUMS</code>.</p>",
    )


# The schema (in schemas/) of every JSON file of the evidence pack: the command's own where the
# file is that command's output, else one of the pack's.
PACK_SCHEMAS: Final = {
    "audit-log.json": "evidence-audit-log.schema.json",
    "plans.json": "evidence-plans.schema.json",
    "attestations.json": "audit-log.schema.json",
    "policy-results.json": "evidence-policy-results.schema.json",
    "hygiene.json": "hygiene.schema.json",
    "review.json": "review.schema.json",
}
# Files of a pack made with a signing key, besides those above (and SHA256SUMS.sig).
SIGNED_PACK_SCHEMAS: Final = {"checkpoints.json": "evidence-checkpoints.schema.json"}


def _period(window: Mapping[str, Any]) -> str:
    return f"{window['since']} to {window['until']} (exclusive)"


def evidence_files(evidence: Mapping[str, Any]) -> dict[str, str]:
    """The evidence pack (`apply.reviews.read_evidence`'s data) as file name -> text, SHA256SUMS
    aside. Every file opens without userctl: JSON, CSV and HTML."""

    def dump(data: Any) -> str:
        return json_text(data, sort_keys=True)

    v, window, title, report = (
        evidence["verification"],
        evidence["period"],
        evidence["title"],
        evidence["review"],
    )
    events, plans, jml, attested = (
        list(evidence[k]) for k in ("events", "plans", "joiners_movers_leavers", "attestations")
    )
    violations = report["summary"]["policy_violations"]
    checked = evidence["generated_at"]
    files = {
        "audit-log.json": dump(
            {
                "organization": evidence["organization"],
                "period": window,
                "verification": {k: v[k] for k in v if k != "hmac_key"},
                "events": events,
            }
        ),
        "audit-log.csv": records_csv(AUDIT_COLUMNS, events),
        "plans.json": dump(plans),
        "plans.html": plans_html(f"Plans applied, {title}", plans),
        "joiners-movers-leavers.csv": records_csv(JML_COLUMNS, jml),
        "joiners-movers-leavers.html": records_html(
            f"Joiners, movers and leavers, {title}",
            JML_COLUMNS,
            jml,
            _period(window),
        ),
        "attestations.json": dump(attested),
        "policy-results.json": dump({"checked_at": checked, "violations": violations}),
        "hygiene.json": dump(
            {
                "organization": evidence["organization"],
                "checked_at": checked,
                "settings": report["settings"],
                "findings": report["findings"],
            }
        ),
        "review.json": dump(report),
        "review.html": render_html(report),
    }
    chain = (f"intact: {v['events']} events" if v["ok"] else f"BROKEN: {v['problem']}") + (
        "" if v["hmac_checked"] else f" (HMACs not checked: {v['hmac_key']} was not set)"
    )
    counts = " / ".join(
        str(sum(r["kind"] == k for r in jml)) for k in ("joiner", "mover", "leaver")
    )
    facts = [
        ("organization", title),
        ("period", _period(window)),
        ("generated", checked),
        ("audit chain", chain),
        ("chain head", v["chain_head"]),
        ("events in the period", str(len(events))),
        ("plans applied", str(len(plans))),
        ("joiners / movers / leavers", counts),
        ("review attestations in the period", str(len(attested))),
        ("policy violations now", str(len(violations))),
        ("hygiene findings now", str(len(report["findings"]))),
    ]
    described = [
        (
            "audit-log.json",
            "the audit events of the period, with the whole chain's verification and head",
        ),
        ("audit-log.csv", "the same events for a spreadsheet"),
        (
            "plans.html",
            "every plan applied in the period: operator, verification, approvals, reasons, changes",
        ),
        ("plans.json", "the same as data"),
        (
            "joiners-movers-leavers.html",
            "creations, role changes, deactivations and deletions, with operator, approval, reason",
        ),
        ("joiners-movers-leavers.csv", "the same for a spreadsheet (sampling)"),
        ("attestations.json", "access reviews attested in the period"),
        ("review.html", "the access review as of now"),
        ("review.json", "the same, with its digest"),
        ("policy-results.json", "the policies checked against the live state now"),
        ("hygiene.json", "dormant users, expired invitations, privileged users without 2FA, now"),
        ("SHA256SUMS", "the SHA-256 of every file of this pack"),
    ]
    sealed = evidence.get("checkpoints")
    if sealed is not None:
        files["checkpoints.json"] = dump({"organization": evidence["organization"], **sealed})
        signed = v.get("signed")
        facts += [
            ("signing key", sealed["key_id"]),
            (
                "signed checkpoints",
                "not checked: the chain is broken"
                if signed is None
                else f"{signed['checkpoints']} verified, events up to "
                f"#{signed['signed_through_seq']} signed, {signed['not_yet_signed']} not yet",
            ),
        ]
        described += [
            ("checkpoints.json", "the signed checkpoints of the period and the key's fingerprint"),
            (
                "SHA256SUMS.sig",
                "the signing key's SSH signature over SHA256SUMS: "
                "ssh-keygen -Y verify -n userctl-evidence",
            ),
        ]
    files["index.html"] = index_html(f"Audit evidence: {title}", facts, described)
    return files
