"""What `userctl plan` imports (DESIGN §6): at 10k users, importing SQLAlchemy alone cost more
than the floor's whole parse, so the plan reads on the raw driver (db/thin.py) and checks the
schema revision with plain SQL, and renders with the requested renderer only. Checked
structurally, in a fresh interpreter, not by a timer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Factory
from tests.db.test_snapshot_driver_cursor import ORG_YAML

# Runs the real entry point and reports, when the process exits, which heavy modules it loaded.
PROBE = """
import atexit, json, sys
def report():
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "jinja2") or m.startswith("sqlalchemy.orm"))
    print(json.dumps({"heavy": heavy, "sqlalchemy": "sqlalchemy" in sys.modules}), file=sys.stderr)
atexit.register(report)
sys.argv = ["userctl", *sys.argv[1:]]
from userctl.cli.main import main
main()
"""  # noqa: E501 - a script, run as written


def _run(db_url: str, *args: str) -> tuple[int, dict[str, object], str]:
    env = {**os.environ, "USERCTL_DATABASE_URL": db_url, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=120
    )
    return proc.returncode, json.loads(proc.stderr.strip().splitlines()[-1]), proc.stdout


def _organization(factory: Factory, tmp_path: Path) -> None:
    """An organization in the database, and tmp_path/org.yaml planning one user into it."""
    org = factory.org()
    factory.role(org, "R", ["users.view"])
    (tmp_path / "org.yaml").write_text(ORG_YAML, encoding="utf-8")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_plan_imports_neither_the_orm_nor_alembic(
    db_url: str, factory: Factory, tmp_path: Path
) -> None:
    _organization(factory, tmp_path)
    code, loaded, out = _run(
        db_url, "plan", "-f", str(tmp_path / "org.yaml"), "--detailed-exitcode"
    )
    assert code == 2 and "first@acme.co" in out  # it did plan, reading the database
    # Not even SQLAlchemy Core: the plan reads on the raw driver (db/thin.py).
    assert loaded == {"heavy": [], "sqlalchemy": False}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_plan_reads_through_sqlalchemy_where_the_driver_path_declines(
    db_url: str, factory: Factory, tmp_path: Path
) -> None:
    """A URL with a query string is left to SQLAlchemy: the same plan, the ORM still unloaded."""
    _organization(factory, tmp_path)
    args = ("plan", "-f", str(tmp_path / "org.yaml"), "--detailed-exitcode")
    code, loaded, out = _run(db_url, *args)
    slow_code, slow_loaded, slow_out = _run(f"{db_url}?timeout=10", *args)
    assert (slow_code, slow_loaded) == (2, {"heavy": [], "sqlalchemy": True})
    # The same plan, but for its digest (the provenance names the database alike).
    digest = re.compile(r"sha256:[0-9a-f]+")
    assert digest.sub("", slow_out) == digest.sub("", out) and code == 2


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_validate_imports_no_database_layer_at_all(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "org.yaml").write_text(ORG_YAML, encoding="utf-8")
    code, loaded, _ = _run(db_url, "validate", "-f", str(tmp_path / "org.yaml"))
    assert code == 0
    assert loaded == {"heavy": [], "sqlalchemy": False}


RENDERERS = {"text": "text", "json": "jsonfmt", "markdown": "markdown", "html": "htmlpage"}
# What each renderer's module imports of the others (markdown words its changes as text does).
RENDERER_USES = {"markdown": {"text"}}

RENDER_PROBE = PROBE.replace(
    'heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "jinja2") or '
    'm.startswith("sqlalchemy.orm"))',
    'heavy = sorted(m for m in sys.modules if m.startswith("userctl.render."))',
)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_plan_imports_only_the_requested_renderer(
    db_url: str, factory: Factory, tmp_path: Path, fmt: str
) -> None:
    assert RENDER_PROBE != PROBE
    _organization(factory, tmp_path)
    env = {**os.environ, "USERCTL_DATABASE_URL": db_url, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RENDER_PROBE, "plan", "-f", str(tmp_path / "org.yaml")]
        + ["--format", fmt],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "first@acme.co" in proc.stdout, proc.stderr
    loaded = {m.rsplit(".", 1)[1] for m in json.loads(proc.stderr.splitlines()[-1])["heavy"]}
    wanted = {RENDERERS[fmt], *RENDERER_USES.get(fmt, ())}
    assert wanted <= loaded
    assert not (set(RENDERERS.values()) - wanted) & loaded, sorted(loaded)
