"""No input reaches the last-resort "unexpected" error: random bytes and mutations of real files
(the loader's fixtures, the example, saved plans) fed to `validate -f`, `plan -f`, `show PLAN`
and `apply PLAN` always end in a documented exit code (DESIGN §5: 0 to 4) with a message, never
a traceback or "Error: unexpected ...".

Mutations are what an adversary or an editor accident makes of a real file: flipped bytes, a
truncated end, a line twice, YAML syntax dropped in (anchors, aliases, tags, brackets, deep
nesting, huge numbers, NUL). Saved plans are also rewritten as JSON with their digest recomputed,
which anyone can do: that takes a mutation past the digest check, into the schema, the plan
reader, the renderers and apply's re-derivation.

Bounded: a few hundred examples in all, the same ones every run, in well under a minute.
USERCTL_FUZZ_EXAMPLES=N runs N times as many, new ones each time: a long local hunt.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from tests.apply.apply_helpers import build_org, drop_gone, every_change
from tests.cli.yaml_files import write_desired
from tests.conftest import Databases, Factory
from userctl.cli.main import cli
from userctl.db.engine import create_engine_for
from userctl.plan import compute_digest

ROOT = Path(__file__).parents[2]
FIXTURES = {
    p.name: p.read_bytes() for p in sorted((ROOT / "tests" / "fixtures" / "loader").glob("*.yaml"))
}
SEEDS = [*FIXTURES.values(), (ROOT / "examples" / "users.yaml").read_bytes()]
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4}
_EXPLORE = os.environ.get("USERCTL_FUZZ_EXAMPLES")
_SCALE = float(_EXPLORE or "1")

# What gets dropped into a file: YAML's dangerous or odd syntax, and bytes that are not text.
TOKENS = [
    b"&a ",
    b"*a",
    b"&a [1, 2]\n",
    b"<<: *a\n",
    b"!!python/object/apply:os.system ['true'] ",
    b"!!binary ",
    b"!tag ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"{a: ",
    b": ",
    b"- ",
    b"? ",
    b",",
    b"'",
    b'"',
    b"|",
    b">-\n",
    b"#",
    b"%YAML 1.1\n",
    b"---\n",
    b"...\n",
    b"\t",
    b"\r",
    b"\x00",
    b"\\0",
    b'"\\u0000"',
    b'"\\ud800"',
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"9" * 400,
    b"1e999",
    b"-0x1F",
    b"0o17",
    b".inf",
    b"~",
    b"null",
    b"yes",
    b"2024-01-01",
    b"=",
    b"${HOME}",
    b"[" * 300,
    b"{a: " * 200,
    b"- " * 150,
    "Аdmin".encode(),
    "\u202e".encode(),
    "é".encode(),
    b"\n" + b" " * 64,
    b"users:\n",
    b"roles:\n",
    b"version: 2\n",
    b"organization: [x]\n",
    b"\n  x: 1\n",
    # Values that keep a line's shape, so that the mutated file often gets past the schema into
    # the semantic rules and the planner: other roles, keys and people, wrong types, extremes.
    b"Admin",
    b"admin",
    b"OPS",
    b"Support",
    b"Legacy",
    b'""',
    b"[]",
    b"{}",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"99999999999999999999999",
    b"1.5",
    b'"+573000000001"',
    b'"9000001"',
    b"inactive",
    b"invited",
    b"disabled",
    b"root@acme.co",
    b"ROOT@acme.co",
    b"[ops-main, ops-main]",
    b"[ops-main, OPS-MAIN]",
    b"[payroll]",
    b"[nope]",
    b'"x"',
    b'"' + b"x" * 300 + b'"',
    '"Ана"'.encode(),
    "Pérez".encode(),
    b"[users.view, nope.view]",
]
_OPS = st.sampled_from(
    ["flip", "truncate", "duplicate_line", "insert", "delete", "nest", "value", "value", "value"]
)
MUTATIONS = st.lists(
    st.tuples(_OPS, st.integers(0, 2**31), st.integers(0, 2**31), st.sampled_from(TOKENS)),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, mutations: list[tuple[str, int, int, bytes]]) -> bytes:
    """`data` with each mutation applied in turn; positions are taken modulo the length."""
    for op, a, b, token in mutations:
        at = a % (len(data) + 1)
        if op == "flip" and data:
            i = a % len(data)
            data = data[:i] + bytes([data[i] ^ (1 << (b % 8))]) + data[i + 1 :]
        elif op == "truncate":
            data = data[:at]
        elif op == "duplicate_line":
            lines = data.splitlines(keepends=True)
            if lines:
                i = a % len(lines)
                lines.insert(i + b % 3, lines[i])
                data = b"".join(lines)
        elif op == "insert":
            data = data[:at] + token + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + b % 64 :]
        elif op == "value":
            # The value of a `key: value` line (or of a `- item`) becomes `token`.
            lines = data.splitlines(keepends=True)
            if lines:
                i = a % len(lines)
                head, sep, _ = lines[i].partition(b": ")
                if not sep:
                    head, sep, _ = lines[i].partition(b"- ")
                if sep:
                    lines[i] = head + sep + token + b"\n"
                    data = b"".join(lines)
        elif op == "nest":
            depth = 1 + b % 120
            data = data[:at] + b"[" * depth + token + b"]" * depth + data[at:]
    return data


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_documented(result: Result, what: str) -> None:
    """The contract of every command: a documented exit code, and a message, not a traceback."""
    output = result.stdout + result.stderr
    assert result.exit_code in DOCUMENTED_EXIT_CODES, f"{what}: exit {result.exit_code}\n{output}"
    assert "Traceback" not in output, f"{what}:\n{output}"
    assert not any(line.startswith("Error: unexpected") for line in result.stderr.splitlines()), (
        f"{what}:\n{output}"
    )
    if result.exit_code == 1:
        assert result.stderr.strip(), f"{what}: exit 1 without a message"


def examples(n: int) -> Any:
    return settings(
        max_examples=max(1, round(n * _SCALE)),
        deadline=None,
        # The suite runs the same examples every time (a failure is reproducible, never flaky); a
        # long local run (USERCTL_FUZZ_EXAMPLES) explores new ones.
        derandomize=_EXPLORE is None,
        database=None,  # no example database in the work tree
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


class Workspace:
    """A directory for the examples' files, the database's URL, files that plan against it (the
    planner runs on their mutations) and plans of them saved by `plan --out`."""

    def __init__(
        self, directory: Path, db_url: str, desired: list[bytes], plans: list[bytes]
    ) -> None:
        self.dir = directory
        self.db_url = db_url
        self.desired = desired
        self.plans = plans
        self.counter = 0

    def __repr__(self) -> str:  # hypothesis shows it with a failing example: not the files
        return f"Workspace({str(self.dir)!r})"

    def write(self, data: bytes, suffix: str) -> str:
        # One file per example: a reused name must not mix two examples.
        self.counter += 1
        path = self.dir / f"case{self.counter}{suffix}"
        path.write_bytes(data)
        return str(path)


@pytest.fixture(scope="module")
def workspace(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workspace]:
    """A migrated SQLite database holding the apply tests' organization, desired states of it and
    plans of them saved by `plan --out`."""
    directory = tmp_path_factory.mktemp("fuzz")
    db = directory / "fuzz.db"
    shutil.copyfile(make_url(databases.migrated_url("sqlite")).database or "", db)
    url = f"sqlite:///{db}"
    engine = create_engine_for(url)
    try:
        build_org(Factory(engine))
        every, options = every_change(engine)
        small = write_desired(directory / "drop-gone.yaml", drop_gone(engine))
        large = write_desired(directory / "every-change.yaml", every)
    finally:
        engine.dispose()
    plans = []
    for desired, extra in (
        (small, ()),
        (large, ("--replace", "re@acme.co", "--operator", str(options["operator"]))),
    ):
        out = desired.with_suffix(".json")
        result = run("--database-url", url, "plan", "-f", str(desired), "--out", str(out), *extra)
        assert result.exit_code == 0, result.output
        plans.append(out.read_bytes())
    yield Workspace(directory, url, [small.read_bytes(), large.read_bytes()], plans)


@pytest.fixture(autouse=True)
def _no_organization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USERCTL_ORGANIZATION", raising=False)


# --- desired-state files ------------------------------------------------------------------------


@examples(250)
@given(seed=st.sampled_from(SEEDS), mutations=MUTATIONS)
# What it found, kept: a file of two BOMs (loaded as no document, with no problem: IndexError), and
# a user's role written as a list (looked up among the roles: "unhashable type: 'list'").
@example(
    seed=FIXTURES["valid_bom.yaml"],
    mutations=[("truncate", 3, 0, b""), ("duplicate_line", 0, 0, b"")],
)
@example(
    seed=FIXTURES["invalid_flow_continuation.yaml"],
    mutations=[("value", 14, 0, b"[ops-main, ops-main]")],
)
def test_validate_of_a_mutated_file(
    workspace: Workspace, seed: bytes, mutations: list[tuple[str, int, int, bytes]]
) -> None:
    path = workspace.write(mutate(seed, mutations), ".yaml")
    assert_documented(run("validate", "-f", path), path)


@examples(60)
@given(data=st.binary(max_size=3000))
def test_validate_of_random_bytes(workspace: Workspace, data: bytes) -> None:
    path = workspace.write(data, ".yaml")
    assert_documented(run("validate", "-f", path), path)


@examples(80)
@given(seed=st.integers(0, len(SEEDS) - 1), ours=st.booleans(), mutations=MUTATIONS)
def test_plan_of_a_mutated_file(
    workspace: Workspace, seed: int, ours: bool, mutations: list[tuple[str, int, int, bytes]]
) -> None:
    # Half the time a file of the database's organization, whose mutations reach the planner.
    data = workspace.desired[seed % len(workspace.desired)] if ours else SEEDS[seed]
    path = workspace.write(mutate(data, mutations), ".yaml")
    assert_documented(
        run("--database-url", workspace.db_url, "plan", "-f", path, "--detailed-exitcode"), path
    )


# --- saved plans --------------------------------------------------------------------------------

# Values a rewritten plan puts anywhere: wrong types, extremes, and strings that are not names.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "",
            "x" * 2000,
            "\x00",
            "Аdmin",
            'role["x"]',
            'user["root@acme.co"]',
            "2024-13-45T99:00:00Z",
            "user.create",
            "delete",
            "sha256:" + "0" * 64,
            "\ufffd",
            "\ud800",
        ]
    ),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.recursive(st.none(), lambda inner: st.lists(inner, max_size=2), max_leaves=60),
)
SIGNED = (
    "format_version",
    "organization",
    "two_factor_policy",
    "changes",
    "preconditions",
    "options",
    "provenance",
)


def rewrite(plan: dict[str, Any], steps: list[tuple[int, int, Any]]) -> dict[str, Any]:
    """`plan` with some nested values replaced, removed or duplicated, and its digest recomputed."""
    for pick, action, value in steps:
        parent, key = _pick(plan, pick)
        if action % 3 == 0 or key is None:
            if key is not None:
                parent[key] = value
        elif action % 3 == 1 and isinstance(parent, dict):
            parent.pop(key, None)
        elif isinstance(parent, list) and isinstance(key, int):
            parent.insert(key, json.loads(json.dumps(parent[key])))
    content = {k: plan[k] for k in SIGNED if k in plan}
    try:
        plan["digest"] = compute_digest(content)
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8: no digest can cover it
        plan["digest"] = "sha256:" + "0" * 64
    return plan


def _pick(node: Any, pick: int) -> tuple[Any, Any]:
    """A (container, key) somewhere in `node`, chosen by `pick`."""
    parent: Any = node
    key: Any = None
    while True:
        keys = (
            list(parent)
            if isinstance(parent, dict)
            else list(range(len(parent)))
            if isinstance(parent, list)
            else []
        )
        if not keys:
            return parent, key
        key = keys[pick % len(keys)]
        pick //= len(keys) + 1
        child = parent[key]
        if pick % 3 == 0 or not isinstance(child, (dict, list)) or not child:
            return parent, key
        parent = child


def _plan_commands(workspace: Workspace, path: str) -> list[tuple[str, ...]]:
    return [
        ("show", path),
        ("show", path, "--format", "markdown"),
        ("--database-url", workspace.db_url, "apply", path, "--operator", "x", "--yes"),
    ]


@examples(70)
@given(which=st.integers(0, 1), mutations=MUTATIONS)
def test_a_mutated_saved_plan(
    workspace: Workspace, which: int, mutations: list[tuple[str, int, int, bytes]]
) -> None:
    path = workspace.write(mutate(workspace.plans[which], mutations), ".json")
    for args in _plan_commands(workspace, path):
        assert_documented(run(*args), f"{args} on {path}")


@examples(90)
@given(
    which=st.integers(0, 1),
    steps=st.lists(
        st.tuples(st.integers(0, 2**31), st.integers(0, 2), JSON_VALUES), min_size=1, max_size=3
    ),
)
def test_a_rewritten_saved_plan_with_its_digest_recomputed(
    workspace: Workspace, which: int, steps: list[tuple[int, int, Any]]
) -> None:
    plan = rewrite(json.loads(workspace.plans[which]), steps)
    try:
        text = json.dumps(plan, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: written escaped, as JSON allows
        text = json.dumps(plan).encode("ascii")
    path = workspace.write(text, ".json")
    for args in _plan_commands(workspace, path):
        assert_documented(run(*args), f"{args} on {path}")


# --- found by this module, fixed since ------------------------------------------------------------


@pytest.mark.parametrize("where", ["organization", "note"])
def test_a_saved_plan_holding_a_lone_surrogate_is_refused_cleanly(
    workspace: Workspace, where: str
) -> None:
    """JSON can spell a lone surrogate (an escape), UTF-8 cannot hold it, so no digest covers it:
    the saved plan is refused as input, never an unexpected error."""
    plan = json.loads(workspace.plans[0])
    if where == "organization":
        plan["organization"] = "\ud800"
    else:
        plan["changes"][0]["note"] = "\ud800"
    path = workspace.write(json.dumps(plan).encode("ascii"), ".json")
    for args in _plan_commands(workspace, path):
        result = run(*args)
        assert_documented(result, f"{args} on {path}")
        assert result.exit_code not in (0, 70), (args, result.output)


@pytest.mark.parametrize("text", ["{{a: [1]}: 1}\n", "? {a: {b: 1}}\n: 1\n"], ids=["flow", "block"])
def test_a_key_that_is_a_mapping_holding_a_list_is_a_problem(tmp_path: Path, text: str) -> None:
    f = tmp_path / "users.yaml"
    f.write_text(text, encoding="utf-8")
    result = run("validate", "-f", str(f))
    assert_documented(result, text)
    assert "keys must be plain strings" in result.stderr


def test_an_assignment_whose_key_lacks_the_bank_account_is_refused(workspace: Workspace) -> None:
    plan = json.loads(workspace.plans[0])
    assignment = next(c for c in plan["changes"] if c["kind"] == "assignment")
    assignment["key"] = assignment["key"][:1]
    path = workspace.write(json.dumps(plan).encode(), ".json")
    result = run("show", path)
    assert_documented(result, path)
    assert result.exit_code == 1 and "saved plan is malformed" in result.stderr


def test_a_saved_plan_holding_a_lone_surrogate_is_refused(workspace: Workspace) -> None:
    plan = json.loads(workspace.plans[0])
    address = next(iter(plan["preconditions"]))
    plan["preconditions"][address] = "\ud800"  # where a pattern is matched: the string goes to Rust
    path = workspace.write(json.dumps(plan).encode(), ".json")  # as the escape \ud800: ASCII JSON
    result = run("show", path)
    assert_documented(result, path)
    assert result.exit_code == 1 and "saved plan is malformed" in result.stderr
