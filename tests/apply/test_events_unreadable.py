"""Every command that reads the audit events as data (`audit log` in text and JSON, `review`,
`evidence`) meets an event holding a value no event is written with — a `before` that is not
JSON on every backend, a time that is no time on SQLite — as `audit verify` does: the chain is
broken, exit 4, naming the altered event, and no pack written; never an unexpected error (exit
70), which would tell a pipeline that userctl failed rather than that the trail was tampered with.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Runner
from userctl.apply.audit import AuditRecord, append_events
from userctl.db.tables import audit_events

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture
def two_events(
    engine: Engine, factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two events of one write, the commands run in tmp_path (evidence writes its pack there)."""
    monkeypatch.chdir(tmp_path)
    org = factory.org()
    with engine.begin() as conn:
        append_events(
            conn,
            org,
            [
                AuditRecord("ana@acme.co", "totp", "user.create", 'user["bob@acme.co"]', None, {}),
                AuditRecord(
                    "ana@acme.co", "totp", "user.update", 'user["bob@acme.co"]', {}, {"x": 1}
                ),
            ],
            T0,
        )


def _tamper(engine: Engine, **values: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(audit_events).where(audit_events.c.seq == 2).values(**values))


COMMANDS = [
    ("audit", "log"),
    ("audit", "log", "--format", "json"),
    ("review",),
    ("review", "--format", "json"),
    ("evidence", "--since", "2026-01-01", "--until", "2026-12-31", "-o", "pack"),
]


def _refused_as_broken(runner: Runner, tmp_path: Path, commands: list[tuple[str, ...]]) -> None:
    for command in commands:
        result = runner(*command)
        assert result.exit_code == 4, (command, result.output)
        assert "the audit chain is broken: event #2" in result.stderr, (command, result.stderr)
        assert "was altered" in result.stderr and "unexpected" not in result.output
    assert not (tmp_path / "pack").exists()


def test_a_before_that_is_not_json_is_a_broken_chain(
    engine: Engine, runner: Runner, tmp_path: Path, two_events: None
) -> None:
    _tamper(engine, before='{"first_name": "Bo"')
    # The text log shows no before or after, so it does not read them: it lists the event.
    assert runner("audit", "log").exit_code == 0
    _refused_as_broken(runner, tmp_path, COMMANDS[1:])


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_time_that_is_no_time_is_a_broken_chain(
    engine: Engine, runner: Runner, tmp_path: Path, two_events: None
) -> None:
    with engine.begin() as conn:  # SQLite keeps the text as given
        conn.exec_driver_sql("UPDATE audit_events SET created_at = 'garbage' WHERE seq = 2")
    _refused_as_broken(runner, tmp_path, COMMANDS)


def test_an_intact_chain_is_read_by_each_command(
    engine: Engine, runner: Runner, tmp_path: Path, two_events: None
) -> None:
    for command in COMMANDS:
        result = runner(*command)
        assert result.exit_code == 0, (command, result.output)
