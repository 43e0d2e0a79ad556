"""A database URL that cannot be parsed is one clear error (exit 1) that quotes the URL without
its password, whatever spoiled it: a space in the scheme, a port that is not a number, a host
left half-bracketed. Never the password in the message (CI logs keep it), never an unexpected
error with exit 70."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runner

SECRET = "s3:cr/et"


@pytest.mark.parametrize(
    "url",
    [
        f"postgres ql://app:{SECRET}@db.example/userctl",
        f"postgresql://app:{SECRET}@db.example:notaport/userctl",
        f"postgresql://app:{SECRET}@[::1/userctl",
        f"mysql://app:{SECRET}@db.example:5x/userctl",
        f"app:{SECRET}@db.example",
    ],
)
@pytest.mark.parametrize("command", [("users", "list"), ("plan", "-f", "users.yaml")])
def test_an_unparseable_url_is_refused_without_its_password(
    url: str, command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("users.yaml").write_text("version: 1\norganization: acme-payments\n")

    result = Runner(url)(*command)

    assert result.exit_code == 1, result.output
    assert "cannot parse database URL" in result.output
    assert "app:***@" in result.output
    assert "s3" not in result.output and "unexpected" not in result.output


def test_a_redacted_url_that_cannot_be_parsed_names_no_part_of_it() -> None:
    from userctl.db.engine import redacted

    assert redacted(f"postgresql://app:{SECRET}@db.example:notaport/userctl") == (
        "<unparseable URL>"
    )
