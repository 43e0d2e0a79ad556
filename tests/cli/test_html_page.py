"""The auditor's page (`plan --format html`) in a real headless Chromium: a real organization in
SQLite, a real plan through the CLI, and the page checked as a browser lays it out, on screen and
in print. Without a browser (Debian's `chromium`, driven by playwright) these tests fail under CI
and skip elsewhere, saying why. No timing is asserted here: bench/bench_html.py measures the load.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, build_org, exported, live_state, new_user
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner, in_ci
from userctl.state import DesiredState, Role

PAGE_URL = "http://userctl.test/plan.html"
EVIL_FIRST = "Eve\u202eevil"  # a bidi override: must show as the escape \u202e
EVIL_FIRST_SHOWN = "Eve\\u202eevil"
EVIL_LAST = "<img src=x onerror=alert(1)>"
EVIL_ROLE = 'R&D </td><script>alert("x")</script>'
LONG_WORD = "W" * 100  # a name with nowhere to break: must wrap, not overflow


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the browser tests must not be skipped)", pytrace=False)
    pytest.skip(reason)


def _chromium() -> str | None:
    """Debian's chromium (what .ci/run installs), or USERCTL_TEST_CHROMIUM."""
    for candidate in (
        os.environ.get("USERCTL_TEST_CHROMIUM"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    path = _chromium()
    if path is None:
        _unavailable(
            "no Chromium found: apt-get install chromium (or set "
            "USERCTL_TEST_CHROMIUM to a Chromium binary)"
        )
    with sync_playwright() as p:
        try:
            # Never a browser playwright downloads: the machine's own Chromium.
            launched = p.chromium.launch(executable_path=path)
        except Error as exc:
            _unavailable(f"Chromium at {path} does not start: {exc.message.splitlines()[0]}")
        yield launched
        launched.close()


class Visit:
    """One page served at PAGE_URL and opened; every request, console message and
    page error is kept."""

    def __init__(self, browser: Any, html: str, width: int = 1280, height: int = 800) -> None:
        self.requests: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def serve(route: Any) -> None:
            if route.request.url == PAGE_URL:
                route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
            else:
                route.abort()

        self.page.route("**/*", serve)
        self.page.goto(PAGE_URL, wait_until="load")

    def __enter__(self) -> "Visit":
        return self

    def __exit__(self, *exc: object) -> None:
        self.page.close()

    def js(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)


def audit_state(engine: Engine, factory: Factory, org: Org) -> DesiredState:
    """build_org's organization, changed in every way an auditor must see: two users deleted (one
    with a hostile, bidi-overridden name), one deactivated, Ops losing payouts.create (holders to
    list), privilege granted three ways, a hostile role and an unbreakable name created, and
    plenty of plain changes (30 renames, 25 creates)."""
    eve = factory.user(
        org.id, "eve@acme.co", org.roles["Ops"], first_name=EVIL_FIRST, last_name=EVIL_LAST
    )
    factory.assign(eve, org.accounts["payroll"])
    live = live_state(engine)
    want = exported(live)
    users = dict(want.users)
    del users["gone@acme.co"], users["eve@acme.co"]
    users["leaver@acme.co"] = replace(users["leaver@acme.co"], status="inactive")
    users["acct@acme.co"] = replace(
        users["acct@acme.co"], bank_accounts=frozenset({"ops-main", "payroll"})
    )
    users["boss@acme.co"] = new_user("boss@acme.co", 1, role="Admin")
    users["long@acme.co"] = new_user("long@acme.co", 2, last_name=LONG_WORD)
    users["rnd@acme.co"] = new_user("rnd@acme.co", 3, role=EVIL_ROLE)
    for i in range(30):
        email = f"extra{i}@acme.co"
        users[email] = replace(users[email], first_name=f"Renamed{i}")
    for i in range(25):
        users[f"plain{i:02d}@acme.co"] = new_user(f"plain{i:02d}@acme.co", 10 + i)
    roles = dict(want.roles)
    roles["Ops"] = replace(roles["Ops"], permissions=roles["Ops"].permissions - {"payouts.create"})
    roles["Legacy"] = replace(
        roles["Legacy"], permissions=roles["Legacy"].permissions | {"payouts.approve"}
    )
    roles[EVIL_ROLE] = Role(EVIL_ROLE, "Research " + LONG_WORD, frozenset({"users.view"}))
    return replace(want, roles=roles, users=users)


def plan_page(runner: Runner, desired: DesiredState, tmp_path: Path) -> str:
    path = write_desired(tmp_path / "users.yaml", desired)
    result = runner("plan", "-f", str(path), "--format", "html", "--allow-mass-removal")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def page_html(engine: Engine, factory: Factory, runner: Runner, tmp_path: Path) -> str:
    org = build_org(factory, extra_users=30)
    return plan_page(runner, audit_state(engine, factory, org), tmp_path)


sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@sqlite_only
def test_the_page_loads_alone_with_the_risky_steps_above_the_fold(
    browser: Any, page_html: str
) -> None:
    with Visit(browser, page_html) as visit:
        # Nothing but the page itself is requested, and the browser has nothing to complain of.
        assert visit.requests == [PAGE_URL]
        assert visit.console == [] and visit.errors == []

        attention = visit.js("""() => [...document.querySelectorAll('#attention tbody tr')].map(tr => {
            const box = tr.getBoundingClientRect();
            return {step: tr.cells[1].innerText, text: tr.innerText, top: box.top, bottom: box.bottom};
        })""")  # noqa: E501 - a script, run as written
        steps = [row["step"].replace("\xa0", " ") for row in attention]
        assert len(attention) == 9, steps
        for expected in (
            '- user["gone@acme.co"] delete',
            '- user["eve@acme.co"] delete',
            '~ user["leaver@acme.co"] deactivate',
            '~ role["Ops"] update',
            '~ role["Legacy"] update',
            '+ user["boss@acme.co"] create',
            '+ assignment["acct@acme.co" -> "payroll"]',
        ):
            assert any(s.startswith(expected) for s in steps), (expected, steps)
        # Every one of them is on the first screen, at 1280x800, before any scrolling.
        assert all(0 < row["top"] and row["bottom"] <= 800 for row in attention), attention

        # The before-state and the holders who lose a permission are on the first screen too.
        first_screen = "\n".join(row["text"] for row in attention)
        assert (
            f"was: {EVIL_FIRST_SHOWN} {EVIL_LAST}, role Ops, active, bank accounts: payroll"
            in first_screen
        )
        assert re.search(
            r"^was: \S+ \S+, role Ops, active, bank accounts: ops-main$", first_screen, re.M
        )
        assert (
            "users who lose payouts.create: acct@acme.co, back@acme.co," in first_screen
            and " more" in first_screen
        )


@sqlite_only
def test_the_table_of_contents_leads_to_every_group(browser: Any, page_html: str) -> None:
    with Visit(browser, page_html) as visit:
        links = visit.js("""() => [...document.querySelectorAll('a[href^="#"]')].map(a => ({
            href: a.getAttribute('href'), text: a.innerText, found: !!document.getElementById(a.getAttribute('href').slice(1))}))""")  # noqa: E501 - a script, run as written
        contents = [link["text"] for link in links[:7]]
        # The organization's hygiene notes (privileged users without an authenticator) have a
        # section of their own, after the risky steps; with no policy change there is no
        # Policies group.
        assert contents == [
            "Needs attention (9)",
            "Notes (11)",
            "Roles (3)",
            "Users (61)",
            "Bank-account assignments (3)",
            "Planning options",
            "Preconditions (69)",
        ], contents
        # Every link on the page (the contents, and each risky step's number) leads somewhere.
        assert len(links) == 16 and all(link["found"] for link in links), [
            link for link in links if not link["found"]
        ]
        # A page this small is an ordinary page: everything laid out at once (a full-page
        # screenshot or a reader's quick scroll never meets an empty placeholder).
        assert (
            visit.js(
                "() => [...document.querySelectorAll('section')].map(s => "
                "getComputedStyle(s).contentVisibility)"
            )
            == ["visible"] * 8
        )
        visit.page.click('nav a[href="#users"]')
        assert visit.page.url.endswith("#users")
        assert (
            abs(visit.js("() => document.getElementById('users').getBoundingClientRect().top")) < 2
        )
        assert (
            visit.js("() => document.querySelector('#users h2').innerText")
            == "Users (61: 28 create, 31 update, 2 delete)"
        )


@sqlite_only
def test_hostile_names_render_as_text(browser: Any, page_html: str) -> None:
    with Visit(browser, page_html) as visit:
        # No element from the data: the only elements are the page's own.
        assert (
            visit.js(
                "() => document.querySelectorAll('script, img, iframe, object, embed, form').length"
            )
            == 0
        )
        body = visit.js("() => document.body.innerText")
        assert f'role["{EVIL_ROLE.replace(chr(34), chr(92) + chr(34))}"] create' in body
        assert 'role = "R&D </td><script>alert(\\"x\\")</script>"' in body
        # The bidi override is shown as its escape, never applied.
        assert "\u202e" not in body and EVIL_FIRST_SHOWN in body


@sqlite_only
def test_the_page_prints_without_losing_anything(browser: Any, page_html: str) -> None:
    # An A4 page's printable width at 96 dpi (210 mm less 12 mm margins each side).
    with Visit(browser, page_html, width=703, height=1000) as visit:
        visit.page.emulate_media(media="print")
        printed = visit.js("""() => {
            const style = el => getComputedStyle(el);
            const width = document.documentElement.clientWidth;
            return {
                heads: [...document.querySelectorAll('thead')].map(h => style(h).display),
                tables: document.querySelectorAll('table').length,
                rows: [...document.querySelectorAll('tbody tr')].map(r => style(r).breakInside),
                overflowing: [...document.querySelectorAll('td, th')].filter(c => c.scrollWidth > c.clientWidth).map(c => c.innerText.slice(0, 60)),
                wide: [...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > width || t.scrollWidth > t.clientWidth).length,
                pageWidth: document.documentElement.scrollWidth - width,
            };
        }""")  # noqa: E501 - a script, run as written
    # Every table's header repeats on each printed page, no row is split across two.
    assert printed["heads"] == ["table-header-group"] * printed["tables"] and printed["tables"] == 6
    assert len(printed["rows"]) > 100 and set(printed["rows"]) == {"avoid"}
    # No column is clipped: the 100-letter name and the long description wrap inside their cells.
    assert printed["overflowing"] == [] and printed["wide"] == 0 and printed["pageWidth"] == 0


@sqlite_only
def test_a_2000_change_page_loads_every_row(
    browser: Any, engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    want = exported(live_state(engine))
    users = dict(want.users)
    for i in range(2000 - 1):
        users[f"bulk{i:04d}@acme.co"] = new_user(f"bulk{i:04d}@acme.co", 100 + i)
    users["boss@acme.co"] = new_user("boss@acme.co", 1, role="Admin")
    html = plan_page(runner, replace(want, users=users), tmp_path)
    with Visit(browser, html) as visit:
        assert visit.console == [] and visit.errors == []
        counted = visit.js("""() => ({
            rows: document.querySelectorAll('#users tbody tr[id]').length,
            attention: document.querySelectorAll('#attention tbody tr').length,
            last: document.getElementById('c2000').innerText.replaceAll('\u00a0', ' ')})""")
        # Such a page lays out its tables below the fold only when they are scrolled to, and all
        # of them when printed.
        lazy = (
            "() => [...document.querySelectorAll('.group, #preconditions')].map(s => "
            "getComputedStyle(s).contentVisibility)"
        )
        on_screen = visit.js(lazy)
        visit.page.emulate_media(media="print")
        printed = visit.js(lazy)
    assert counted["rows"] == 2000 and counted["attention"] == 1
    assert on_screen == ["auto"] * 4 and printed == ["visible"] * 4
    assert '+ user["bulk1998@acme.co"] create' in counted["last"]


def test_the_plan_says_which_database_without_its_credentials(
    engine: Engine, org: Org, runner: Runner, db_url: str, tmp_path: Path
) -> None:
    from sqlalchemy.engine import make_url

    path = write_desired(tmp_path / "users.yaml", exported(live_state(engine)))
    saved = tmp_path / "plan.json"
    assert runner("plan", "-f", str(path), "--out", str(saved)).exit_code == 0
    database = json.loads(saved.read_text())["provenance"]["database"]
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        assert database == f"sqlite: {Path(url.database or '').name}"
    else:
        # The test servers' URLs name a user (postgres, root): never shown.
        assert url.username and f"{url.username}@" not in database and "@" not in database
        assert database == f"{url.get_backend_name()}://{url.host}:{url.port}/{url.database}"
    # `show` has no database: the page's header comes from the saved plan.
    page = runner(
        "--database-url",
        f"sqlite:///{tmp_path / 'nowhere' / 'none.db'}",
        "show",
        str(saved),
        "--format",
        "html",
    )
    assert page.exit_code == 0 and f"<dt>Database</dt><dd>{database}</dd>" in page.stdout
