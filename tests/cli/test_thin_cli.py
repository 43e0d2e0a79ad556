"""The CLI stays thin (CONTRIBUTING.md): a command module parses options, calls the layer below and
renders. One that opened its own transaction or built its own SQL would hold a second copy of
what apply/ and db/ enforce (the lock, the read-only snapshot, the schema check), out of reach
of their tests; one that grew long is on its way there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "src" / "userctl" / "cli"
MAX_LINES = 150
# What opens a transaction, or runs a statement, in db/ and apply/.
TRANSACTIONS = {"begin", "begin_read", "begin_write", "connect", "locked_write", "execute"}
# What builds SQL: SQLAlchemy's statement builders, and the table definitions they read.
SQL_BUILDERS = {"select", "insert", "update", "delete", "text", "func", "bindparam", "literal"}
SQL_MODULES = {"sqlalchemy", "sqlalchemy.sql", "userctl.db.tables", "userctl.db.models"}

# Packages below cli/ (the file writer, cli/outputs/) are held to the same rules.
MODULES = sorted(CLI.rglob("*.py"))


def offences(path: Path) -> list[str]:
    """Where `path` opens a transaction, runs a statement or builds SQL itself."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in TRANSACTIONS:
                found.append(f"{path.name}:{line}: calls {name}()")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module in SQL_MODULES or node.module.startswith("sqlalchemy.sql"):
                found.append(f"{path.name}:{line}: imports from {node.module}")
            elif node.module.startswith("sqlalchemy"):
                found += [
                    f"{path.name}:{line}: imports {a.name}"
                    for a in node.names
                    if a.name in SQL_BUILDERS
                ]
            elif node.module == "userctl.db":
                found += [
                    f"{path.name}:{line}: imports db.{a.name}"
                    for a in node.names
                    if a.name in ("tables", "models")
                ]
        elif isinstance(node, ast.Import):
            found += [
                f"{path.name}:{line}: imports {a.name}" for a in node.names if a.name in SQL_MODULES
            ]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CLI)))
def test_no_cli_module_opens_a_transaction_or_builds_sql(path: Path) -> None:
    assert offences(path) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CLI)))
def test_no_cli_module_grows_past_its_bound(path: Path) -> None:
    # No exceptions: the file writer too is a package of modules under the bound.
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(CLI)}: {lines} lines"


def test_the_modules_include_the_packages_below_cli() -> None:
    assert CLI / "outputs" / "packs.py" in MODULES


def test_the_check_sees_each_way_in(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from sqlalchemy import select, Engine\n"
        "from userctl.db import tables\n"
        "import sqlalchemy\n"
        "from userctl.db.models import User\n"
        "from userctl.db.engine import begin_read\n"
        "def f(engine, conn):\n"
        "    with begin_read(engine) as c:\n"
        "        c.execute(select(User))\n"
        "    locked_write(engine, 'acme', f)\n",
        encoding="utf-8",
    )
    lines = sorted(int(hit.split(":")[1]) for hit in offences(sample))
    assert lines == [1, 2, 3, 4, 7, 8, 9]
