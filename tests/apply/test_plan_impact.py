"""What a saved plan says a change takes away is evidence a reviewer reads ("users who lose
payouts.create: ..."), so apply re-derives it from the locked live state: a plan that hides a
holder is refused, exit 4, nothing written, even with a valid code."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, apply_args, exported, live_state, save_plan, tables
from tests.conftest import Runner
from userctl.plan import compute_digest, role_address


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_plan_hiding_who_loses_a_permission_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    want = exported(live_state(engine))
    ops = want.roles["Ops"]
    want = replace(
        want,
        roles={**want.roles, "Ops": replace(ops, permissions=ops.permissions - {"payouts.create"})},
    )
    path = save_plan(engine, want, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    [update] = [c for c in data["changes"] if c["address"] == role_address("Ops")]
    assert update["impact"]["holders"]["shown"][:2] == ["acct@acme.co", "back@acme.co"]
    # The attacker's edit: nobody loses anything, digest recomputed.
    update["impact"] = {"holders": {"shown": [], "more": 0}}
    data["digest"] = compute_digest(
        {k: v for k, v in data.items() if k not in ("digest", "findings", "summary")}
    )
    path.write_text(json.dumps(data), encoding="utf-8")
    before = tables(engine)

    result = runner(*apply_args(path, org.root.email, org.root.code()))

    assert result.exit_code == 4, result.output
    assert (
        'role["Ops"] update, the users it says lose the removed permissions '
        "are not those of the live state" in result.stderr
    )
    assert "Nothing was written" in result.stderr and "Traceback" not in result.output
    assert tables(engine) == before
