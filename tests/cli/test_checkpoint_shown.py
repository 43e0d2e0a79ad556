"""Every command that appends audit events shows the signed checkpoint it appended, as apply and
approve do (docs/auditing.md "Signed checkpoints"): `init`, `activity import` and
`notifications resend` used to append events (each signed in its transaction) and print nothing of
it, so an auditor keeping checkpoints had to go and fetch the one they wrote. Each is checked
against `audit checkpoints --last`, which lists what the database holds, on every backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.apply.test_init import SMALL, _write
from tests.apply.test_signed_checkpoints import make_key
from tests.cli.test_resend import Scene
from tests.cli.test_signed_audit_cli import validate
from tests.conftest import Factory, Runner
from userctl.apply import signing
from userctl.cli.checkpoint_out import line


@pytest.fixture
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, _public = make_key(tmp_path)
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, private)


def last_checkpoint(runner: Runner, *org: str) -> dict[str, Any]:
    listed = runner(*org, "audit", "checkpoints", "--last", "--format", "json")
    assert listed.exit_code == 0, listed.output
    (kept,) = json.loads(listed.stdout)
    assert isinstance(kept, dict)
    return kept


def test_init_shows_its_checkpoint(runner: Runner, tmp_path: Path, signing_key: None) -> None:
    done = runner("init", "-f", _write(tmp_path, SMALL), "--admin", "boss@small.co")
    assert done.exit_code == 0, done.output
    kept = last_checkpoint(runner)
    assert kept["seq"] == 4  # the organization, the role, the admin and their enrolment
    assert line(kept) + "\n" in done.stdout


def test_init_json_carries_its_audit_head_and_checkpoint(
    runner: Runner, tmp_path: Path, signing_key: None
) -> None:
    done = runner("init", "-f", _write(tmp_path, SMALL), "--admin", "boss@small.co", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    validate(data, "init.schema.json")
    assert data["checkpoint"] == last_checkpoint(runner)
    assert data["audit_head"] == data["checkpoint"]["head"]


def test_init_without_a_signing_key_shows_no_checkpoint(runner: Runner, tmp_path: Path) -> None:
    done = runner("init", "-f", _write(tmp_path, SMALL), "--admin", "boss@small.co", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    validate(data, "init.schema.json")
    assert data["checkpoint"] is None and len(data["audit_head"]) == 64
    text = runner("init", "-f", _write(tmp_path, SMALL.replace("small-co", "other-co")), "--admin",
                  "boss@small.co")  # fmt: skip
    assert text.exit_code == 0, text.output
    assert "Signed checkpoint" not in text.stdout


def test_activity_import_shows_its_checkpoint(
    runner: Runner, factory: Factory, tmp_path: Path, signing_key: None
) -> None:
    org = factory.org("acme-payments")
    admin = factory.role(org, "Admin", ["users.view", "users.manage"])
    factory.operator(org, "root@acme.co", admin)
    csv = tmp_path / "logins.csv"
    csv.write_text("email,last_login_at\nroot@acme.co,2026-01-02T03:04:05Z\n", encoding="utf-8")
    done = runner("activity", "import", str(csv), "--operator", "root@acme.co")
    assert done.exit_code == 0, done.output
    assert done.stdout.endswith(line(last_checkpoint(runner)) + "\n")
    # Nothing to record appends nothing, and shows no checkpoint.
    again = runner("activity", "import", str(csv), "--operator", "root@acme.co")
    assert again.exit_code == 0, again.output
    assert "Signed checkpoint" not in again.stdout


def test_notifications_resend_shows_its_checkpoint(
    runner: Runner, factory: Factory, engine: Engine, signing_key: None
) -> None:
    scene = Scene(factory, engine)
    done = scene.resend(runner, scene.root, "--otp-code", scene.root.code())
    assert done.exit_code == 0, done.output
    kept = last_checkpoint(runner, "--organization", "acme-payments")
    assert f"is queued\n{line(kept)}\n" in done.stdout
