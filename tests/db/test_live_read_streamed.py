"""The plan's live read holds a batch of user rows at a time, not all of them
(plan_read.Rows.stream): a row equal to the file's User is dropped as soon as it is compared, so
at 100,000 users the plan's peak memory is the rows' size (75 MB) lower. Both runners (the raw
driver's, which `plan` reads on, and SQLAlchemy's, which apply's re-reads use), on every
backend. Measured with tracemalloc, which sees Python's objects and not the driver's own buffers
(libpq's result)."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from typing import Any, Callable

import pytest
from sqlalchemy.engine import Engine

from tests.conftest import Factory
from userctl import state
from userctl.db import plan_read, rows, thin
from userctl.db.engine import begin_read
from userctl.db.snapshot import core_rows, read_live_state

USERS = 1000
BATCH = 10
NOW = dt.datetime(2026, 3, 2, 12, 0, 5)


def _traced(read: Callable[[], Any]) -> tuple[int, Any]:
    """The peak of Python memory allocated while `read` runs (above what it started with), and
    what it returned."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = read()
        return tracemalloc.get_traced_memory()[1] - start, result
    finally:
        tracemalloc.stop()


def _populate(factory: Factory) -> int:
    org = factory.org()
    role = factory.role(org, "R", ["users.view"])
    account = factory.bank_account(org, "main")
    with factory.engine.begin() as conn:  # one transaction: a thousand users in a moment
        for i in range(USERS):
            email = f"someone.with.a.long.address.{i}@example.com"
            user = rows.insert_user(
                conn,
                org,
                state.User(email, "Some", f"One {i}", "CC", f"{1000 + i}", f"+57300{i:07d}", "R"),
                role,
            )
            if i % 10 == 0:
                rows.insert_assignments(conn, [(user, account)])
    return org


@pytest.mark.parametrize("runner", ["driver", "sqlalchemy"])
def test_the_live_read_holds_a_batch_of_rows_not_all(
    engine: Engine,
    factory: Factory,
    db_url: str,
    runner: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = _populate(factory)
    with begin_read(engine) as conn:
        # The file's users, equal to every row: what the read keeps is a reference each.
        like = dict(read_live_state(conn, "acme-payments").users)
        # What all the user rows take at once, as the driver builds them.
        everything, held = _traced(lambda: list(core_rows(conn)("users", org_id=org)))
    assert len(held) == USERS
    del held
    monkeypatch.setattr(plan_read, "STREAM_BATCH", BATCH)

    def read() -> state.LiveState:
        if runner == "driver":
            reads = thin.read_for_plan(db_url, "acme-payments", like, NOW)
            assert reads is not None
            return reads.live
        with begin_read(engine) as conn:
            return read_live_state(conn, "acme-payments", like=like)

    read()  # once before measuring: drivers imported, statements compiled and cached
    peak, live = _traced(read)
    assert live.users == like
    assert all(live.users[e] is u for e, u in like.items())
    # Every row at once would be all of `everything`; a batch of 10 in 1,000 is a hundredth.
    assert peak < everything / 2, (peak, everything)
