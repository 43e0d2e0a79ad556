"""Through the real CLI: the moment a command read its TOTP code is the one it is judged at
(issue 19, part 7). The process clock is the only source of that moment: here it is a clock
that reads T when the command starts and T + 90 s (three steps later, as after planning a large
file) every time after; a code of T given by option or variable is accepted, and one typed at a
prompt is judged at the moment the prompt returned."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, build_org, code_at, drop_gone, rows_of, save_plan
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl import clock
from userctl.cli.code_prompt import with_code
from userctl.db import models as m

LATER = dt.timedelta(seconds=90)


class SteppingClock:
    """The process clock of one command: `start` at its first reading (when the command starts),
    `start + LATER` at every reading after."""

    def __init__(self, start: dt.datetime) -> None:
        self.start = start
        self.readings = 0

    def __call__(self) -> dt.datetime:
        self.readings += 1
        return self.start if self.readings == 1 else self.start + LATER


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    # Now, so that saved plans are neither stale nor from the future; whole seconds, 5 s into a
    # step, so that T and T + 90 s are three steps apart.
    now = clock.utcnow().replace(microsecond=0)
    at = now - dt.timedelta(seconds=(now.second % 30) - 5)
    monkeypatch.setattr(clock, "utcnow", SteppingClock(at))
    return at


def test_apply_of_a_file_judges_the_code_given_when_the_command_started(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, start: dt.datetime
) -> None:
    path = write_desired(tmp_path / "users.yaml", drop_gone(engine))
    code = code_at(org.root, start)
    result = runner(
        "apply", "-f", str(path), "--operator", "root@acme.co", "--yes", "--otp-code", code
    )
    assert result.exit_code == 0, result.output
    assert not rows_of(engine, m.User, m.User.email == "gone@acme.co")
    assert not [e for e in rows_of(engine, m.AuditEvent) if e.action == "otp.failure"]


def test_a_code_valid_only_after_the_start_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, start: dt.datetime
) -> None:
    path = write_desired(tmp_path / "users.yaml", drop_gone(engine))
    code = code_at(org.root, start + LATER)
    result = runner(
        "apply", "-f", str(path), "--operator", "root@acme.co", "--yes", "--otp-code", code
    )
    assert result.exit_code == 4 and "wrong one-time code" in result.stderr, result.output
    assert rows_of(engine, m.User, m.User.email == "gone@acme.co")


def test_approve_attest_and_enroll_judge_the_code_given_when_the_command_started(
    engine: Engine,
    org: Org,
    runner: Runner,
    tmp_path: Path,
    start: dt.datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = save_plan(engine, drop_gone(engine), tmp_path)
    report = runner("review", "--format", "json")
    assert report.exit_code == 0, report.output
    (tmp_path / "review.json").write_text(report.stdout, encoding="utf-8")
    # Each command starts its own process clock; the code of its start is a step apart from the
    # one before, as a used step is never accepted again.
    commands = [
        ["approve", str(plan), "--operator", "root@acme.co", "--yes"],
        ["review", "attest", str(tmp_path / "review.json"), "--reviewer", "root@acme.co"],
        ["mfa", "enroll", "calm@acme.co", "--operator", "root@acme.co"],
    ]
    for i, args in enumerate(commands):
        at = start + dt.timedelta(seconds=30 * (4 * i + 4))
        monkeypatch.setattr(clock, "utcnow", SteppingClock(at))
        result = runner(*args, "--otp-code", code_at(org.root, at))
        assert result.exit_code == 0, (args, result.output)
    assert not [e for e in rows_of(engine, m.AuditEvent) if e.action == "otp.failure"]


def test_a_typed_code_is_read_when_the_prompt_returns(start: dt.datetime) -> None:
    seen: list[tuple[str | None, dt.datetime]] = []

    @click.command()
    def ask() -> None:
        with_code(lambda given: seen.append((given.code, given.read_at)), None, ask=True)

    result = CliRunner().invoke(ask, [], input="123456\n", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # The command started at `start`; the prompt returned at the next reading of the clock.
    assert seen == [("123456", start + LATER)]


def test_a_rekey_under_four_eyes_judges_both_codes_when_they_were_given(
    engine: Engine, factory: Factory, runner: Runner, start: dt.datetime
) -> None:
    org = build_org(factory, four_eyes=True)
    factory.operator(org.id, "carl@acme.co", org.roles["Admin"])
    lead = factory.operator(org.id, "lead@acme.co", org.roles["Admin"])
    result = runner(
        "mfa",
        "enroll",
        "carl@acme.co",
        "--operator",
        "root@acme.co",
        "--otp-code",
        code_at(org.root, start),
        "--second-operator",
        "lead@acme.co",
        "--second-otp-code",
        code_at(lead, start),
    )
    assert result.exit_code == 0, result.output
    assert not [e for e in rows_of(engine, m.AuditEvent) if e.action == "otp.failure"]


def test_resend_judges_the_code_given_when_the_command_started(
    engine: Engine,
    org: Org,
    factory: Factory,
    runner: Runner,
    start: dt.datetime,
) -> None:
    factory.user(org.id, "late@acme.co", next(iter(org.roles.values())), status="invited")
    result = runner(
        "notifications",
        "resend",
        "late@acme.co",
        "--operator",
        "root@acme.co",
        "--otp-code",
        code_at(org.root, start),
        env={"USERCTL_INVITE_BASE_URL": "https://app.acme.co/join", "USERCTL_SMTP_URL": None},
    )
    assert result.exit_code == 0, result.output
    assert [e.action for e in rows_of(engine, m.AuditEvent)][-1] == "notification.resend"
