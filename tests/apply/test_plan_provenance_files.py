"""A saved plan names the files it was made from by the SHA-256 of the very bytes the planner
read: not of the file read again afterwards (which may have changed meanwhile, so that a reviewer
comparing `sha256sum` would vouch for a file the plan never saw), and also for a file that is not
a regular one (`-f <(git show HEAD:users.yaml)`)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, exported, live_state
from tests.cli.yaml_files import write_desired
from tests.conftest import Runner

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def saved_files(runner: Runner, desired: str, tmp_path: Path) -> dict[str, str]:
    result = runner("plan", "-f", desired, "--out", str(tmp_path / "plan.json"))
    assert result.exit_code == 0, result.output
    files: dict[str, str] = json.loads((tmp_path / "plan.json").read_text())["provenance"]["files"]
    return files


def test_the_hash_is_of_the_bytes_planned_when_the_file_changes_after_loading(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yaml_file = write_desired(tmp_path / "users.yaml", exported(live_state(engine)))
    planned = yaml_file.read_bytes()
    from userctl.db import thin

    real = thin.read_for_plan

    def rewritten_meanwhile(*args: object, **kwargs: object) -> object:
        # Between loading the file and the plan being stamped, someone writes another file there.
        yaml_file.write_bytes(planned.replace(b"organization:", b"# changed\norganization:"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(thin, "read_for_plan", rewritten_meanwhile)

    files = saved_files(runner, str(yaml_file), tmp_path)

    assert yaml_file.read_bytes() != planned
    assert files == {str(yaml_file): sha256(planned)}


def test_the_hash_is_of_the_file_as_written_with_its_byte_order_mark(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    yaml_file = write_desired(tmp_path / "users.yaml", exported(live_state(engine)))
    yaml_file.write_bytes(b"\xef\xbb\xbf" + yaml_file.read_bytes())

    assert saved_files(runner, str(yaml_file), tmp_path) == {
        str(yaml_file): sha256(yaml_file.read_bytes())
    }


def test_a_directory_names_each_file_it_loaded(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    folder = tmp_path / "desired"
    folder.mkdir()
    write_desired(folder / "users.yaml", exported(live_state(engine)))
    (folder / "notes.txt").write_text("not part of the desired state")

    files = saved_files(runner, str(folder), tmp_path)

    assert files == {str(folder / "users.yaml"): sha256((folder / "users.yaml").read_bytes())}


def test_a_file_read_from_a_pipe_is_named_with_its_hash(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    content = write_desired(tmp_path / "users.yaml", exported(live_state(engine))).read_bytes()
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(content)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        files = saved_files(runner, f"/dev/fd/{read_end}", tmp_path)
    finally:
        writer.join()
        os.close(read_end)

    assert files == {f"/dev/fd/{read_end}": sha256(content)}
