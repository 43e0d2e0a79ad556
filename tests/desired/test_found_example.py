"""examples/users.yaml is what a newcomer reads first and what the demo plans: it must show the
whole format (issue 2: a realistic organization, every field used, the schema modeline) and
validate through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from userctl.desired.loader import load_desired

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "users.yaml"
SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "schemas" / "userctl.schema.json").read_text(encoding="utf-8")
)
USER_SCHEMA: dict[str, Any] = SCHEMA["$defs"]["user"]


def _declared_users() -> dict[str, dict[str, Any]]:
    # The parsed mapping, not the typed state: a field left to its default must not count as used.
    from userctl.desired.strict_yaml import parse_marked

    value = parse_marked(EXAMPLE.read_text(encoding="utf-8")).value
    assert isinstance(value, dict)
    users: dict[str, dict[str, Any]] = value["users"]
    return users


def test_the_first_line_is_the_schema_modeline_pointing_at_the_schema() -> None:
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    assert (EXAMPLE.parent / first.removeprefix(prefix)).resolve() == (
        ROOT / "schemas" / "userctl.schema.json"
    ).resolve()


def test_a_realistic_organization() -> None:
    desired = load_desired(EXAMPLE)
    assert len(desired.roles) >= 4 and len(desired.users) >= 10
    assert any(role.description for role in desired.roles.values())


def test_every_user_field_of_the_schema_is_used() -> None:
    users = _declared_users()
    used = {name for fields in users.values() for name in fields}
    assert set(USER_SCHEMA["properties"]) <= used, sorted(set(USER_SCHEMA["properties"]) - used)


def test_every_value_a_file_may_declare_for_status_and_two_factor_is_used() -> None:
    users = _declared_users()
    for field in ("status", "two_factor"):
        allowed = set(USER_SCHEMA["properties"][field]["enum"])
        assert {u[field] for u in users.values() if field in u} == allowed, field
    assert {u.get("force_password_reset") for u in users.values()} >= {True, False}


def test_validate_accepts_it_through_the_cli() -> None:
    env = {k: v for k, v in os.environ.items() if k != "USERCTL_ORGANIZATION"}
    done = subprocess.run(
        [sys.executable, "-m", "userctl", "validate", "-f", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{EXAMPLE}: valid (") and done.stderr == ""
