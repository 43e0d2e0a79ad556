"""`init --secret-file` and `--exist-ok` (issue 20, part 1): a setup script run twice keeps the
admin's only TOTP secret. Who could lose it: anyone re-running the Quickstart (the shell's `>`
truncated the secret before init refused), or a mistyped command aimed at an existing file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.test_init import SMALL, _counts, _write
from tests.conftest import Runner
from userctl.db import models


def _init(tmp_path: Path) -> tuple[str, ...]:
    return ("init", "-f", _write(tmp_path, SMALL), "--admin", "boss@small.co")


def test_the_secret_file_is_private_and_holds_a_working_secret(
    runner: Runner, tmp_path: Path
) -> None:
    secret = tmp_path / "admin.json"
    result = runner(*_init(tmp_path), "--secret-file", str(secret))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    doc = json.loads(secret.read_text(encoding="utf-8"))
    assert doc["admin"] == "boss@small.co" and doc["organization"] == "small-co"
    assert pyotp.TOTP(doc["totp_secret"]).now().isdigit()
    assert doc["totp_secret"] not in result.output  # the file holds it, the terminal does not


def test_running_it_twice_with_exist_ok_exits_0_and_keeps_the_secret(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path, SMALL)
    secret = tmp_path / "admin.json"
    args = ["init", "-f", path, "--admin", "boss@small.co", "--secret-file", str(secret)]
    assert runner(*args, "--exist-ok").exit_code == 0
    kept = secret.read_bytes()
    with engine.connect() as conn:
        stored = conn.execute(sa.select(models.TotpSecret.secret)).scalar_one()
    before = _counts(engine)

    again = runner(*args, "--exist-ok")
    assert again.exit_code == 0, again.output
    assert "already initialised" in again.stderr and "nothing changed" in again.stderr
    assert secret.read_bytes() == kept
    assert _counts(engine) == before
    with engine.connect() as conn:
        assert conn.execute(sa.select(models.TotpSecret.secret)).scalar_one() == stored


def test_an_existing_secret_file_is_never_overwritten_without_exist_ok(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    secret = tmp_path / "admin.json"
    secret.write_text("the only copy\n", encoding="utf-8")
    result = runner(
        "init",
        "-f",
        _write(tmp_path, SMALL),
        "--admin",
        "boss@small.co",
        "--secret-file",
        str(secret),
    )
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "Traceback" not in result.output
    assert secret.read_text(encoding="utf-8") == "the only copy\n"
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(models.Organization)).scalar() == 0
        )


def test_exist_ok_never_creates_an_organization_whose_secret_would_have_nowhere_to_go(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    # A secret file from another database must not be kept while a new admin secret is made.
    secret = tmp_path / "admin.json"
    secret.write_text("an older secret\n", encoding="utf-8")
    result = runner(
        "init",
        "-f",
        _write(tmp_path, SMALL),
        "--admin",
        "boss@small.co",
        "--secret-file",
        str(secret),
        "--exist-ok",
    )
    assert result.exit_code == 1
    assert "does not" in result.stderr
    assert secret.read_text(encoding="utf-8") == "an older secret\n"
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(models.Organization)).scalar() == 0
        )


def test_a_failed_init_leaves_no_secret_file(
    runner: Runner, engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path, SMALL)
    assert runner("init", "-f", path, "--admin", "boss@small.co").exit_code == 0
    secret = tmp_path / "admin.json"
    again = runner("init", "-f", path, "--admin", "boss@small.co", "--secret-file", str(secret))
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert not secret.exists()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_exist_ok_with_another_admin_is_still_refused(runner: Runner, tmp_path: Path) -> None:
    # "already initialised" means by this admin: someone else's organization is no success.
    path = _write(tmp_path, SMALL)
    assert runner("init", "-f", path, "--admin", "boss@small.co").exit_code == 0
    other = SMALL.replace("role: Viewer", "role: Admin")
    other_path = tmp_path / "other"
    other_path.mkdir()
    result = runner(
        "init", "-f", _write(other_path, other), "--admin", "viewer@small.co", "--exist-ok"
    )
    assert result.exit_code == 1
    assert "organization small-co already exists" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_secret_never_goes_where_sqlite_keeps_its_journal(
    runner: Runner, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    # SQLite deletes a file under its journal's name at the next open: the only copy of the
    # admin's secret would be gone (tests/cli/test_outputs.py shows it).
    journal = Path(db_url.removeprefix("sqlite:///") + "-journal")
    result = runner(*_init(tmp_path), "--secret-file", str(journal))
    assert result.exit_code == 1, result.output
    assert f"is {journal}, which this command reads" in result.stderr
    assert not journal.exists()
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(models.Organization)).scalar() == 0
        )
