"""The access review's HTML page in a real headless browser (the system's Chromium, driven by
playwright; no browser is ever downloaded): every user has a row, nothing is logged to the
console, nothing is requested from anywhere but the page itself, the summary comes first, and in
print media the table's header repeats on every page with no row split across two."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import build_org
from tests.conftest import Factory, Runner, in_ci
from userctl.clock import utcnow
from userctl.db import tables

CHROMIUM = "/usr/bin/chromium"


def _browser_or_skip() -> None:
    """The test needs `pip install playwright` (the [test] extra) and Debian's chromium
    (`apt-get install -y chromium`). Missing under CI fails the run; elsewhere it
    skips, saying why."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"a Chromium at {CHROMIUM} (apt-get install -y chromium)")
    if missing:
        message = "the review page's browser test needs " + " and ".join(missing)
        if in_ci():
            pytest.fail(message + " (CI is set: it must not be skipped)", pytrace=False)
        pytest.skip(message)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_review_page_in_a_real_browser(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    org = build_org(factory, extra_users=40)  # enough rows for several printed pages
    u = tables.users.c
    with engine.begin() as conn:
        conn.execute(
            sa.update(tables.users)
            .where(u.email == "calm@acme.co")
            .values(last_login_at=utcnow().replace(microsecond=0) - dt.timedelta(days=200))
        )
    result = runner("review", "--format", "html")
    assert result.exit_code == 0, result.output
    page_file = tmp_path / "review.html"
    page_file.write_text(result.stdout, encoding="utf-8")
    with engine.connect() as conn:
        emails = sorted(
            conn.execute(sa.select(u.email).where(u.organization_id == org.id)).scalars()
        )

    url = page_file.as_uri()
    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on(
                "console",
                lambda m: (
                    problems.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.goto(url, wait_until="load")

            rows = page.locator("#users tbody tr")
            assert rows.count() == len(emails)
            assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.email)")) == emails
            assert (
                page.locator('#users tbody tr[data-email="calm@acme.co"]')
                .inner_text()
                .count("(dormant)")
                == 1
            )
            summary = page.locator("table.summary").bounding_box()
            table = page.locator("#users").bounding_box()
            assert summary is not None and table is not None and summary["y"] < table["y"]

            page.emulate_media(media="print")
            styles: dict[str, Any] = page.evaluate("""() => ({
                thead: getComputedStyle(document.querySelector('#users thead')).display,
                row: getComputedStyle(document.querySelector('#users tbody tr')).breakInside,
            })""")
            assert styles == {"thead": "table-header-group", "row": "avoid"}
            pdf = page.pdf(format="A4")
        finally:
            browser.close()
    assert problems == []
    assert set(requests) == {url}  # no stylesheet, font, image or script from anywhere
    # The printout spans several pages, which is what the repeated header is for.
    assert len(re.findall(rb"/Type\s*/Page(?![a-z])", pdf)) >= 2
