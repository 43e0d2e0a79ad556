"""`userctl export` round-trips or says why not (issue 19 part 5): a value the loader would refuse
is never written. The platform writes the database, so the hostile values go in by plain SQL;
export then exits 1 naming each offending row and column in one sentence, and writes nothing
(no file, no partial file, nothing on stdout). Hypothesis writes hostile values of every kind and
shows that export either refuses naming the row, or writes a file that plans to "No changes".
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Final

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Runner
from userctl.db import tables
from userctl.desired.semantic import fold
from userctl.printable import printable


def _org(factory: Factory) -> int:
    org = factory.org("acme-payments")
    admin = factory.role(org, "Admin", ["users.view", "users.manage"], "Full access")
    factory.role(org, "Viewer", ["users.view"], "Reads")
    factory.operator(org, "root@acme.co", admin, first_name="Root", last_name="Admin")
    ana = factory.user(org, "ana@acme.co", admin, first_name="Ana", last_name="Pérez")
    factory.assign(ana, factory.bank_account(org, "ops-main"))
    return org


def _sql(engine: Engine, table: str, column: str, where: tuple[str, str], value: str) -> None:
    """What a platform does: write the row, no userctl rule in between (an UPDATE built by
    SQLAlchemy only for its quoting: `key` is a reserved word on MariaDB)."""
    t = tables.metadata.tables[table]
    with engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c[where[0]] == where[1]).values({column: value}))


def _refused(runner: Runner, out: Path) -> list[str]:
    """Export to `out` and to stdout: both refused, exit 1, nothing written; the lines said."""
    to_file = runner("export", "-o", str(out))
    assert to_file.exit_code == 1, to_file.output
    assert not out.exists() and not list(out.parent.iterdir())
    to_stdout = runner("export")
    assert to_stdout.exit_code == 1 and to_stdout.stdout == ""
    assert to_stdout.stderr == to_file.stderr
    assert "Traceback" not in to_file.stderr and "unexpected" not in to_file.stderr
    lines = to_file.stderr.splitlines()
    assert lines[-1].startswith("export: nothing was written: the file would hold ")
    return lines[:-1]


HOSTILE: Final = [
    # (table, column, which row, the value the platform writes, the row and column named with
    # what the loader says)
    (
        "roles",
        "description",
        ("name", "Viewer"),
        "reads\tall",
        'export: roles row "Viewer", column description: contains U+0009 CHARACTER TABULATION',
    ),
    (
        "users",
        "first_name",
        ("email", "ana@acme.co"),
        "${USER}",
        'export: users row "ana@acme.co", column first_name: ${...} substitution is not supported',
    ),
    (
        "users",
        "last_name",
        ("email", "ana@acme.co"),
        "P\u202eérez",
        'export: users row "ana@acme.co", column last_name: contains U+202E RIGHT-TO-LEFT OVERRIDE',
    ),
    (
        "users",
        "last_name",
        ("email", "ana@acme.co"),
        unicodedata.normalize("NFD", "Pérez"),
        'export: users row "ana@acme.co", column last_name: is not in Unicode NFC form',
    ),
    (
        "roles",
        "name",
        ("name", "Viewer"),
        "Аdmin",  # a Cyrillic А
        'export: roles row "Аdmin", column name: mixes scripts',
    ),
    (
        "bank_accounts",
        "key",
        ("key", "ops-main"),
        "ops\u200bmain",
        'export: bank_accounts row "ops\\u200bmain" (assigned to "ana@acme.co"), column key: '
        "contains U+200B ZERO WIDTH SPACE",
    ),
]


@pytest.mark.parametrize(("table", "column", "where", "value", "named"), HOSTILE)
def test_a_value_the_loader_refuses_is_named_and_nothing_is_written(
    runner: Runner,
    factory: Factory,
    engine: Engine,
    tmp_path: Path,
    table: str,
    column: str,
    where: tuple[str, str],
    value: str,
    named: str,
) -> None:
    _org(factory)
    assert runner("export").exit_code == 0  # the organization exports before the platform writes
    _sql(engine, table, column, where, value)
    out = tmp_path / "out" / "users.yaml"
    out.parent.mkdir()
    lines = _refused(runner, out)
    assert len(lines) == 1, lines
    assert lines[0].startswith(named), lines
    # Shown, never raw: the sentence quotes the name with its hidden characters escaped.
    assert all(ch.isprintable() for ch in lines[0])


@pytest.mark.parametrize("backend", ["sqlite"])  # the servers' columns refuse it themselves
def test_an_over_long_description_is_refused(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    _org(factory)
    _sql(engine, "roles", "description", ("name", "Viewer"), "x" * 501)
    out = tmp_path / "out" / "users.yaml"
    out.parent.mkdir()
    lines = _refused(runner, out)
    assert len(lines) == 1 and lines[0].startswith(
        'export: roles row "Viewer", column description: '
    ), lines
    assert "500" in lines[0]


def test_lookalike_roles_are_refused_each_row_named(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    org = _org(factory)
    factory.role(org, "viewer", ["users.view"], "the same name to a reader")
    _sql(engine, "users", "first_name", ("email", "root@acme.co"), "R\x1b[2Joot")
    out = tmp_path / "out" / "users.yaml"
    out.parent.mkdir()
    lines = _refused(runner, out)
    assert len(lines) == 2, lines
    assert lines[0].startswith('export: roles row "viewer", column name: '), lines
    assert "Viewer" in lines[0] and "line" not in lines[0]  # no line of a file never written
    assert lines[1].startswith('export: users row "root@acme.co", column first_name: contains ')
    assert "\x1b" not in "".join(lines) and "\\x1b[2J" not in lines[1]  # the value is not quoted


def test_an_existing_file_is_left_as_it_was(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    _org(factory)
    out = tmp_path / "repo" / "users.yaml"
    out.parent.mkdir()
    assert runner("export", "-o", str(out)).exit_code == 0
    before = out.read_bytes()
    _sql(engine, "roles", "description", ("name", "Admin"), "all\u0085access")
    refused = runner("export", "-o", str(out))
    assert refused.exit_code == 1
    assert 'roles row "Admin", column description: contains U+0085 NEXT LINE' in refused.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["users.yaml"]


# --- property: refused naming the row, or planned to no changes ---

# What a platform may write into a text column: plain text, and the characters and spellings the
# loader refuses or that YAML gives a meaning to.
_HOSTILE_PIECES: Final = [
    "\t",
    "\n",
    "\r",
    "\x1b[31m",
    "\x07",
    "\x7f",
    "\u0085",
    "\u200b",
    "\u2028",
    "\u202e",
    "\u2066",
    "\ufeff",
    "${USER}",
    "e\u0301",  # NFD
    "\u0410",  # Cyrillic А
    "'",
    '"',
    "\\",
    ": ",
    " #",
    "&a",
    "*a",
    "!t",
    "yes",
    " ",
    "-",
]
_TEXT: Final = st.lists(
    st.one_of(
        st.sampled_from(_HOSTILE_PIECES),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x24F), max_size=6),
    ),
    min_size=1,
    max_size=6,
).map("".join)
_COLUMNS: Final = [
    ("roles", "name", ("name", "Viewer"), "roles row {v}, column name"),
    ("roles", "description", ("name", "Viewer"), 'roles row "Viewer", column description'),
    ("users", "first_name", ("email", "ana@acme.co"), 'users row "ana@acme.co", column first_name'),
    ("users", "last_name", ("email", "ana@acme.co"), 'users row "ana@acme.co", column last_name'),
]


@pytest.mark.parametrize("backend", ["sqlite"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(column=st.sampled_from(_COLUMNS), value=_TEXT)
@example(column=_COLUMNS[1], value="tab\there")
@example(column=_COLUMNS[0], value="viewer")
@example(column=_COLUMNS[2], value="Ana María")
def test_export_refuses_naming_the_row_or_plans_to_no_changes(
    runner: Runner,
    factory: Factory,
    engine: Engine,
    tmp_path_factory: pytest.TempPathFactory,
    column: tuple[str, str, tuple[str, str], str],
    value: str,
) -> None:
    table, name, where, named = column
    with engine.begin() as conn:
        for t in reversed(tables.metadata.sorted_tables):
            conn.execute(t.delete())
    _org(factory)
    if table == "roles" and name == "name" and fold(value) == fold("Admin"):
        value = value + "x"  # a second "Admin": which of the two is named is not this test's point
    _sql(engine, table, name, where, value)
    out = tmp_path_factory.mktemp("export") / "users.yaml"
    result = runner("export", "-o", str(out))
    if result.exit_code == 1:
        assert not out.exists()
        lines = result.stderr.splitlines()
        assert lines[-1].startswith("export: nothing was written"), lines
        # The row is named as JSON quotes it, and shown with its hidden characters escaped.
        shown = printable("export: " + named.format(v=json.dumps(value, ensure_ascii=False)))
        assert any(line.startswith(shown + ": ") for line in lines[:-1]), (shown, lines)
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
        return
    assert result.exit_code == 0, result.output
    planned = runner("plan", "-f", str(out), "--detailed-exitcode")
    assert planned.exit_code == 0, (value, planned.output)
    assert "No changes." in planned.stdout
