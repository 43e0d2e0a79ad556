"""The CLI stays thin (CONTRIBUTING.md): a command module parses options, calls the layer below and
renders. One that opened its own transaction or built its own SQL would hold a second copy of
what apply/ and db/ enforce (the lock, the read-only snapshot, the schema check), out of reach
of their tests; one that grew long is on its way there."""

from __future__ import annotations

import ast
from dataclasses import dataclass
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


# A read-only command reads through ONE function of the layer below, called inside the read-only
# transaction the CLI opens (cli/context.reading): several reads composed in a command module are a
# query that the layer below's tests never see, and the next command that needs it copies it.
READ_BLOCKS = {"reading", "reading_database"}
# The layers that read: storage, the apply layer's reads, the desired-state files. The pure core
# and the renderers do no I/O, and may be called anywhere.
READ_LAYERS = ("userctl.db", "userctl.apply", "userctl.desired")


def _below(path: Path) -> tuple[set[str], set[str]]:
    """The names `path` imports from a reading layer: (functions and classes, modules)."""
    names: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(READ_LAYERS):
            for a in node.names:
                # `from userctl.apply import audit as trail` names a module; otherwise a function.
                sub = CLI.parent.joinpath(*node.module.split(".")[1:], a.name)
                is_module = sub.with_suffix(".py").exists() or sub.is_dir()
                (modules if is_module else names).add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.startswith(READ_LAYERS)}
    return names, modules


def _called(func: ast.expr) -> str:
    """`reading` for `reading()` and for `context.reading()` alike."""
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


@dataclass(frozen=True)
class Calls:
    """The calls under a node of the functions `names` and of the modules `modules` imported from
    a layer below, and those in the module's own `helpers` it calls (and theirs). A CamelCase name
    is a record carrying options, or a row type, not a step: not counted."""

    names: set[str]
    modules: set[str]
    helpers: dict[str, ast.FunctionDef]

    def __call__(self, node: ast.AST, seen: frozenset[str]) -> list[str]:
        found: list[str] = []
        for sub in ast.walk(node):
            if not isinstance(sub, ast.Call):
                continue
            func = sub.func
            if isinstance(func, ast.Name) and func.id in self.names and not func.id[:1].isupper():
                found.append(func.id)
            elif isinstance(func, ast.Name) and func.id in self.helpers and func.id not in seen:
                found += self(self.helpers[func.id], seen | {func.id})
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in self.modules
                and not func.attr[:1].isupper()
            ):
                found.append(f"{func.value.id}.{func.attr}")
        return found


def reads_in_blocks(path: Path) -> list[str]:
    """Each `with reading() ...:` block of `path` that calls more than one function of a reading
    layer, counting the calls of the module's own helpers it calls (one level is what a helper
    hides; a helper of a helper is counted too, through the same walk)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names, modules = _below(path)
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    found_in = Calls(names, modules, helpers)

    offending: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.With):
            continue
        opens = [
            item.context_expr
            for item in node.items
            if isinstance(item.context_expr, ast.Call)
            and _called(item.context_expr.func) in READ_BLOCKS
        ]
        if not opens:
            continue
        found = [c for stmt in node.body for c in found_in(stmt, frozenset())]
        if len(found) > 1:
            offending.append(f"{path.name}:{node.lineno}: reads {', '.join(found)}")
    return offending


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CLI)))
def test_a_read_only_command_calls_one_read_function(path: Path) -> None:
    assert reads_in_blocks(path) == []


def test_the_read_check_sees_functions_modules_and_helpers(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from userctl.apply import audit as trail\n"
        "from userctl.cli.context import reading\n"
        "from userctl.render.tables import render\n"
        "def helper(conn):\n"
        "    from userctl.db.snapshot import read_organization\n"
        "    return read_organization(conn, 'acme')\n"
        "def one():\n"
        "    with reading() as (conn, org_id, org):\n"
        "        events = trail.list_events(conn, org_id)\n"
        "    render(events)\n"
        "def two():\n"
        "    from userctl.db.listings import list_users\n"
        "    with reading() as (conn, org_id, org):\n"
        "        helper(conn)\n"
        "        render(list_users(conn, org_id))\n"
        "def three():\n"
        "    from userctl.cli import context\n"
        "    with context.reading() as (conn, org_id, org):\n"
        "        trail.list_events(conn, org_id)\n"
        "        trail.chain_head(conn, org_id)\n",
        encoding="utf-8",
    )
    assert reads_in_blocks(sample) == [
        "sample.py:13: reads read_organization, list_users",
        "sample.py:18: reads trail.list_events, trail.chain_head",
    ]


# Every command, writing ones too, makes ONE call into the layers below (apply/, db/, desired/):
# the steps of a write (plan, check, confirm, code, write, checkpoint, deliver) composed in a
# command module are an order of operations the layer below's tests never see. What only a
# terminal can do is handed down as callables (apply/entries.py). A record built to carry the
# parsed options (a CamelCase name, e.g. run.Source) is not a call of a step. A command's own
# helpers and nested functions are counted with it.
# Exceptions, each with its reason ({module: reason}); ideally none. Each is one step plus reading
# or shaping its input at the edge (issue 24 folded the rest into one entry below).
MANY_CALLS_ALLOWED: dict[str, str] = {
    "accounts_cmd.py": "reads the CSV file given (desired.reader.read_bounded), then one import",
    "activity_cmd.py": "reads the CSV file given (desired.reader.read_bounded), then one import",
    "db_cmd.py": "one migration; db.engine.redacted only formats the URL shown (no I/O)",
    "plan_cmd.py": "one plan_from_file, given plan_options (a record) inside prefetching's block",
    "validate_cmd.py": "one check_desired; desired_files names the file in a refusal's report",
}


def _is_command(node: ast.FunctionDef) -> bool:
    """A click command or group: decorated with `@click.command()`, `@x.command(...)` etc."""
    for dec in node.decorator_list:
        func = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(func, ast.Attribute) and func.attr in ("command", "group"):
            return True
    return False


def calls_below(path: Path) -> list[str]:
    """Each command of `path` that calls more than one function of apply/, db/ or desired/,
    counting the calls in the module's own helpers it calls (and theirs)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    found_in = Calls(*_below(path), helpers)
    offending: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and _is_command(node):
            found = found_in(node, frozenset({node.name}))
            if len(found) > 1:
                offending.append(f"{path.name}:{node.lineno}: calls {', '.join(found)}")
    return offending


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CLI)))
def test_a_command_makes_one_call_below(path: Path) -> None:
    if path.name in MANY_CALLS_ALLOWED:
        assert calls_below(path) != [], f"{path.name} no longer needs its exception: remove it"
        return
    assert calls_below(path) == []


def test_the_call_check_sees_a_composed_write(tmp_path: Path) -> None:
    # The shape apply_cmd.py had before apply/entries.py: several steps called in the command.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import click\n"
        "from userctl.apply import run\n"
        "from userctl.apply.transaction import code_can_confirm\n"
        "def helper(engine, plan):\n"
        "    return run.deliver_invitations(engine, plan)\n"
        "@click.command()\n"
        "def one(engine):\n"
        "    return run.apply_command(engine, run.Source(path='x'))\n"
        "@click.command()\n"
        "def many(engine):\n"
        "    plan = run.plan_to_apply(engine, run.Source(path='x'))\n"
        "    def attempt(given):\n"
        "        return code_can_confirm(engine, plan) and run.apply_now(engine, plan, given)\n"
        "    attempt(None)\n"
        "    helper(engine, plan)\n",
        encoding="utf-8",
    )
    assert calls_below(sample) == [
        # In ast.walk's order: breadth first, a helper's calls where the helper is called.
        "sample.py:10: calls run.plan_to_apply, run.deliver_invitations, code_can_confirm, "
        "run.apply_now"
    ]
