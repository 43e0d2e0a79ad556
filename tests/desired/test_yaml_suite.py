"""Conformance: every case of the official YAML test suite through the loader's parse step
(loader.read_yaml). A valid case loads to exactly its in.json data, or is refused for a rule of the
desired-state format with FILE:LINE:COL; an invalid case is refused; nothing crashes. The valid
cases refused for anything else would be KNOWN_GAPS, each with its reason: yaml_rs decides every
value, and userctl's marked reader, which gives the marks and the scalar styles, reads every case
of the suite (none is a gap today)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from userctl.desired.loader import read_yaml
from userctl.errors import Problem

# ../shared/ beside the checkout (CI's layout); the machine's own copy otherwise.
_ROOT = Path(__file__).resolve().parents[2]
SUITE = next(
    (
        p
        for p in (
            Path(os.environ.get("YAML_TEST_SUITE", "/nonexistent")),
            _ROOT.parent / "shared" / "yaml-test-suite",
            Path("/work/shared/yaml-test-suite"),
        )
        if p.is_dir()
    ),
    None,
)
CASES = sorted(str(p.parent.relative_to(SUITE)) for p in SUITE.rglob("in.yaml")) if SUITE else []

# The format's own rules (DESIGN §2), as their messages begin: a refusal for one of them is a
# verdict of the format, not a gap of the parser.
FORMAT_RULES = (
    "anchors (",
    "aliases (",
    "tags (",
    "directives (",
    "several YAML documents",
    "keys must be",
    "is ambiguous in YAML",
    "${...} substitution",
    "merge keys",
    "the file is empty",
    "nested more than",
    "contains ",  # a refused character (names.hidden_characters)
    "is not in Unicode NFC",
    "ends with a line break",
)

# Valid cases refused for no rule of the format, with the reason: none today.
KNOWN_GAPS: dict[str, str] = {}


def _documents(text: str) -> list[Any]:
    decoder, i, found = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return found
        value, i = decoder.raw_decode(text, i)
        found.append(value)


def _data(value: Any) -> str:
    """`value` as JSON data: key order aside, true is not 1, 1 is not 1.0."""
    return json.dumps(value, sort_keys=True)


def _is_format_rule(problem: Problem) -> bool:
    return any(rule in problem.message for rule in FORMAT_RULES)


def verdict(case: str) -> str:
    """match / format refusal / known gap / invalid refused / accepted (no in.json), or what is
    wrong."""
    assert SUITE is not None
    folder = SUITE / case
    text = (folder / "in.yaml").read_bytes().decode("utf-8")
    value, problems = read_yaml(text, "in.yaml")
    assert all(p.line is not None and p.col is not None for p in problems), problems
    if (folder / "error").exists():
        return "invalid refused" if problems else "INVALID ACCEPTED"
    if not problems:
        if not (folder / "in.json").exists():
            return "accepted (no in.json)"
        expected = _documents((folder / "in.json").read_text(encoding="utf-8"))
        if len(expected) == 1 and _data(value) == _data(expected[0]):
            return "match"
        return f"MISMATCH: {value!r} is not {expected!r}"
    if any(_is_format_rule(p) for p in problems):
        return "format refusal"
    if case not in KNOWN_GAPS:
        return f"UNLISTED GAP: {problems[0]}"
    return "known gap"


needs_suite = pytest.mark.skipif(SUITE is None, reason="the YAML test suite is not on this machine")


@needs_suite
@pytest.mark.parametrize("case", CASES)
def test_each_case_is_read_as_the_spec_says_or_refused_for_a_rule(case: str) -> None:
    assert verdict(case) in (
        "match",
        "format refusal",
        "known gap",
        "invalid refused",
        "accepted (no in.json)",
    )


@needs_suite
def test_the_counts_and_the_known_gaps_hold() -> None:
    found: dict[str, list[str]] = {}
    for case in CASES:
        found.setdefault(verdict(case), []).append(case)
    counts = {kind: len(cases) for kind, cases in found.items()}
    # The closing note of issue 22 quotes these: a change in them is a change of the grammar.
    assert counts == {
        "match": 169,
        "format refusal": 138,
        "invalid refused": 94,
        "accepted (no in.json)": 1,  # 4ABK: valid, with no in.json to compare with
    }
    assert sorted(found.get("known gap", [])) == sorted(KNOWN_GAPS)  # no stale entry
    assert len(CASES) == 402


@needs_suite
@pytest.mark.parametrize("case", CASES)
def test_each_case_gets_one_verdict_whichever_way_it_is_read(case: str) -> None:
    """The fast path (yaml_rs, when the scan vouches for the text) and the marked one give the same
    verdict, and the same value when valid."""
    assert SUITE is not None
    text = (SUITE / case / "in.yaml").read_bytes().decode("utf-8")
    fast, fast_problems = read_yaml(text, "in.yaml")
    marked, marked_problems = read_yaml(text, "in.yaml", parser="precise")
    assert bool(fast_problems) == bool(marked_problems), (fast_problems, marked_problems)
    if not fast_problems:
        assert _data(fast) == _data(marked)


@needs_suite
def test_validate_refuses_every_case_cleanly(tmp_path: Path) -> None:
    """Through the real CLI: no suite case is a desired state, so each is refused with exit 1
    and located problems, never a traceback (the same reader as the parse step above)."""
    from click.testing import CliRunner

    from userctl.cli.main import cli

    assert SUITE is not None
    f = tmp_path / "in.yaml"
    for case in CASES:
        f.write_bytes((SUITE / case / "in.yaml").read_bytes())
        result = CliRunner().invoke(cli, ["validate", "-f", str(f)], catch_exceptions=False)
        assert result.exit_code == 1, (case, result.output)
        assert "Traceback" not in result.output and "Error: unexpected" not in result.stderr, case
        lines = [line for line in result.stderr.splitlines() if line.startswith(f"{f}:")]
        assert lines, (case, result.stderr)
