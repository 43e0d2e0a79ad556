"""No mutation of a desired-state file makes the loader fail on its own: with anchors, aliases,
plain `yes`, comments that read like them, and valid YAML the marked reader reads less often (a
plain scalar over two lines or holding a space YAML does not count as one, such as U+2003,
explicit document markers, quoted keys, CRLF), a file either loads or is refused, every problem
at FILE:LINE:COL, with one verdict whichever reader reads it, and every part of a loaded file
can be located (the planner's `locate`): never an uncaught exception.

Bounded: the same few hundred examples every run, in seconds."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.gen_org import generate
from userctl.desired.loader import load_desired, locate, read_yaml, text_problems
from userctl.desired.strict_yaml import UNREADABLE
from userctl.errors import InputError, Problem

BASE = generate(6, seed=7).splitlines()
# Text that a mutation drops in: what routes a file to the marked reader, or reads like it.
COMMENTS = ["# owner: *team*", "# reviewed: yes", "# &a", "# ? key", "# !!str", "# a: > b"]
VALUES = ["&a Ana", "*a", "yes", "No", "!!str x", "? k", "[a, {b: c}]", "{a: b,\n  c: d}", "''"]


def _mutate(lines: list[str], draw: st.DrawFn) -> list[str]:
    i = draw(st.integers(0, len(lines) - 1))
    line = lines[i]
    indent = line[: len(line) - len(line.lstrip(" "))]
    key, colon, value = line.partition(": ")
    kind = draw(st.sampled_from(range(10)))
    if kind == 0:  # a comment line
        lines.insert(i, indent + draw(st.sampled_from(COMMENTS)))
    elif kind == 1:  # a comment after the text
        lines[i] = line + "  " + draw(st.sampled_from(COMMENTS))
    elif kind == 2 and colon:  # a value the format refuses, or YAML the reader finds hard
        lines[i] = key + ": " + draw(st.sampled_from(VALUES))
    elif kind == 3 and colon and value:  # a plain scalar over two lines
        lines[i : i + 1] = [key + ": " + value, indent + "  more"]
    elif kind == 4 and colon:  # a quoted key
        lines[i] = f'{indent}"{key.strip()}": {value}'
    elif kind == 5:  # a blank line holding spaces, or a comment between a key and its value
        lines.insert(i, draw(st.sampled_from(["", "   ", indent + "#"])))
    elif kind == 6:  # explicit document markers
        lines[:0], lines[len(lines) :] = ["---"], ["..."]
    elif kind == 7:  # a line twice (a repeated key), or gone
        lines[i : i + 1] = draw(st.sampled_from([[line, line], []]))
    elif kind == 8 and colon and value:  # a number where a string belongs
        lines[i] = key + ": 0123"
    elif kind == 9 and colon and value:  # text, not a blank, to YAML (Python's \s matches it)
        lines[i] = line + draw(st.sampled_from(["\u2003x", "\u00a0x", "\u3000x", "\u2028x"]))
    return lines


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(BASE)
    for _ in range(draw(st.integers(1, 4))):
        lines = _mutate(lines, draw)
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"


def _located(problem: Problem) -> bool:
    return problem.file is not None and problem.line is not None and problem.col is not None


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=mutated())
def test_a_mutated_file_loads_or_is_refused_at_its_places(tmp_path: Path, text: str) -> None:
    problems = text_problems(text, "x.yaml")
    assert all(_located(p) for p in problems), (text, problems)
    # One verdict whichever reader reads it, and valid YAML is never beyond the marked reader.
    precise = read_yaml(text, "x.yaml", parser="precise")
    assert precise == read_yaml(text, "x.yaml"), text
    assert not any(UNREADABLE in p.message for p in problems + precise[1]), (text, problems)
    path = tmp_path / "x.yaml"
    path.write_bytes(text.encode("utf-8"))
    try:
        desired = load_desired(path)
    except InputError as exc:
        assert exc.problems and all(_located(p) for p in exc.problems), (text, exc.problems)
        assert problems, text  # the same verdict as validate's text check
        return
    assert not problems, (text, problems)
    # Every field of every user, located as the planner locates its findings.
    wanted = [
        Problem("x", ("users", email, field))
        for email, user in desired.users.items()
        for field in ("first_name", "role", "bank_accounts", "status")
    ]
    wanted += [Problem("x", ("roles", name), file=None) for name in desired.roles]
    assert all(_located(p) for p in locate(wanted, desired)), text


def test_a_no_break_space_in_a_name_leaves_the_problem_beside_it_located() -> None:
    # U+00A0 (pasted from a web page) is text to YAML; the marked reader once took it for a
    # blank, read the user short, and `validate` ended in "unexpected IndexError".
    lines = list(BASE)
    name = [i for i, line in enumerate(lines) if "first_name:" in line][2]
    number = [i for i, line in enumerate(lines) if "id_number:" in line][2]
    lines[name] += "\u00a0Maria"
    lines[number] = lines[number].replace('"', "")
    problems = text_problems("\n".join(lines) + "\n", "x.yaml")
    assert [(p.line, p.col) for p in problems] == [(number + 1, 16)], problems
