"""The published JSON Schemas: schemas/ is the packaged folder itself (a schema edited in one
place only would document one output and check another), each is a valid draft 2020-12 schema
that a user can find by its `$id` and title, and docs/reference.md lists every one."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "schemas"
PACKAGED = ROOT / "src" / "userctl" / "schemas"
NAMES = sorted(p.name for p in PUBLISHED.glob("*.json"))


def test_the_schemas_folder_is_the_packaged_folder() -> None:
    # schemas/ is a link to the package's folder: one copy, which the package ships and checks with.
    assert PUBLISHED.is_symlink() and PUBLISHED.resolve() == PACKAGED.resolve()


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_is_valid_and_names_itself(name: str) -> None:
    doc = json.loads((PUBLISHED / name).read_text(encoding="utf-8"))
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(doc)
    # The desired-state format keeps the id editors already know it by; outputs are found by URL.
    assert doc["$id"] == (
        "urn:userctl:schema:desired-state:1"
        if name == "userctl.schema.json"
        else f"https://userctl.dev/schemas/{name}"
    )
    assert doc["title"] and doc["description"]


def test_the_reference_lists_every_schema() -> None:
    reference = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert [n for n in NAMES if f"`{n}`" not in reference] == []


def test_github_annotations_escape_per_githubs_rules() -> None:
    from userctl.errors import Problem
    from userctl.render.results import github_annotation

    problem = Problem(
        "100% wrong\r\nsecond line: a, b", ("users", "a@x.co"), "dir,1:2/users.yaml", 3, None
    )
    assert github_annotation(problem) == (
        "::error file=dir%2C1%3A2/users.yaml,line=3,col=1::users.a@x.co: "
        "100%25 wrong%0D%0Asecond line: a, b"
    )
    assert (
        github_annotation(Problem("no place \u202e", (), "f.yaml"))
        == "::error file=f.yaml::(document): no place \\u202e"
    )
    assert github_annotation(Problem("nowhere")) == "::error::(document): nowhere"
