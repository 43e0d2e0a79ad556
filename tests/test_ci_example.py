"""`examples/github-actions.yml` stays true: every `userctl` command it runs exists and accepts
the options it is given, and the exit codes it treats as success are the ones DESIGN §5 gives."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import yaml

from userctl.cli.main import cli

WORKFLOW = Path(__file__).resolve().parent.parent / "examples" / "github-actions.yml"


def _steps() -> list[dict[str, Any]]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return [step for job in data["jobs"].values() for step in job["steps"]]


def _userctl_commands() -> list[list[str]]:
    commands = []
    for step in _steps():
        for line in step.get("run", "").splitlines():
            line = line.strip()
            if line.startswith("userctl "):
                words = shlex.split(line)
                commands.append(words[1 : words.index(">")] if ">" in words else words[1:])
    return commands


def test_every_userctl_command_of_the_workflow_parses() -> None:
    commands = _userctl_commands()
    assert [c[0] for c in commands] == ["validate", "plan", "apply"]
    for args in commands:
        with click.Context(cli) as ctx:
            command = cli.get_command(ctx, args[0])
            assert command is not None, args
            command.make_context(args[0], list(args[1:]), parent=ctx)  # raises on an unknown option


def test_the_workflow_plans_for_review_and_applies_the_reviewed_plan() -> None:
    plan, apply = _userctl_commands()[1:]
    assert {"--format", "markdown", "--out", "plan.json", "--detailed-exitcode"} <= set(plan)
    assert apply[:2] == ["apply", "plan.json"] and "--yes" in apply and "--operator" in apply
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "secrets.USERCTL_DATABASE_URL" in text and "vars.USERCTL_OPERATOR" in text
    assert """if: ${{ !contains(fromJSON('["0", "2", "3"]'), steps.plan.outputs.exitcode) }}""" in text
    assert "actions/upload-artifact" in text and "gh run download" in text
