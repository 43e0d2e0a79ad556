"""`userctl init` and `userctl db upgrade` through the real CLI, on every backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Runner
from userctl.apply.secret_store import decrypt_secret
from userctl.db import migrate, models
from userctl.db.engine import begin_read, create_engine_for
from userctl.db.snapshot import read_live_state
from userctl.desired.loader import load_desired
from userctl.planner import PlanOptions, diff

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "users.yaml")
ADMIN = "ana.perez@acme.co"


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in models.Base.metadata.sorted_tables
        }


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "users.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


SMALL = """\
version: 1
organization: small-co
roles:
  Admin:
    description: Runs the place
    permissions: [users.view, users.manage, roles.manage]
  Viewer:
    permissions: [users.view]
users:
  Boss@Small.co:
    first_name: Bea
    last_name: Boss
    id_type: CC
    id_number: "12345678"
    phone: "+573001234567"
    role: Admin
    two_factor: required
  viewer@small.co:
    first_name: Vic
    last_name: Viewer
    id_type: CC
    id_number: "87654321"
    phone: "+573007654321"
    role: Viewer
"""


def test_init_creates_the_organization_the_admin_role_and_the_admin_only(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    result = runner("init", "-f", _write(tmp_path, SMALL), "--admin", "boss@small.co")
    assert result.exit_code == 0, result.output
    assert "otpauth://totp/" in result.stdout and "issuer=userctl%20%28small-co%29" in result.stdout
    assert "shown ONCE" in result.stdout
    assert "█" in result.stdout  # the QR code

    with begin_read(engine) as conn:
        live = read_live_state(conn, "small-co")
    assert live.organization.name == "small-co"
    assert live.organization.two_factor_policy == "destructive"
    assert set(live.roles) == {"Admin"}
    assert live.roles["Admin"].permissions == {"users.view", "users.manage", "roles.manage"}
    assert live.roles["Admin"].description == "Runs the place"
    assert set(live.users) == {"boss@small.co"}
    boss = live.users["boss@small.co"]
    assert (boss.status, boss.totp_enrolled, boss.two_factor, boss.role, boss.first_name) == (
        "active",
        True,
        "required",
        "Admin",
        "Bea",
    )
    counts = _counts(engine)
    assert counts["totp_secrets"] == 1
    assert counts["audit_events"] == 4  # organization, role, admin, enrolment
    assert counts["bank_accounts"] == 0


def test_init_json_gives_a_working_secret_for_scripts(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    result = runner("init", "-f", _write(tmp_path, SMALL), "--admin", "boss@small.co", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "organization",
        "admin",
        "totp_secret",
        "otpauth_uri",
        "audit_head",
        "checkpoint",
    }
    assert (data["organization"], data["admin"]) == ("small-co", "boss@small.co")
    totp = pyotp.TOTP(data["totp_secret"])
    assert totp.verify(totp.now())
    assert len(data["totp_secret"]) == 32  # 160 bits in base32
    parsed = pyotp.parse_uri(data["otpauth_uri"])
    assert parsed.secret == data["totp_secret"] and parsed.issuer == "userctl (small-co)"
    with engine.connect() as conn:
        stored = conn.execute(sa.select(models.TotpSecret.secret)).scalar_one()
    assert decrypt_secret(stored) == data["totp_secret"]


def test_secret_is_encrypted_at_rest_when_a_key_is_set(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    env: dict[str, str | None] = {"USERCTL_SECRET_KEY": "correct horse battery staple"}
    result = runner(
        "init", "-f", _write(tmp_path, SMALL), "--admin", "boss@small.co", "--json", env=env
    )
    assert result.exit_code == 0, result.output
    secret = json.loads(result.stdout)["totp_secret"]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(models.TotpSecret.secret)).scalar_one()
    assert secret not in stored and stored.startswith("fernet:")
    assert decrypt_secret(stored, "correct horse battery staple") == secret


def test_init_twice_is_refused_and_changes_nothing(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path, SMALL)
    assert runner("init", "-f", path, "--admin", "boss@small.co").exit_code == 0
    with engine.connect() as conn:
        secret_before = conn.execute(sa.select(models.TotpSecret.secret)).scalar_one()
    before = _counts(engine)

    again = runner("init", "-f", path, "--admin", "boss@small.co", "--demo")
    assert again.exit_code == 1
    assert "organization small-co already exists" in again.stderr
    assert "otpauth" not in again.output
    assert _counts(engine) == before
    with engine.connect() as conn:
        assert conn.execute(sa.select(models.TotpSecret.secret)).scalar_one() == secret_before


def test_admin_missing_from_the_file_is_refused_and_nothing_is_written(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    result = runner("init", "-f", _write(tmp_path, SMALL), "--admin", "nobody@small.co")
    assert result.exit_code == 1
    assert "--admin nobody@small.co is not declared in" in result.stderr
    assert "Traceback" not in result.output
    assert sum(_counts(engine).values()) == 0


def test_admin_whose_role_cannot_manage_users_is_refused(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    result = runner("init", "-f", _write(tmp_path, SMALL), "--admin", "viewer@small.co")
    assert result.exit_code == 1
    assert "role 'Viewer', which does not hold users.manage" in result.stderr
    assert sum(_counts(engine).values()) == 0


def test_inactive_admin_is_refused(runner: Runner, engine: Engine, tmp_path: Path) -> None:
    text = SMALL.replace(
        "    two_factor: required\n", "    two_factor: required\n    status: inactive\n", 1
    )
    result = runner("init", "-f", _write(tmp_path, text), "--admin", "boss@small.co")
    assert result.exit_code == 1
    assert "must be active" in result.stderr
    assert sum(_counts(engine).values()) == 0


def test_admin_with_two_factor_disabled_is_refused(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    text = SMALL.replace("    two_factor: required\n", "    two_factor: disabled\n", 1)
    result = runner("init", "-f", _write(tmp_path, text), "--admin", "boss@small.co")
    assert result.exit_code == 1
    assert "--admin boss@small.co is declared with two_factor: disabled" in result.stderr
    assert "otpauth" not in result.output and "Traceback" not in result.output
    assert sum(_counts(engine).values()) == 0


@pytest.mark.parametrize(
    "identity",
    [
        (
            'id_type: CC\n    id_number: "12345678"',
            'id_type: CC\n    id_number: "79845120"',
        ),  # carlos.gomez's
        (
            "Boss@Small.co:",
            "Carlos.Gomez@acme.co:",
        ),  # carlos.gomez's email, written in another case
    ],
    ids=["identity document", "email"],
)
def test_demo_users_that_collide_with_the_admin_are_left_out(
    runner: Runner, engine: Engine, tmp_path: Path, identity: tuple[str, str]
) -> None:
    """The admin is the file's; a demo user holding their identity would be the
    same person twice."""
    text = SMALL.replace(*identity, 1)
    admin = "carlos.gomez@acme.co" if "Carlos" in identity[1] else "boss@small.co"
    result = runner("init", "-f", _write(tmp_path, text), "--admin", admin, "--demo")
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        users = {
            email: first
            for email, first in conn.execute(sa.select(models.User.email, models.User.first_name))
        }
    assert users[admin] == "Bea"  # as the file declares them
    assert "carlos.gomez@acme.co" not in set(users) - {admin}
    assert "maria.rodriguez@acme.co" in users  # the other demo users are there
    with engine.connect() as conn:
        carlos_ids = conn.execute(
            sa.select(sa.func.count())
            .select_from(models.User)
            .where(models.User.id_number == "79845120")
        ).scalar_one()
    assert carlos_ids == (1 if "79845120" in identity[1] else 0)


def test_invalid_file_is_reported_before_the_database_is_touched(
    empty_db_url: str, tmp_path: Path
) -> None:
    result = Runner(empty_db_url)(
        "init",
        "-f",
        _write(tmp_path, SMALL.replace("version: 1", "version: 2")),
        "--admin",
        "boss@small.co",
    )
    assert result.exit_code == 1
    assert "users.yaml" in result.stderr
    engine = create_engine_for(empty_db_url)
    try:
        if engine.dialect.name != "sqlite":
            assert migrate.current(engine) is None  # not even migrated
    finally:
        engine.dispose()
    if empty_db_url.startswith("sqlite"):
        assert not (tmp_path / "empty.db").exists()


def _actions(plan_data: dict[str, Any]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for change in plan_data["changes"]:
        kind = change["kind"]
        found.add((kind, change["action"]))
        if change.get("deferred"):
            found.add((kind, "deferred"))
    return found


def test_demo_makes_the_example_plan_show_every_kind_of_change(
    runner: Runner, engine: Engine
) -> None:
    result = runner("init", "-f", EXAMPLE, "--admin", ADMIN, "--demo")
    assert result.exit_code == 0, result.output

    with begin_read(engine) as conn:
        live = read_live_state(conn, "acme-payments")
    statuses = sorted(u.status for u in live.users.values())
    assert statuses.count("invited") == 1 and statuses.count("inactive") == 1
    desired = load_desired(EXAMPLE)
    assert set(live.users) - set(desired.users)  # somebody to delete
    assert set(live.bank_accounts) - {
        k for u in desired.users.values() for k in u.bank_accounts
    }  # unreferenced

    plan = diff(desired, live, PlanOptions(operator=ADMIN))
    assert not plan.blocked, plan.to_data()["findings"]
    data = plan.to_data()
    actions = _actions(data)
    expected = {
        ("role", "create"),
        ("role", "update"),
        ("role", "delete"),
        ("user", "create"),
        ("user", "update"),
        ("user", "change_role"),
        ("user", "activate"),
        ("user", "deactivate"),
        ("user", "set_two_factor"),
        ("user", "disable_two_factor"),
        ("user", "delete"),
        ("assignment", "assign"),
        ("assignment", "unassign"),
        ("assignment", "deferred"),
    }
    assert expected <= actions, sorted(expected - actions)
    updated_fields = {
        field
        for change in data["changes"]
        if change["kind"] == "user" and change["action"] != "create"
        for field in change["diff"]
    }
    assert {"first_name", "last_name", "two_factor", "force_password_reset"} <= updated_fields
    removals = [
        c
        for c in data["changes"]
        if c["kind"] == "role"
        and c["action"] == "update"
        and c["diff"].get("permissions", {}).get("removed")
    ]
    assert removals and all(c["destructive"] and c["requires_2fa"] for c in removals)

    # The demo admin is the one given with --admin, as the file declares them: no change.
    assert not [c for c in data["changes"] if c["address"] == f'user["{ADMIN}"]']


def test_without_a_database_url_init_creates_userctl_db_in_the_current_directory(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("USERCTL_DATABASE_URL", "USERCTL_ORGANIZATION")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "userctl",
            "init",
            "-f",
            _write(tmp_path, SMALL),
            "--admin",
            "boss@small.co",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["organization"] == "small-co"
    assert (tmp_path / "userctl.db").is_file()
    engine = create_engine_for(f"sqlite:///{tmp_path / 'userctl.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(models.Organization.slug)).scalars().all() == ["small-co"]
    finally:
        engine.dispose()


def test_db_upgrade_migrates_an_empty_database(empty_db_url: str) -> None:
    run = Runner(empty_db_url)
    first = run("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert f"upgraded from empty to revision {migrate.HEAD_REVISION}" in first.stdout
    second = run("db", "upgrade")
    assert second.exit_code == 0
    assert "already at revision" in second.stdout
    engine = create_engine_for(empty_db_url)
    try:
        migrate.require_current(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:hunter2@127.0.0.1:1/x",
        "mysql://root@127.0.0.1:1/x",
        "sqlite:////no/such/dir/x.db",
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["init", "-f", EXAMPLE, "--admin", ADMIN]])
def test_unreachable_database_gives_one_clear_line(url: str, command: list[str]) -> None:
    result = Runner(url)(*command)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot connect to the database at"), (
        result.stderr
    )
    assert "hunter2" not in result.stderr
    assert result.stdout == ""
