"""The editor works out of the box: yaml-language-server, the engine of the YAML extensions of VS
Code, Neovim and others, driven over LSP. A team keeps users.yaml with `userctl schema >
userctl.schema.json` beside it, as the README says: the example's schema link resolves there and
in examples/, the example validates with no diagnostics, a broken file is flagged at its line,
and every completion that inserts a value inserts one the schema accepts."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from tests.desired.yaml_language_server import YamlLanguageServer
from userctl.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMA = json.loads((ROOT / "schemas" / "userctl.schema.json").read_text(encoding="utf-8"))
MODELINE = "# yaml-language-server: $schema=userctl.schema.json"


def defaults(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "default" in node:
            yield path, node
        for key, value in node.items():
            yield from defaults(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from defaults(value, f"{path}/{i}")


def test_every_default_of_the_schema_is_a_valid_value() -> None:
    """What an editor inserts for a default must be accepted: `expires: null` and a `0` under a
    minimum of 1 were not."""
    found = list(defaults(SCHEMA))
    assert found
    for path, node in found:
        own = {k: v for k, v in node.items() if k != "default"}
        validator = jsonschema.Draft202012Validator({**own, "$defs": SCHEMA.get("$defs", {})})
        assert list(validator.iter_errors(node["default"])) == [], path


def test_the_example_links_the_schema_kept_beside_it() -> None:
    first = (EXAMPLES / "users.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == MODELINE
    beside = EXAMPLES / "userctl.schema.json"
    assert json.loads(beside.read_text(encoding="utf-8")) == SCHEMA


def the_schema_as_userctl_prints_it() -> str:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YamlLanguageServer]:
    lsp = YamlLanguageServer(tmp_path_factory.mktemp("workspace"))
    yield lsp
    lsp.close()


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """A team's repository: the example at its root, the schema written beside it by userctl."""
    shutil.copy(EXAMPLES / "users.yaml", tmp_path / "users.yaml")
    (tmp_path / "userctl.schema.json").write_text(the_schema_as_userctl_prints_it(), "utf-8")
    return tmp_path


def test_the_example_validates_where_a_team_keeps_it(
    server: YamlLanguageServer, team: Path
) -> None:
    assert server.diagnostics(server.open(team / "users.yaml")) == []


def test_the_example_validates_in_place(server: YamlLanguageServer) -> None:
    assert server.diagnostics(server.open(EXAMPLES / "users.yaml")) == []


def test_a_file_whose_schema_is_missing_is_reported(
    server: YamlLanguageServer, tmp_path: Path
) -> None:
    """The failure the test above guards against: the server says so rather than staying quiet."""
    shutil.copy(EXAMPLES / "users.yaml", tmp_path / "users.yaml")
    found = server.diagnostics(server.open(tmp_path / "users.yaml"))
    assert any("Unable to load schema" in d["message"] for d in found), found


def test_a_broken_file_is_flagged_at_its_line(server: YamlLanguageServer, team: Path) -> None:
    lines = (team / "users.yaml").read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("two_factor:"))
    lines[at] = re.sub(r"two_factor: .*", "two_factor: sometimes", lines[at])
    broken = team / "broken.yaml"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = server.diagnostics(server.open(broken))
    assert [d["range"]["start"]["line"] for d in found] == [at], found
    assert found[0]["severity"] == 1


BASE = f"""{MODELINE}
version: 1
organization: acme-payments
roles:
  Admin:
    permissions: [users.view, users.manage]
users:
  ana@acme.co:
    first_name: Ana
    last_name: Perez
    id_type: CC
    id_number: "1020304050"
    phone: "+573001112233"
    role: Admin
"""


def resolved(snippet: str) -> str:
    """An LSP snippet as the editor leaves it when the person accepts every placeholder."""
    text = re.sub(r"\$\{\d+:([^}]*)\}", r"\1", snippet)
    return re.sub(r"\$\{?\d+\}?", "", text)


CURSOR = "<cursor>"
DOCUMENTS = {
    # The cursor on an empty line of a user, of the policies, of a role, at the top level.
    "user": BASE + "    " + CURSOR + "\n",
    "policies": BASE + "policies:\n  " + CURSOR + "\n",
    "role": BASE.replace("users.manage]\n", "users.manage]\n    " + CURSOR + "\n"),
    "top": BASE + CURSOR + "\n",
}


@pytest.mark.parametrize("section", sorted(DOCUMENTS))
def test_completions_insert_valid_values(
    server: YamlLanguageServer, team: Path, section: str
) -> None:
    marked = DOCUMENTS[section]
    at = marked.split("\n")
    line = next(i for i, v in enumerate(at) if CURSOR in v)
    indent = at[line].split(CURSOR)[0]
    text = marked.replace(CURSOR, "")
    lines = text.split("\n")
    path = team / f"complete-{section}.yaml"
    uri = server.open(path, text)
    server.diagnostics(uri)
    items = server.completion(uri, line, len(indent))
    inserted = 0
    for item in items:
        new = item.get("textEdit", {}).get("newText") or item.get("insertText") or item["label"]
        body = resolved(new)
        key, _, value = body.partition(":")
        if not value.strip().strip("-").strip():
            continue  # a key and an empty placeholder (or list item): no value was inserted
        candidate = "\n".join(lines[:line] + [indent + body.rstrip()] + lines[line + 1 :])
        document = yaml.safe_load(candidate)
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(document)
        ]
        assert errors == [], (item["label"], body)
        inserted += 1
    assert inserted > 0 or section == "top", [i["label"] for i in items]


def test_the_schema_defaults_are_the_defaults_in_force() -> None:
    from userctl.hygiene import DEFAULT_MAX_INACTIVE_DAYS, DEFAULT_REVIEW_EVERY_DAYS

    policies = SCHEMA["properties"]["policies"]["properties"]
    assert policies["max_inactive_days"]["default"] == DEFAULT_MAX_INACTIVE_DAYS
    assert policies["review_every_days"]["default"] == DEFAULT_REVIEW_EVERY_DAYS
