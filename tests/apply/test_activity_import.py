"""`userctl activity import FILE.csv`: records last logins, idempotent (a time never moves back),
any bad row (reported as FILE:LINE:COL) imports nothing; `users list/show` show the last login."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Runner
from userctl.apply.audit import list_events
from userctl.clock import utcnow
from userctl.db import tables
from userctl.db.engine import begin_read


def _logins(engine: Engine) -> dict[str, dt.datetime | None]:
    u = tables.users.c
    with begin_read(engine) as conn:
        rows = conn.execute(sa.select(u.email, u.last_login_at))
        return {e: at for e, at in rows if e not in ("ops@acme.co", "hr@acme.co")}


# The operators who may feed last logins (users.manage): see _org.
OPS = ("--operator", "ops@acme.co")


def _org(factory: Factory) -> int:
    org = factory.org("acme-payments")
    role = factory.role(org, "Support", ["users.view"])
    for email in ("ana@acme.co", "bo@acme.co", "cy@acme.co"):
        factory.user(org, email, role)
    admin = factory.role(org, "People admin", ["users.manage"])
    factory.operator(org, "ops@acme.co", admin)
    factory.operator(org, "hr@acme.co", admin)
    return org


def test_import_records_last_logins_then_is_idempotent(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    org = _org(factory)
    path = tmp_path / "logins.csv"
    path.write_text(
        "email,last_login_at\nAna@acme.co,2026-11-30T08:15:00Z\nbo@acme.co,2026-10-01 09:00:00\n",
        encoding="utf-8",
    )

    first = runner("activity", "import", str(path), "--operator", "ops@acme.co")
    assert first.exit_code == 0, first.output
    assert first.stdout == "acme-payments: last logins updated 2, unchanged 0\n"
    assert _logins(engine) == {
        "ana@acme.co": dt.datetime(2026, 11, 30, 8, 15),
        "bo@acme.co": dt.datetime(2026, 10, 1, 9),
        "cy@acme.co": None,
    }

    again = runner("activity", "import", str(path), *OPS)
    assert again.exit_code == 0, again.output
    assert again.stdout == "acme-payments: last logins updated 0, unchanged 2\n"

    # An older export never moves a last login back; a later one moves it forward.
    older = tmp_path / "older.csv"
    older.write_text(
        "last_login_at,email\n"
        "2026-01-01T00:00:00+05:00,ana@acme.co\n"
        "2026-11-01T10:00:00-05:00,bo@acme.co\n",
        encoding="utf-8",
    )
    third = runner("activity", "import", str(older), "--operator", "HR@acme.co")
    assert third.stdout == "acme-payments: last logins updated 1, unchanged 1\n", third.output
    assert _logins(engine)["ana@acme.co"] == dt.datetime(2026, 11, 30, 8, 15)
    assert _logins(engine)["bo@acme.co"] == dt.datetime(2026, 11, 1, 15)

    # Each import that changed something is one audit event naming the file's hash.
    with begin_read(engine) as conn:
        events = [e for e in list_events(conn, org) if e["action"] == "activity.import"]
    assert [(e["operator"], e["after"]["updated"]) for e in events] == [
        ("ops@acme.co", 2),
        ("hr@acme.co", 1),
    ]
    assert runner("audit", "verify").exit_code == 0

    # users list/show show it; "never" (null in JSON) when unknown.
    listed = json.loads(runner("users", "list", "--format", "json").stdout)
    assert {u["email"]: u["last_login_at"] for u in listed} == {
        "ana@acme.co": "2026-11-30T08:15:00Z",
        "bo@acme.co": "2026-11-01T15:00:00Z",
        "cy@acme.co": None,
        "hr@acme.co": None,
        "ops@acme.co": None,
    }
    table = runner("users", "list").stdout
    assert "LAST LOGIN" in table and "2026-11-30T08:15:00Z" in table and "never" in table
    shown = runner("users", "show", "ana@acme.co").stdout
    assert "Last login:" in shown and "2026-11-30T08:15:00Z" in shown
    assert (
        json.loads(runner("users", "show", "cy@acme.co", "--format", "json").stdout)[
            "last_login_at"
        ]
        is None
    )


def test_a_bad_row_imports_nothing(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    org = _org(factory)
    tomorrow = (utcnow() + dt.timedelta(days=1)).date().isoformat()
    path = tmp_path / "logins.csv"
    path.write_text(
        "email,last_login_at\n"
        "ana@acme.co,2026-11-30T08:15:00Z\n"  # good, yet not imported
        "zed@acme.co,2026-11-30T08:15:00Z\n"  # no such user
        "bo@acme.co,yesterday\n"  # not a time
        f"cy@acme.co,{tomorrow}\n"  # in the future
        "ANA@acme.co,2026-11-29\n",  # twice
        encoding="utf-8",
    )
    result = runner("activity", "import", str(path), *OPS)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}:3:1: email: no user 'zed@acme.co' in this organization"
    assert lines[1].startswith(
        f"{path}:4:12: last_login_at: 'yesterday' is not an ISO 8601 date or date-time"
    )
    assert lines[2].startswith(f"{path}:5:12: last_login_at: {tomorrow}T00:00:00Z is in the future")
    assert lines[3] == f"{path}:6:1: email: ana@acme.co is also on line 2"
    assert _logins(engine) == {"ana@acme.co": None, "bo@acme.co": None, "cy@acme.co": None}
    with begin_read(engine) as conn:
        assert list_events(conn, org) == []
