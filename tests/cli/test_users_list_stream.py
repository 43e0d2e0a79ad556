"""`users list` on the driver's tuples, JSON and CSV written a batch at a time
(db/listings.users_listing_batches, render/tables.render_batches), against the path it replaced:
SQLAlchemy rows (`users_listing`), one `render` of the whole list. Awkward values on all three
backends, several batches, every filter and format: the same bytes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userctl.db import listings
from userctl.db.engine import begin_read
from userctl.db.snapshot import read_organization
from userctl.db.tables import users
from userctl.render.tables import (
    USER_COLUMNS,
    USER_TABLE_COLUMNS,
    matches_search,
    render,
    user_row,
)

# Names with what printable escapes (ESC, the bidi override, CR LF, NEXT LINE, a blank letter),
# what a spreadsheet takes for a formula, quotes and commas, non-ASCII and astral characters.
NAMES = [
    "Ana",
    "Zoë ñandú",
    "esc\x1b[2J",
    "bidi\u202eevil",
    "cr\r\nlf\x85",
    "\u3164",
    '=HYPERLINK("x"),',
    "-1+2",
    "😀 𝔘",
    'quo"te',
    " lead  two\tspaces ",
    "",
]


def _seed(engine: Engine, factory) -> int:  # type: ignore[no-untyped-def]
    org = factory.org("acme-payments")
    admin = factory.role(org, "Admin")
    viewer = factory.role(org, "Viewer ✓")
    for i in range(23):
        factory.user(
            org,
            f"u{i}.{NAMES[i % len(NAMES)][:3].encode('ascii', 'ignore').decode() or 'x'}@acme.co",
            admin if i % 3 else viewer,
            first_name=NAMES[i % len(NAMES)],
            last_name=NAMES[(i + 3) % len(NAMES)] + f"{i}",
            phone=f"+57300{i:07d}",
            status=("active", "invited", "suspended")[i % 3],
            two_factor=("optional", "required")[i % 2],
            totp_enrolled=i % 4 == 0,
            expires=None if i % 5 else "2027-01-0" + str(1 + i % 9),
        )
    with engine.begin() as conn:
        for i, (user_id,) in enumerate(conn.execute(sa.select(users.c.id).order_by(users.c.id))):
            # Never, whole seconds, microseconds; an instant many users share.
            login = (
                None,
                dt.datetime(2026, 2, 3, 4, 5, 6),
                dt.datetime(2026, 2, 3, 4, 5, 6, 987654),
            )[i % 3]
            conn.execute(sa.update(users).where(users.c.id == user_id).values(last_login_at=login))
    return org


def _old(engine: Engine, fmt: str, status: Any, role: Any, search: Any) -> str:
    with begin_read(engine) as conn:
        org_id, org = read_organization(conn, "acme-payments")
        listed = listings.users_listing(conn, org_id, org, status=status, role=role)
    rows = [
        user_row(item.user, item.last_login_at)
        for item in listed.rows
        if search is None or matches_search(item.user, search)
    ]
    return render(
        USER_COLUMNS, rows, fmt, empty="No users match.", table_columns=USER_TABLE_COLUMNS
    )


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_users_list_writes_the_old_paths_bytes(
    engine: Engine, factory, runner, monkeypatch, fmt
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(listings, "USERS_BATCH", 4)
    _seed(engine, factory)
    cases: list[tuple[tuple[str, ...], Any, Any, Any]] = [
        ((), None, None, None),
        (("--status", "invited"), "invited", None, None),
        (("--role", "Viewer ✓"), None, "Viewer ✓", None),
        (("--search", "ZOË"), None, None, "ZOË"),
        (("--search", "nobody"), None, None, "nobody"),
        (("--status", "active", "--role", "Admin"), "active", "Admin", None),
    ]
    for options, status, role, search in cases:
        want = _old(engine, fmt, status, role, search)
        if not options:
            assert len(want.splitlines()) > 20
            if fmt != "table":
                assert "\\u202e" in want and "2026-02-03T04:05:06Z" in want
        got = runner("--organization", "acme-payments", "users", "list", "--format", fmt, *options)
        assert got.exit_code == 0, got.output
        # The bytes: click's `stdout` would read a "\r\n" as "\n".
        assert got.stdout_bytes == want.encode(), options
    unknown = runner("users", "list", "--role", "Nobody", "--format", fmt)
    assert unknown.exit_code != 0 and "has no role 'Nobody'" in unknown.stderr
    assert unknown.stdout == ""
