"""The edge around the pure planner: load the file, read the live snapshot in a read-only
transaction, plan, and turn planner problems into FILE:LINE:COL. Shared by `plan` and
`apply -f`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from userctl.errors import InputError, UsageError
from userctl.gcpause import gc_paused
from userctl.plan import Plan
from userctl.planner import PlanOptions, diff

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def plan_from_file(engine: "Engine", path: str | os.PathLike[str], options: PlanOptions, organization: str | None = None) -> Plan:
    from userctl.db.engine import begin_read
    from userctl.db.migrate import require_current
    from userctl.db.snapshot import read_live_state
    from userctl.desired.loader import load_desired, locate

    # One pause around the three bulk steps (the loader's and the snapshot's own pauses nest
    # inside it): no collection runs between them, over objects that all survive.
    with gc_paused():
        desired = load_desired(path)
        if organization is not None and organization != desired.organization:
            raise UsageError(f"--organization {organization} does not match the file, which declares {desired.organization!r}")
        require_current(engine)
        with begin_read(engine) as conn:
            live = read_live_state(conn, desired.organization)
        try:
            return diff(desired, live, options)
        except InputError as exc:
            raise InputError(locate(exc.problems, desired)) from None
