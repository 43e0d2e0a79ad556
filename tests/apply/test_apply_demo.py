"""The README's demo end to end through the real CLI, on every backend: `init --demo --json`,
`apply -f examples/users.yaml` confirmed with a real TOTP code computed from the secret that init
printed, then `plan --detailed-exitcode` finds nothing left to do and `audit verify` passes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyotp
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import rows_of
from tests.conftest import Runner
from userctl.db import models as m

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "users.yaml")
ADMIN = "ana.perez@acme.co"


def test_demo_plan_applied_end_to_end(runner: Runner, engine: Engine) -> None:
    init = runner("init", "-f", EXAMPLE, "--admin", ADMIN, "--demo", "--json")
    assert init.exit_code == 0, init.output
    secret = json.loads(init.stdout)["totp_secret"]

    planned = runner("plan", "-f", EXAMPLE, "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output  # every kind of change, some needing 2FA

    applied = runner(
        "apply", "-f", EXAMPLE, "--operator", ADMIN, "--otp-code", pyotp.TOTP(secret).now(), "--yes"
    )

    assert applied.exit_code == 0, applied.output
    assert "verified by totp" in applied.stdout
    head = re.search(r"Audit chain head: ([0-9a-f]{64})", applied.stdout)
    assert head is not None, applied.stdout
    assert secret not in applied.output

    again = runner("plan", "-f", EXAMPLE, "--detailed-exitcode")
    assert again.exit_code == 0, again.output

    verified = runner("audit", "verify", "--head", head.group(1))
    assert verified.exit_code == 0, verified.output
    assert f"head {head.group(1)}" in verified.stdout
    assert rows_of(engine, m.AuditEvent)
