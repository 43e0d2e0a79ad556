"""The message that refuses a hidden character never prints it: a role name with a bidi override
or an escape sequence is named escaped in `validate`'s FILE:LINE:COL line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from userctl.cli.main import cli

TEMPLATE = """version: 1
organization: acme
roles:
  "{name}":
    permissions: [users.view]
users:
  ana@acme.co:
    first_name: Ana
    last_name: Perez
    id_type: CC
    id_number: "1020304050"
    phone: "+573001112233"
    role: "{name}"
"""


@pytest.mark.parametrize("name, shown", [("Ops\\u202eevil", "\\u202e"), ("Ops\\e[2Jx", "\\x1b")])
def test_a_refused_key_is_named_escaped(tmp_path: Path, name: str, shown: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(TEMPLATE.format(name=name), encoding="utf-8")

    result = CliRunner().invoke(cli, ["validate", "-f", str(path)])

    assert result.exit_code == 1, result.output
    assert f"{path}:4:3" in result.output and shown in result.output
    assert "\u202e" not in result.output and "\x1b" not in result.output
