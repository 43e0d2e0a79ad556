"""`userctl apply` on a real terminal (a pty, with `.venv/bin/userctl` as a subprocess; SQLite is
enough, the terminal logic does not depend on the backend): the confirmation prompt, the hidden
TOTP prompt asked before anything is written, when a code is asked for at all, asked again after a
wrong code (at most three times, each counted), and the progress bar of a big apply."""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    ORG,
    Org,
    build_org,
    bulk_org,
    drop_gone_plan,
    exported,
    live_state,
    make_plan,
    new_user,
    rows_of,
    save_plan,
    tables,
)
from tests.conftest import Factory, Operator
from userctl.apply import approve_plan
from userctl.clock import utcnow
from userctl.db import models as m
from userctl.state import DesiredState

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
USERCTL = str(Path(sys.executable).with_name("userctl"))
PATIENCE_S = 60.0
CONFIRM = "Apply these"
TOTP_PROMPT = "TOTP code:"


class Terminal:
    """A process whose stdin, stdout and stderr are one pty, as in an operator's shell."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [USERCTL, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.output = ""
        self._eof = False

    def _read(self, deadline: float) -> None:
        ready, _, _ = select.select(
            [self.master], [], [], max(0.0, min(0.2, deadline - time.monotonic()))
        )
        if not ready:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every holder of the pty's other end has closed it
            data = b""
        if not data:
            self._eof = True
        self.output += data.decode("utf-8", "replace")

    def expect(self, text: str, times: int = 1) -> None:
        """Wait until `text` has been shown `times` times in all."""
        deadline = time.monotonic() + PATIENCE_S
        while self.output.count(text) < times:
            if self._eof or time.monotonic() > deadline:
                pytest.fail(f"never saw {text!r}; the terminal showed:\n{self.output}")
            self._read(deadline)

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\r").encode())

    def finish(self) -> int:
        deadline = time.monotonic() + PATIENCE_S
        while not self._eof and time.monotonic() < deadline:
            self._read(deadline)
        code = self.proc.wait(timeout=PATIENCE_S)
        os.close(self.master)
        return code


@pytest.fixture
def terminal(db_url: str, tmp_path: Path) -> Iterator[type[Terminal]]:
    started: list[Terminal] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERCTL_") and k != "NO_COLOR"}
    env.update(USERCTL_DATABASE_URL=db_url, NO_COLOR="1", TERM="xterm")

    class Bound(Terminal):
        def __init__(self, args: list[str]) -> None:  # type: ignore[override]
            super().__init__(args, env, tmp_path)
            started.append(self)

    yield Bound
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()


def test_declining_the_confirmation_writes_nothing(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    before = tables(engine)

    t = terminal(["apply", str(path), "--operator", "root@acme.co"])
    t.expect(CONFIRM)
    assert 'user["gone@acme.co"]' in t.output  # the plan is shown before the question
    t.send("n")

    assert t.finish() == 1, t.output
    assert "Aborted" in t.output and TOTP_PROMPT not in t.output
    assert tables(engine) == before


def test_accepting_then_one_hidden_code_before_the_first_write(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    before = tables(engine)

    t = terminal(["apply", str(path), "--operator", "root@acme.co"])
    t.expect(CONFIRM)
    t.send("y")
    t.expect(TOTP_PROMPT)
    assert tables(engine) == before  # asked before anything is written
    code = org.root.code()
    t.send(code)

    assert t.finish() == 0, t.output
    assert t.output.count(TOTP_PROMPT) == 1
    assert code not in t.output  # hidden input: the terminal did not echo it
    assert "verified by totp" in t.output
    assert rows_of(engine, m.User, m.User.email == "gone@acme.co") == []


def test_code_given_up_front_is_not_asked_for(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    t = terminal(
        ["apply", str(path), "--operator", "root@acme.co", "--otp-code", org.root.code(), "--yes"]
    )
    assert t.finish() == 0, t.output
    assert TOTP_PROMPT not in t.output and CONFIRM not in t.output


def test_an_approval_that_no_longer_counts_does_not_stop_the_prompt(
    engine: Engine, factory: Factory, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    lead = factory.operator(org.id, "lead@acme.co", org.roles["Admin"])
    path = drop_gone_plan(engine, tmp_path)
    from tests.apply.apply_helpers import plan_of

    approve_plan(
        engine,
        plan_of(path),
        lead.email,
        lead.code(),
        now=utcnow(),
        valid_for=dt.timedelta(hours=1),
    )
    with engine.begin() as conn:  # the approver has left: apply would not count the approval
        conn.execute(sa.update(m.User).where(m.User.id == lead.user_id).values(status="inactive"))

    t = terminal(["apply", str(path), "--operator", "root@acme.co", "--yes"])
    t.expect(TOTP_PROMPT)
    t.send(org.root.code())

    assert t.finish() == 0, t.output
    assert "verified by totp" in t.output


def test_under_four_eyes_no_code_is_asked_for_and_apply_says_who_must_approve(
    engine: Engine, factory: Factory, tmp_path: Path, terminal: type[Terminal]
) -> None:
    build_org(factory, four_eyes=True)
    path = drop_gone_plan(engine, tmp_path)
    before = tables(engine)

    t = terminal(["apply", str(path), "--operator", "root@acme.co", "--yes"])

    assert t.finish() == 4, t.output
    assert TOTP_PROMPT not in t.output  # nobody else has approved: a code alone cannot confirm
    assert "two different people must confirm" in " ".join(t.output.split())
    assert tables(engine) == before


def test_a_big_apply_shows_a_progress_bar_on_the_terminal(
    engine: Engine, factory: Factory, tmp_path: Path, terminal: type[Terminal]
) -> None:
    bulk_org(factory)
    live = exported(live_state(engine))
    users = dict(live.users)
    users.update((f"bulk{i}@acme.co", new_user(f"bulk{i}@acme.co", i)) for i in range(2500))
    plan = make_plan(engine, DesiredState(ORG, live.roles, users))
    assert not plan.requires_2fa
    path = save_plan(engine, DesiredState(ORG, live.roles, users), tmp_path)

    t = terminal(["apply", str(path), "--operator", "root@acme.co", "--yes"])

    assert t.finish() == 0, t.output
    assert "Applying" in t.output and "100%" in t.output and "Applied 2500 change(s)" in t.output
    # The bar moved in between (per batch), not straight from nothing to done.
    shown = {p for p in ("40%", "80%") if p in t.output}
    assert shown, t.output


def test_approve_shows_the_plan_asks_to_confirm_then_asks_for_the_code(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    digest = json.loads(path.read_text())["digest"]

    t = terminal(["approve", str(path), "--operator", "root@acme.co"])
    t.expect("Approve this plan for acme-payments?")
    shown = t.output
    assert 'user["gone@acme.co"] delete  [destructive, 2FA]' in shown
    assert 'assignment["gone@acme.co" -> "ops-main"] unassign' in shown
    assert f"Digest: {digest}" in shown and "Plan: 0 to create" in shown
    assert TOTP_PROMPT not in shown  # the question comes before the code
    t.send("y")
    t.expect(TOTP_PROMPT)
    t.send(org.root.code())
    assert t.finish() == 0, t.output
    assert rows_of(engine, m.Approval)


def test_approve_yes_skips_the_question_never_the_code(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    t = terminal(["approve", str(path), "--operator", "root@acme.co", "--yes"])
    t.expect(TOTP_PROMPT)
    assert "Approve this plan" not in t.output and "Digest: sha256:" in t.output
    t.send(org.root.code())
    assert t.finish() == 0, t.output


def not_a_current_code(op: Operator) -> str:
    """A six-digit code that is none of the operator's codes near now (two steps either side, so
    the minute the test takes cannot make it right)."""
    now = time.time()
    near = {op.code(now + 30 * s) for s in range(-2, 3)}
    return next(
        c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in near
    )


def failures_of(engine: Engine, op: Operator) -> tuple[int, list[str]]:
    [(count,)] = rows_of(engine, m.TotpSecret.failed_attempts, m.TotpSecret.user_id == op.user_id)
    events = [
        action for (action,) in rows_of(engine, m.AuditEvent.action) if action.startswith("otp.")
    ]
    return int(count), events


def without_otp_rows(
    snapshot: dict[str, list[tuple[object, ...]]],
) -> dict[str, list[tuple[object, ...]]]:
    """Every table but those a wrong code's booking writes (the counter and its audit events)."""
    return {
        name: rows
        for name, rows in snapshot.items()
        if name not in ("totp_secrets", "audit_events")
    }


def test_a_wrong_code_at_the_prompt_is_asked_again_and_counted_then_the_right_one_applies(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    before = tables(engine)

    t = terminal(["apply", str(path), "--operator", "root@acme.co", "--yes"])
    t.expect(TOTP_PROMPT)
    t.send(not_a_current_code(org.root))
    t.expect("4 attempt(s) left")
    assert failures_of(engine, org.root) == (1, ["otp.failure"])  # counted before the next question
    assert without_otp_rows(tables(engine)) == without_otp_rows(before)  # and nothing else written
    t.expect(TOTP_PROMPT, times=2)
    t.send(org.root.code())

    assert t.finish() == 0, t.output
    assert "verified by totp" in t.output
    assert rows_of(engine, m.User, m.User.email == "gone@acme.co") == []
    assert failures_of(engine, org.root)[0] == 0  # a right code resets the counter


def test_three_wrong_codes_at_the_prompt_end_the_apply_with_nothing_applied(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    before = tables(engine)

    t = terminal(["apply", str(path), "--operator", "root@acme.co", "--yes"])
    for attempt in range(1, 4):
        t.expect(TOTP_PROMPT, times=attempt)
        t.send(not_a_current_code(org.root))

    assert t.finish() == 4, t.output
    assert t.output.count(TOTP_PROMPT) == 3
    assert "2 attempt(s) left before" in t.output
    assert failures_of(engine, org.root) == (3, ["otp.failure"] * 3)
    assert without_otp_rows(tables(engine)) == without_otp_rows(before)


def test_a_wrong_code_given_as_an_option_is_not_asked_again(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)

    t = terminal(
        [
            "apply",
            str(path),
            "--operator",
            "root@acme.co",
            "--yes",
            "--otp-code",
            not_a_current_code(org.root),
        ]
    )

    assert t.finish() == 4, t.output
    assert TOTP_PROMPT not in t.output and "wrong one-time code" in t.output
    assert failures_of(engine, org.root) == (1, ["otp.failure"])


def test_approve_asks_again_after_a_wrong_code(
    engine: Engine, org: Org, tmp_path: Path, terminal: type[Terminal]
) -> None:
    path = drop_gone_plan(engine, tmp_path)
    t = terminal(["approve", str(path), "--operator", "root@acme.co", "--yes"])
    t.expect(TOTP_PROMPT)
    t.send(not_a_current_code(org.root))
    t.expect(TOTP_PROMPT, times=2)
    assert "attempt(s) left" in t.output
    t.send(org.root.code())
    assert t.finish() == 0, t.output
    assert t.output.count(TOTP_PROMPT) == 2 and rows_of(engine, m.Approval)
