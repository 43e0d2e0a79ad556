"""Time the auditor's page (`plan --format html`) for a 2,000-change plan: rendering it, and loading
it in headless Chromium (issue 11: under two seconds). Tests check that such a page has every row;
the time is measured here, never asserted in a test.

The plan is planned by the real planner from an organization built in memory: 800 creates, 800
renames, 200 deletions with their unassignments, a role losing a permission, assignments. Each run
opens a fresh tab, serves the page from memory (no disk, no network) and waits for the load event
and one frame after it (the page laid out and painted). Best of BENCH_RUNS (default 5), because
the 2-core machine is shared.

    python bench/bench_html.py  # needs Debian's chromium and playwright (pip install -e ".[test]")
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from typing import Any

from userctl.planner import PlanOptions, diff
from userctl.render import render
from userctl.state import BankAccount, DesiredState, LiveState, Organization, Role, User

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
URL = "http://userctl.bench/plan.html"
ROLES = {
    "Admin": Role(
        "Admin",
        "Full access",
        frozenset({"users.view", "users.add", "users.manage", "roles.manage"}),
    ),
    "Ops": Role("Ops", "Payouts", frozenset({"payouts.view", "payouts.create"})),
    "Support": Role("Support", "Helps customers", frozenset({"customers.view", "users.view"})),
}
ACCOUNTS = {
    f"acct-{i:02d}": BankAccount(f"acct-{i:02d}", "Bench Bank", "savings", f"****{i:04d}", "COP")
    for i in range(20)
}


def person(i: int, role: str = "Support", **kw: Any) -> User:
    values: dict[str, Any] = dict(
        email=f"user{i:05d}@acme.co",
        first_name="Person",
        last_name=f"Number {i}",
        id_type="CC",
        id_number=f"{1000000 + i}",
        phone=f"+5730{i:08d}",
        role=role,
    )
    return User(**{**values, **kw})


def two_thousand_changes() -> tuple[str, int]:
    """The page of a plan of exactly 2,000 changes: 200 users deleted (each unassigned first),
    760 renamed (40 of them also given a bank account), 799 created, Ops losing a permission."""
    admin = person(0, "Admin", totp_enrolled=True)
    leaving = range(801, 1001)
    live_users = [admin] + [
        person(
            i,
            "Ops" if i % 4 == 0 else "Support",
            bank_accounts=frozenset({"acct-01"}) if i in leaving else frozenset(),
        )
        for i in range(1, 1001)
    ]
    live = LiveState(
        Organization("acme", "Acme"), ROLES, {u.email: u for u in live_users}, ACCOUNTS
    )
    wanted = [replace(admin, totp_enrolled=False)]
    for i in range(1, 801):
        u = live_users[i]
        if i <= 760:
            u = replace(
                u,
                first_name="Renamed",
                bank_accounts=frozenset({"acct-02"}) if i <= 40 else u.bank_accounts,
            )
        wanted.append(u)
    wanted += [person(i) for i in range(2000, 2799)]
    roles = {**ROLES, "Ops": Role("Ops", "Payouts", frozenset({"payouts.view"}))}
    plan = diff(
        DesiredState("acme", roles, {u.email: u for u in wanted}),
        live,
        PlanOptions(allow_mass_removal=True),
    )
    data = plan.to_data()
    started = time.perf_counter()
    html = render(data, "html")
    print(
        f"rendered {len(plan.changes)} changes in {time.perf_counter() - started:.2f} s (the "
        "template; a first render also loads Jinja2)"
    )
    return html, len(plan.changes)


def main() -> None:
    from playwright.sync_api import sync_playwright

    chromium = (
        os.environ.get("USERCTL_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    )
    html, changes = two_thousand_changes()
    loads = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        for _ in range(RUNS):
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.route(
                "**/*",
                lambda route: (
                    route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
                    if route.request.url == URL
                    else route.abort()
                ),
            )
            t0 = time.perf_counter()
            page.goto(URL, wait_until="load")
            page.evaluate("() => new Promise(done => requestAnimationFrame(() => done()))")
            loads.append(time.perf_counter() - t0)
            rows = page.evaluate("() => document.querySelectorAll('tr[id]').length")
            assert rows == changes, (rows, changes)
            page.close()
        version = browser.version
        browser.close()
    print(
        f"{changes} changes, {len(html) / 1e6:.1f} MB of HTML: loaded in Chromium {version} in "
        f"{min(loads):.2f} s (best of {RUNS}; worst {max(loads):.2f} s)"
    )


if __name__ == "__main__":
    main()
