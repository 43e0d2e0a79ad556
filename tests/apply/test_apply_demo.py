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


def test_a_one_user_change_on_the_demo_reads_in_a_dozen_lines(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    """Issue 20, part 4: the change under review is not buried under the organization's pending
    registrations and hygiene notes, which every plan would otherwise repeat in full."""
    secret = json.loads(runner("init", "-f", EXAMPLE, "--admin", ADMIN, "--demo", "--json").stdout)
    code = pyotp.TOTP(secret["totp_secret"]).now()
    assert (
        runner("apply", "-f", EXAMPLE, "--operator", ADMIN, "--otp-code", code, "--yes").exit_code
        == 0
    )
    text = Path(EXAMPLE).read_text(encoding="utf-8")
    changed = tmp_path / "users.yaml"
    changed.write_text(
        text.replace(
            "  camila.herrera@acme.co:\n", "  camila.herrera@acme.co:\n    status: inactive\n"
        ),
        encoding="utf-8",
    )
    plan = runner("plan", "-f", str(changed))
    assert plan.exit_code == 0, plan.output
    lines = plan.stdout.splitlines()
    assert len(lines) <= 12, plan.stdout
    assert lines[4] == '~ user["camila.herrera@acme.co"] deactivate  [destructive, 2FA]'
    assert lines[1] == "Gate: 2FA for destructive changes · four eyes off · min_admins 1"
    assert lines[2].startswith(
        "2FA policy: destructive — the 1 step(s) marked 2FA need a TOTP code"
    )
    assert any(line.startswith("5 deferred (") and "--verbose" in line for line in lines)
    assert any(line.startswith("3 note(s) (privileged_without_2fa ×3)") for line in lines)
    # In full on request, and always in full in JSON.
    verbose = runner("plan", "-f", str(changed), "--verbose").stdout
    assert verbose.count("[deferred]") == 5 and verbose.count("note [privileged_without_2fa]") == 3
    data = json.loads(runner("plan", "-f", str(changed), "--format", "json").stdout)
    assert sum(c["deferred"] for c in data["changes"]) == 5 and len(data["findings"]) == 3
