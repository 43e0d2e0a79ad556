"""docs/variables.md, generated from the command tree: every USERCTL_* variable, the option it
sets and the commands that take it. `python -m tests.cli.variables_doc` rewrites the file;
tests/cli/test_env_options.py fails when it is out of date."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import click

from userctl.cli.main import cli
from userctl.cli.options import ENVIRONMENT

DOC = Path(__file__).resolve().parents[2] / "docs" / "variables.md"

HEAD = """\
# Environment variables

Generated from the command tree by `python -m tests.cli.variables_doc` (a test fails when this
file is out of date). How variables are read, the rule for flags and the secrets are in
[reference.md](reference.md#environment-variables).

| Variable | Sets | Commands |
|---|---|---|
"""


def walk(
    command: click.Command = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from walk(sub, (*path, name))


PREFERRED = (("apply",), ("plan",))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    sets: dict[str, str] = {}
    origin: dict[str, tuple[str, ...]] = {}
    where: dict[str, list[str]] = {}
    globals_: set[str] = set()
    for path, command in walk():
        for param in command.params:
            if not (isinstance(param, click.Option) and param.expose_value):
                continue
            name = str(param.envvar)
            flags = "/".join(sorted(param.opts, key=len))
            described = f"`{flags}`" + (f": {param.help}" if param.help else "")
            # A shared variable is described as the command that most needs it says it.
            if name not in sets or (path in PREFERRED and origin[name] not in PREFERRED):
                sets[name], origin[name] = described, path
            if not path:
                globals_.add(name)
            elif " ".join(path) not in where.setdefault(name, []):
                where[name].append(" ".join(path))
    rows = [
        f"| `{name}` | {_cell(sets[name])} | "
        f"{'all' if name in globals_ else ', '.join(where[name])} |"
        for name in sorted(sets)
    ]
    rows += [
        f"| `{name}` | no option (secret): {_cell(what)} | see reference.md |"
        for name, what in sorted(ENVIRONMENT.items())
    ]
    return HEAD + "\n".join(rows) + "\n"


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")
