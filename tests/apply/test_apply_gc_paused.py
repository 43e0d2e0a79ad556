"""An apply pauses the cyclic collector (DESIGN §6) from reading the saved plan to the commit:
the objects a large plan builds all live until the end, and a collection would only walk them
again (apply/run.py; bench/README.md has the figures)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    Org,
    exported,
    live_state,
    new_user,
    rows_of,
    save_plan,
    with_users,
)
from userctl.apply import run
from userctl.apply.given import GivenCode
from userctl.clock import utcnow
from userctl.db import models as m


@pytest.mark.parametrize("backend", ["sqlite"])
def test_no_collection_runs_while_a_saved_plan_is_read_and_applied(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    added = [new_user(f"paused{i:03d}@acme.co", 500 + i) for i in range(300)]
    path = save_plan(engine, with_users(exported(live_state(engine)), *added), tmp_path)
    collections: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    gc.callbacks.append(seen)
    try:
        now = utcnow()
        source = run.Source(plan_file=str(path), path=None, organization=None, max_age_days=1)
        plan = run.plan_to_apply(engine, source, now)
        result = run.apply_now(
            engine,
            plan,
            org.root.email,
            GivenCode(None, now),
            allow_mass_removal=False,
            lock_timeout_s=5,
        )
    finally:
        gc.callbacks.remove(seen)
    assert result.applied == 300
    assert len(rows_of(engine, m.User, m.User.email.like("paused%"))) == 300
    assert collections == []
    assert gc.isenabled()  # and running again after
