"""The reusable action (`action.yml`) and the workflow example that uses it, held to the tools a
security review runs on them: zizmor (offline: no GitHub here) finds nothing, shellcheck passes
every `run:` block, checkout never keeps the token, and every pinned action is on its Node 24
major (checkout v5, setup-python v6, github-script v8, upload-artifact v6)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Iterator

import yaml

from tests.real_tools import ROOT, program

WORKFLOW = ROOT / "examples" / "github-actions.yml"
ACTION = ROOT / "action.yml"
ZIZMOR_CONFIG = ROOT / ".github" / "zizmor.yml"
# The first major of each action that runs on Node 24 (GitHub's runners dropped Node 20).
NODE_24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/github-script": 8,
    "actions/upload-artifact": 6,
}
_USES = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})\s+# v(\d+)(?:\.\d+)*")


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    exe = program("zizmor", "pip install -e '.[test]' (zizmor is in the test extras)")
    return subprocess.run(
        [exe, "--offline", "--config", str(ZIZMOR_CONFIG), "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_zizmor_finds_nothing_in_the_workflow_and_the_action() -> None:
    done = zizmor(WORKFLOW, ACTION)
    findings = json.loads(done.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)[:4000]
    assert done.returncode == 0, done.stderr[-2000:]


def test_zizmor_would_see_a_checkout_that_keeps_the_token(tmp_path: Path) -> None:
    """The audit is live: the same workflow with checkout's default (the token kept in
    .git/config while the plan job runs the pull request's code) is a finding."""
    workflow = tmp_path / "userctl.yml"
    text = WORKFLOW.read_text(encoding="utf-8")
    workflow.write_text(text.replace("persist-credentials: false", "fetch-depth: 1"), "utf-8")
    findings = json.loads(zizmor(workflow).stdout or "[]")
    assert {f["ident"] for f in findings} == {"artipacked"}


def _workflow_steps() -> Iterator[tuple[str, dict[str, Any]]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            yield f"{WORKFLOW.name}: {name}", step
    for step in yaml.safe_load(ACTION.read_text(encoding="utf-8"))["runs"]["steps"]:
        yield ACTION.name, step


def test_shellcheck_passes_every_run_block(tmp_path: Path) -> None:
    shellcheck = program("shellcheck", "apt-get install shellcheck")
    blocks = [(where, step) for where, step in _workflow_steps() if "run" in step]
    assert len(blocks) >= 15
    problems = []
    for i, (where, step) in enumerate(blocks):
        # GitHub runs a bash step as `bash --noprofile --norc -eo pipefail {0}`.
        assert step.get("shell", "bash") == "bash", (where, step.get("name"))
        script = tmp_path / f"step{i}.sh"
        script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + step["run"], "utf-8")
        done = subprocess.run(
            [shellcheck, "--shell=bash", "--format=gcc", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            problems.append(f"{where} / {step.get('name', step['run'][:40])}:\n{done.stdout}")
    assert problems == [], "\n".join(problems)


def test_shellcheck_would_see_an_unquoted_value(tmp_path: Path) -> None:
    shellcheck = program("shellcheck", "apt-get install shellcheck")
    script = tmp_path / "bad.sh"
    script.write_text("#!/usr/bin/env bash\nuserctl plan -f $USERCTL_FILE\n", "utf-8")
    done = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "SC2086" in done.stdout


def test_checkout_never_keeps_the_token() -> None:
    checkouts = [
        (where, step)
        for where, step in _workflow_steps()
        if str(step.get("uses", "")).startswith("actions/checkout@")
    ]
    assert len(checkouts) == 4
    for where, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, where


def test_every_pinned_action_is_on_its_node_24_major() -> None:
    pinned: dict[str, set[tuple[str, int]]] = {}
    for path in (WORKFLOW, ACTION):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _USES.match(line)
            if match:
                pinned.setdefault(match.group(1), set()).add((match.group(2), int(match.group(3))))
            elif re.match(r"^\s*(- )?uses: ", line):
                assert line.strip() in ("- uses: ./",), f"not pinned to a commit: {line}"
    assert set(pinned) == set(NODE_24_MAJORS)
    for name, versions in pinned.items():
        # One commit per action across both files, on a release at or past its Node 24 major.
        assert len(versions) == 1, (name, versions)
        ((_sha, major),) = versions
        assert major >= NODE_24_MAJORS[name], (name, major)


def test_a_team_workflow_is_a_few_dozen_lines() -> None:
    lines = [
        line
        for line in WORKFLOW.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(lines) < 100, len(lines)
    steps = [step for _, step in _workflow_steps() if _.startswith(WORKFLOW.name)]
    assert all("run" not in step for step in steps)  # every script is the action's
