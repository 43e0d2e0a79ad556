"""One self-contained HTML page for auditors: inline CSS, no scripts, no external assets.

Every string from the plan goes through `e`: control and format characters escaped (a bidi
override would make an address read as another), then HTML-escaped, quotes included, so it is
safe in text and in attributes alike."""

from __future__ import annotations

from html import escape
from typing import Any, Mapping

from userctl.printable import printable
from userctl.render.common import action_label, detail_lines, flags, is_blocked, reason_line, summary_line, symbol, two_factor_line

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1b1f24}
h1{font-size:1.4em}table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{border:1px solid #d0d7de;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}code,pre{font-family:ui-monospace,monospace;font-size:.92em}
pre{margin:0;white-space:pre-wrap}.destructive{background:#fff1f0}.privilege{background:#fff8e1}.deferred{color:#6e7781}
.blocking{color:#b42318;font-weight:bold}.flag{display:inline-block;border-radius:3px;padding:0 .35em;margin-right:.2em;background:#eaeef2}
"""


def e(text: str) -> str:
    """`text` safe anywhere in the page, attribute values included."""
    return escape(printable(text))


def render(data: Mapping[str, Any]) -> str:
    s = data["summary"]
    rows = []
    for i, c in enumerate(data["changes"], 1):
        cls = ("deferred" if c["deferred"] else "destructive" if c["destructive"]
               else "privilege" if c["grants_privilege"] else "")
        # Escaped line by line: the newlines between lines are the page's own.
        details = "\n".join(e(line) for line in detail_lines(c) + ([f"({c['note']})"] if c["note"] else []))
        rows.append(
            f'<tr class="{cls}"><td>{i}</td><td><code>{e(symbol(c))}</code></td><td><code>{e(c["address"])}</code></td>'
            f"<td>{e(action_label(c))}</td><td>{''.join(f'<span class=flag>{e(f)}</span>' for f in flags(c))}</td>"
            f"<td><pre>{details}</pre></td></tr>"
        )
    findings = "".join(
        f'<li class="{"blocking" if f["blocking"] else ""}">{e("blocking" if f["blocking"] else "note")} '
        f"<code>{e(f['code'])}</code>: {e(f['message'])}</li>"
        for f in data["findings"]
    )
    counts = "".join(
        f"<td>{e(str(s[k]))}</td>"
        for k in ("create", "update", "replace", "delete", "deferred", "destructive", "grants_privilege", "requires_2fa")
    )
    # What the digest covers besides the changes, so an auditor can see how the plan was made
    # and what it expected to find.
    o = data["options"]
    options = (
        f"<li>prune absent users and roles: <b>{'yes' if o['prune'] else 'no (--no-prune)'}</b></li>"
        f"<li>--replace: {e(', '.join(o['replace'])) if o['replace'] else 'none'}</li>"
        f"<li>--allow-mass-removal: {'given' if o['allow_mass_removal'] else 'not given'}</li>"
        f"<li>--operator: {e(o['operator']) if o['operator'] else 'not given'}</li>"
        f"<li>--reason: {e(o['reason']) if o.get('reason') else 'not given'}</li>"
    )
    expected = "".join(
        f"<tr><td><code>{e(address)}</code></td><td><code>{e(value)}</code></td></tr>"
        for address, value in data["preconditions"].items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>userctl plan: {e(data['organization'])}</title>
<style>{STYLE}</style></head>
<body>
<h1>userctl plan: <code>{e(data['organization'])}</code></h1>
<p>2FA policy: <b>{e(data['two_factor_policy'])}</b> &middot; digest <code>{e(data['digest'])}</code></p>
<table><tr><th>create</th><th>update</th><th>replace</th><th>delete</th><th>deferred</th><th>destructive</th><th>grant privilege</th><th>need 2FA</th></tr>
<tr>{counts}</tr></table>
<p><b>{e(summary_line(s))}</b></p>
{f'<p>{e(reason)}</p>' if (reason := reason_line(data)) else ''}
<p>{e(two_factor_line(data))}</p>
{'<p class="blocking">This plan cannot be applied.</p>' if is_blocked(data) else ''}
{f'<h2>Findings</h2><ul>{findings}</ul>' if findings else ''}
<h2>Changes, in apply order</h2>
<table><tr><th>#</th><th></th><th>address</th><th>action</th><th>flags</th><th>details</th></tr>
{''.join(rows)}
</table>
<h2>Planning options</h2>
<ul>{options}</ul>
<h2>Preconditions</h2>
<p>Apply refuses the whole plan as stale if any of these rows no longer has this hash (or is no longer absent).</p>
<table><tr><th>row</th><th>expected</th></tr>
{expected}
</table>
</body></html>
"""
