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
from sqlalchemy.engine import Engine

from tests.apply.test_audit import seed
from tests.conftest import Factory
from tests.db.test_snapshot_driver_cursor import ORG_YAML
from userctl.apply.audit import verify_chain
from userctl.db.tables import audit_events
from userctl.state import canonical_json

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


def _run(db_url: str, *args: str, probe: str = PROBE) -> tuple[int, dict[str, object], str]:
    env = {**os.environ, "USERCTL_DATABASE_URL": db_url, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, timeout=120
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


# What only a plan needs: its Change and Finding types (with the hashing and JSON they import)
# and the hygiene findings. Checking a file's policies does not (issue 25: at 10k users the
# process's fixed costs are a large part of validate's gap to its floor).
PLAN_ONLY = ("userctl.plan", "userctl.hygiene", "userctl.planner")
PLAN_ONLY_PROBE = PROBE.replace(
    'heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "jinja2") or '
    'm.startswith("sqlalchemy.orm"))',
    f"heavy = sorted(m for m in sys.modules if m in {PLAN_ONLY!r})",
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "users.yaml"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_validate_of_a_file_with_policies_imports_nothing_only_a_plan_needs(
    db_url: str,
) -> None:
    assert PLAN_ONLY_PROBE != PROBE and "policies:" in EXAMPLE.read_text(encoding="utf-8")
    code, loaded, out = _run(db_url, "validate", "-f", str(EXAMPLE), probe=PLAN_ONLY_PROBE)
    assert code == 0 and "valid" in out
    assert loaded["heavy"] == []


# What only applying or verifying needs: the transaction (and, through it, replan and the 2FA
# rules), the audit chain's arithmetic. A plan that imported them again would pay for them in
# every run (issue 25: at 10k users the process's fixed costs are most of a plan's gap to its
# floor).
APPLY_ONLY = (
    "userctl.apply.transaction",
    "userctl.replan",
    "userctl.verification",
    "userctl.chain",
)
APPLY_PROBE = PROBE.replace(
    'heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "jinja2") or '
    'm.startswith("sqlalchemy.orm"))',
    f"heavy = sorted(m for m in sys.modules if m in {APPLY_ONLY!r})",
)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_plan_imports_nothing_only_apply_or_verify_needs(
    db_url: str, factory: Factory, tmp_path: Path
) -> None:
    assert APPLY_PROBE != PROBE
    _organization(factory, tmp_path)
    env = {**os.environ, "USERCTL_DATABASE_URL": db_url, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", APPLY_PROBE, "plan", "-f", str(tmp_path / "org.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "first@acme.co" in proc.stdout, proc.stderr
    assert json.loads(proc.stderr.splitlines()[-1])["heavy"] == []
    # The same probe sees them where they are used: `from userctl.apply import apply_plan`
    # still finds the transaction.
    probe = APPLY_PROBE.replace(
        "from userctl.cli.main import main\nmain()",
        "import userctl.apply, userctl.chain\nuserctl.apply.apply_plan",
    )
    assert probe != APPLY_PROBE
    seen = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    heavy = json.loads(seen.stderr.splitlines()[-1])["heavy"]
    assert sorted(heavy) == sorted(APPLY_ONLY), seen.stderr


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


def test_audit_verify_of_an_intact_chain_never_imports_sqlalchemy(
    engine: Engine, db_url: str, factory: Factory
) -> None:
    """An intact chain is read and recomputed on the raw driver (db/thin.py, userctl/chain.py);
    anything wrong is worded by the SQLAlchemy path (apply/audit.py), word for word as before."""
    org = factory.org()
    head = seed(engine, org)
    code, loaded, out = _run(db_url, "audit", "verify", "--head", head)
    assert code == 0, out
    assert out.splitlines() == [
        f"audit chain intact: 5 events, head {head}",
        f"recorded head {head} is in the chain; 0 event(s) were appended after it",
    ]
    assert loaded == {"heavy": [], "sqlalchemy": False}
    code, loaded, out = _run(db_url, "audit", "verify", "--format", "json")
    assert code == 0 and json.loads(out)["events"] == 5 and json.loads(out)["head"] == head
    assert loaded == {"heavy": [], "sqlalchemy": False}

    # A head that is no event of the chain: the SQLAlchemy path says so.
    proc = _verify(db_url, "--head", "ab" * 32)
    assert proc.returncode == 4
    assert f"the recorded head {'ab' * 32} is no event of this chain" in proc.stderr

    with engine.begin() as conn:
        conn.execute(
            audit_events.update()
            .where(audit_events.c.organization_id == org, audit_events.c.seq == 3)
            .values(after=canonical_json({"first_name": "Mallory"}))
        )
    with engine.connect() as conn:
        problem = verify_chain(conn, org).problem
    assert problem is not None and "event #3" in problem and "was altered" in problem
    proc = _verify(db_url)
    assert proc.returncode == 4
    assert f"audit chain of acme-payments is broken: {problem}" in proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1])["sqlalchemy"] is True


def _verify(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "USERCTL_DATABASE_URL": db_url, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", PROBE, "audit", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
