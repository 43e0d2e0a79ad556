"""The pages an auditor reads and prints, held to the tools they are read with: axe-core
(injected through playwright into Debian's Chromium) finds no serious or critical accessibility
violation on the plan, review and evidence pages; Chromium's print to PDF, read back by
pdftotext, keeps every column of the evidence tables, whole digests and `seq` included; long
emails and digests wrap inside their cells instead of running off the page."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, exported, live_state
from tests.cli import test_html_page, test_review
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Operator, Runner
from tests.real_tools import node_package, program

PAGE_URL = test_html_page.PAGE_URL
# The fixtures these tests share with the plan page's and the review's: the machine's Chromium,
# and an organization with a plan approved and applied.
browser = test_html_page.browser
applied = test_review.applied
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


LONG_EMAIL = "maria.fernanda.rodriguez-villalobos@payments-operations.subsidiary.acme.co"


@pytest.fixture
def evidence_dir(tmp_path: Path) -> Path:
    return tmp_path / "evidence"


@pytest.fixture
def pages(
    runner: Runner,
    engine: Engine,
    factory: Factory,
    applied: tuple[Org, Operator, dict[str, Any]],
    evidence_dir: Path,
    tmp_path: Path,
) -> dict[str, str]:
    """Every HTML page userctl writes, on an organization with an applied, approved plan: the
    plan page of a further plan (a delete, a deactivation, a grant), the review page, and each
    page of the evidence pack."""
    from userctl.clock import utcnow

    org = applied[0]
    factory.user(org.id, LONG_EMAIL, org.roles["Admin"], last_name="Rodríguez Villalobos")
    desired = exported(live_state(engine))
    users = dict(desired.users)
    gone = next(e for e in users if e not in ("root@acme.co", "approver@acme.co", "mover@acme.co"))
    del users[gone]
    path = write_desired(tmp_path / "next.yaml", replace(desired, users=users))
    plan = runner("plan", "-f", str(path), "--format", "html", "--allow-mass-removal")
    assert plan.exit_code == 0, plan.output
    review = runner("review", "--format", "html")
    assert review.exit_code == 0, review.output
    today = utcnow().date()
    out = evidence_dir
    pack = runner(
        "evidence",
        "--since",
        (today - dt.timedelta(days=30)).isoformat(),
        "--until",
        (today + dt.timedelta(days=1)).isoformat(),
        "-o",
        str(out),
    )
    assert pack.exit_code == 0, pack.output
    found = {"plan": plan.stdout, "review": review.stdout}
    for page in sorted(out.glob("*.html")):
        found[f"evidence/{page.name}"] = page.read_text(encoding="utf-8")
    assert len(found) >= 4, sorted(found)
    return found


@contextmanager
def opened(browser: Any, html: str, width: int = 1280) -> Iterator[Any]:
    """`html` served alone at PAGE_URL. The page's own policy forbids every script: the browser
    is told to bypass it so that axe can be injected, as an auditor's extension would be."""
    context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": 800})
    page = context.new_page()

    def serve(route: Any) -> None:
        if route.request.url == PAGE_URL:
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
        else:
            route.abort()

    page.route("**/*", serve)
    page.goto(PAGE_URL, wait_until="load")
    try:
        yield page
    finally:
        context.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    script = node_package("axe-core/axe.min.js").read_text(encoding="utf-8")
    page.add_script_tag(content=script)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
    }""")
    return list(result)


@sqlite_only
def test_axe_finds_no_serious_or_critical_violation(browser: Any, pages: dict[str, str]) -> None:
    found = {}
    for name, html in pages.items():
        with opened(browser, html) as page:
            bad = [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]
            # One main landmark: a screen reader's "skip to content" lands on the report.
            if page.evaluate("() => document.querySelectorAll('main').length") != 1:
                bad.append({"id": "one <main>", "impact": "serious"})
            if bad:
                found[name] = bad
    assert found == {}, json.dumps(found, indent=1)[:6000]


def pdf_text(page: Any, tmp_path: Path) -> str:
    """The page printed as Chromium prints it (its own @page size), read back by pdftotext."""
    pdftotext = program("pdftotext", "apt-get install poppler-utils")
    pdf = tmp_path / "page.pdf"
    pdf.write_bytes(page.pdf(prefer_css_page_size=True, print_background=True))
    done = subprocess.run(
        [pdftotext, "-raw", "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@sqlite_only
def test_printed_tables_keep_every_column(
    browser: Any, pages: dict[str, str], evidence_dir: Path, tmp_path: Path
) -> None:
    """The joiners/movers/leavers table printed: each row's whole plan digest, then its seq (the
    last column), are on the paper. Wrapped cells are read back with their line breaks removed."""
    import csv
    import io

    rows = list(
        csv.DictReader(
            io.StringIO((evidence_dir / "joiners-movers-leavers.csv").read_text(encoding="utf-8"))
        )
    )
    assert rows and all(r["plan_digest"] and r["seq"] for r in rows)
    with opened(browser, pages["evidence/joiners-movers-leavers.html"]) as page:
        text = re.sub(r"\s+", "", pdf_text(page, tmp_path))
    header = "".join(
        (
            "time kind action user role_before role_after operator verified_by approved_by "
            "reason plan_digest seq"
        ).split()
    )
    assert header in text
    for r in rows:
        assert f"{r['plan_digest']}{r['seq']}" in text, (r["plan_digest"], r["seq"])


@sqlite_only
def test_long_emails_wrap_after_their_at_and_dots(browser: Any, pages: dict[str, str]) -> None:
    """At a narrow width the review table's long email breaks only after `@`, `.` or `-`, and
    nothing runs off the side of the page."""
    with opened(browser, pages["review"], width=900) as page:
        breaks = page.evaluate(
            """(email) => {
            const row = document.querySelector(`tr[data-email="${email}"] code`);
            const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
            const chars = [];
            for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                for (let i = 0; i < n.length; i++) {
                    const r = document.createRange();
                    r.setStart(n, i); r.setEnd(n, i + 1);
                    chars.push([n.data[i], Math.round(r.getBoundingClientRect().top)]);
                }
            }
            const before = [];
            for (let i = 1; i < chars.length; i++) {
                if (chars[i][1] > chars[i - 1][1]) before.push(chars[i - 1][0]);
            }
            return {text: chars.map(c => c[0]).join(''), before: before,
                    overflow: document.documentElement.scrollWidth - window.innerWidth};
        }""",
            LONG_EMAIL,
        )
    assert breaks["text"] == LONG_EMAIL
    assert breaks["before"], "the email fits on one line: the test shows nothing at this width"
    assert set(breaks["before"]) <= {"@", ".", "-"}, breaks
    assert breaks["overflow"] <= 0, breaks
