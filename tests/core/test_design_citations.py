"""The code cites its design as `DESIGN §N`: every citation must name a section that exists in
docs/design.md (issue 20, part 3), so whoever follows one finds the contract it refers to."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
# A citation may wrap between "DESIGN" and "§N" in a comment.
CITATION = re.compile(r"DESIGN\s*(?:#\s*)?§+\s*([0-9]+[a-z]?)")


def sections() -> set[str]:
    text = DESIGN.read_text(encoding="utf-8")
    return set(re.findall(r"^## ([0-9]+[a-z]?)\. ", text, flags=re.MULTILINE))


def citations() -> dict[str, set[str]]:
    """Each cited section -> the files citing it, over src/ and tests/."""
    found: dict[str, set[str]] = {}
    for folder in ("src", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for section in CITATION.findall(path.read_text(encoding="utf-8")):
                found.setdefault(section, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_design_citation_names_a_section_of_docs_design() -> None:
    cited = citations()
    assert len(cited) >= 5, "the citation pattern no longer finds the code's citations"
    missing = {s: sorted(files) for s, files in cited.items() if s not in sections()}
    assert missing == {}


def test_the_design_keeps_its_numbering_and_its_trust_invariants() -> None:
    assert {"1", "1b", "2", "3", "4", "5", "6", "7", "8"} <= sections()
    text = DESIGN.read_text(encoding="utf-8")
    invariants = text.split("## 8. Trust invariants", 1)[1]
    assert len(re.findall(r"^ ?[0-9]+\. \*\*", invariants, flags=re.MULTILINE)) == 10
    assert invariants.count("Enforced by:") == 10


def test_the_pattern_sees_every_way_the_code_writes_a_citation() -> None:
    text = "(DESIGN §1b) DESIGN §4, step 3; DESIGN §§5 (DESIGN\n# §9)"
    assert CITATION.findall(text) == ["1b", "4", "5", "9"]


def test_every_name_the_trust_invariants_give_exists() -> None:
    """The design names the one place each invariant is enforced: a renamed or removed function
    must not leave the design pointing at nothing."""
    import importlib

    invariants = DESIGN.read_text(encoding="utf-8").split("## 8. Trust invariants", 1)[1]
    names = set(re.findall(r"`(userctl(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`", invariants))
    assert len(names) >= 20
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                target: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            try:
                for attr in parts[cut:]:
                    target = getattr(target, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert missing == []
