"""`examples/github-actions.yml` stays true: every `userctl` command it runs exists and accepts
the options it is given, the exit codes it treats as success are the ones DESIGN §5 gives, its
plan step behaves as intended when run as GitHub runs it, it installs userctl from the
repository, and the read-only database role it recommends for the plan job does plan."""

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
    assert apply[:4] == ["apply", "plan.json", "-f", "users.yaml"] and "--yes" in apply and "--operator" in apply
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "secrets.USERCTL_DATABASE_URL" in text and "vars.USERCTL_OPERATOR" in text
    assert """if: ${{ !contains(fromJSON('["0", "2", "3"]'), steps.plan.outputs.exitcode) }}""" in text
    assert "actions/upload-artifact" in text and "gh run download" in text


# --- The pull request job, run as GitHub runs it ----------------------------------------------

def _job(name: str) -> dict[str, Any]:
    job = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"][name]
    assert isinstance(job, dict)
    return job


def _step(job: dict[str, Any], step_id: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("id") == step_id]
    return dict(step)


_CONTAINS = re.compile(r"""contains\(fromJSON\('(\[[^']*\])'\), steps\.(\w+)\.outputs\.(\w+)\)""")


def _condition(expression: str, outputs: dict[str, dict[str, str]]) -> bool:
    """The few GitHub expressions the workflow's steps use: `contains(fromJSON('[...]'),
    steps.ID.outputs.NAME)`, negated with `!`, optionally inside `${{ }}`. Anything else fails
    the test, rather than being guessed at."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2].strip()
    negated = text.startswith("!")
    match = _CONTAINS.fullmatch(text.removeprefix("!").strip())
    assert match is not None, f"expression not understood by this test: {expression}"
    values, step_id, name = json.loads(match.group(1)), match.group(2), match.group(3)
    result = outputs.get(step_id, {}).get(name, "") in values
    return not result if negated else result


def _substitute(script: str, outputs: dict[str, dict[str, str]]) -> str:
    def output(match: re.Match[str]) -> str:
        return outputs[match.group(1)][match.group(2)]

    script = re.sub(r"\$\{\{\s*steps\.(\w+)\.outputs\.(\w+)\s*\}\}", output, script)
    assert "${{" not in script, script
    return script


FAKE_USERCTL = """#!/bin/sh
# userctl as the pipeline sees it: markdown on stdout, the plan saved with --out, an exit code.
printf '%s\\n' "$@" > "$FAKE_ARGS"
while [ $# -gt 0 ]; do
  if [ "$1" = "--out" ]; then printf '{"format": "userctl-plan"}\\n' > "$2"; fi
  shift
done
echo "## userctl plan (exit $FAKE_CODE)"
echo "plan diagnostics" >&2
exit "$FAKE_CODE"
"""


@dataclass
class JobRun:
    plan_step_exit: int
    outputs: dict[str, dict[str, str]]
    ran: list[str]  # the names of the steps that ran after the plan, in order
    succeeded: bool
    workdir: Path


def _run_plan_job(tmp_path: Path, code: int) -> JobRun:
    """The plan step's script under `bash --noprofile --norc -eo pipefail` (GitHub's shell for
    `run`), a fake `userctl` first on PATH; then each later step whose `if:` holds, `run` steps
    executed the same way, `uses` steps only recorded (their inputs are checked elsewhere)."""
    bin_dir, workdir = tmp_path / f"bin{code}", tmp_path / f"work{code}"
    bin_dir.mkdir()
    workdir.mkdir()
    fake = bin_dir / "userctl"
    fake.write_text(FAKE_USERCTL, encoding="utf-8")
    fake.chmod(0o755)
    job = _job("plan")
    steps = job["steps"]
    index = next(i for i, s in enumerate(steps) if s.get("id") == "plan")

    def bash(script: str, name: str) -> int:
        output = workdir / f"github_output_{name}"
        output.touch()
        path = workdir / f"step_{name}.sh"
        path.write_text(script, encoding="utf-8")
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GITHUB_OUTPUT": str(output),
               "FAKE_CODE": str(code), "FAKE_ARGS": str(workdir / "args")}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        return done.returncode

    plan_exit = bash(steps[index]["run"], "plan")
    recorded = dict(line.split("=", 1) for line in (workdir / "github_output_plan").read_text().splitlines())
    outputs = {"plan": recorded}
    ran: list[str] = []
    succeeded = plan_exit == 0
    for i, step in enumerate(steps[index + 1 :]):
        # A step with no status function in its `if:` runs only while the job is succeeding.
        if not succeeded or ("if" in step and not _condition(str(step["if"]), outputs)):
            continue
        ran.append(step["name"])
        if "run" in step and bash(_substitute(step["run"], outputs), str(i)) != 0:
            succeeded = False
    return JobRun(plan_exit, outputs, ran, succeeded, workdir)


COMMENT = "Comment the plan on the pull request"
UPLOAD = "Keep the plan for approval and apply"


@pytest.mark.parametrize(
    ("code", "job_succeeds", "commented", "uploaded"),
    [(0, True, True, True), (2, True, True, True), (3, True, True, True), (4, False, True, False),
     (1, False, False, False)],
)
def test_the_plan_job_for_each_exit_code(tmp_path: Path, code: int, job_succeeds: bool, commented: bool,
                                         uploaded: bool) -> None:
    run = _run_plan_job(tmp_path, code)
    # The step itself always finishes (so the comment can follow) and hands the code on.
    assert run.plan_step_exit == 0
    assert run.outputs["plan"] == {"exitcode": str(code)}
    assert (run.workdir / "args").read_text().split() == [
        "plan", "-f", "users.yaml", "--format", "markdown", "--out", "plan.json", "--detailed-exitcode"]
    # stdout (the markdown) is what is saved as plan.md; diagnostics stay in the log.
    assert (run.workdir / "plan.md").read_text() == f"## userctl plan (exit {code})\n"
    assert (run.workdir / "plan.json").exists()
    assert (COMMENT in run.ran) is commented
    assert (UPLOAD in run.ran) is uploaded
    # 1 and 4 fail the job, after the comment when there is one.
    assert run.succeeded is job_succeeds
    if not job_succeeds:
        assert run.ran[-1] == "Fail on an error or a blocked plan"


def test_the_comment_posts_the_markdown_and_the_artifact_is_the_saved_plan() -> None:
    steps = {s.get("name"): s for s in _job("plan")["steps"]}
    comment, upload = steps[COMMENT], steps[UPLOAD]
    for exit_code in ("2", "3"):
        assert _condition(comment["if"], {"plan": {"exitcode": exit_code}})
        assert _condition(upload["if"], {"plan": {"exitcode": exit_code}})
    assert comment["uses"].startswith("actions/github-script@")
    assert 'fs.readFileSync("plan.md", "utf8")' in comment["with"]["script"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "plan.json" and upload["with"]["name"] == "userctl-plan"


def test_the_apply_job_applies_the_downloaded_plan_only_if_the_merged_file_plans_to_it() -> None:
    steps = _job("apply")["steps"]
    scripts = [s.get("run", "") for s in steps]
    download = next(i for i, s in enumerate(scripts) if "gh run download" in s)
    assert "--name userctl-plan" in scripts[download]
    commands = [shlex.split(line.strip()) for s in scripts for line in s.splitlines() if line.strip().startswith("userctl ")]
    assert len(commands) == 1
    (apply,) = commands
    # The artifact came from the pull request's own job: it is applied only if the merged
    # users.yaml plans to exactly it.
    assert apply[1:5] == ["apply", "plan.json", "-f", "users.yaml"]
    # The apply runs after the download, and no step of the job saves a new plan.
    assert next(i for i, s in enumerate(scripts) if s.startswith("userctl apply")) > download
    assert not any("userctl plan" in s for s in scripts)


def test_userctl_is_installed_from_the_repository_not_pypi() -> None:
    pyproject = tomllib.loads((WORKFLOW.parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "postgres" in pyproject["project"]["optional-dependencies"]
    for name in ("plan", "apply"):
        steps = _job(name)["steps"]
        installs = [i for i, s in enumerate(steps) if "pip install" in s.get("run", "")]
        assert [steps[i]["run"].strip() for i in installs] == ['pip install ".[postgres]"'], name
        checkout = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("actions/checkout@"))
        assert checkout < installs[0], name
    assert set(yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]) == {"plan", "apply"}


def test_the_plan_job_holds_no_credentials_that_write() -> None:
    assert _job("plan")["env"]["USERCTL_DATABASE_URL"] == "${{ secrets.USERCTL_PLAN_DATABASE_URL }}"
    assert _job("apply")["env"]["USERCTL_DATABASE_URL"] == "${{ secrets.USERCTL_DATABASE_URL }}"
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert "USERCTL_DATABASE_URL" not in workflow.get("env", {})


def _read_only_grants() -> list[str]:
    """The PostgreSQL statements the workflow's comment recommends for the plan job's role."""
    lines = WORKFLOW.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("On PostgreSQL, e.g.:")) + 1
    statements = []
    for line in lines[start:]:
        if not line.startswith("#     "):
            break
        statements.append(line.removeprefix("#     ").split("  -- ")[0].strip())
    return statements


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_recommended_read_only_role_can_plan_and_nothing_else(db_url: str, factory: Factory, engine: Engine,
                                                                tmp_path: Path) -> None:
    org = factory.org("acme-payments")
    admin = factory.role(org, "Admin", ["users.manage"])
    factory.enrol(factory.user(org, "ana@acme.co", admin, first_name="Ana", status="active", two_factor="required"))
    desired = tmp_path / "users.yaml"
    assert Runner(db_url)("export", "-o", str(desired)).exit_code == 0
    desired.write_text(desired.read_text(encoding="utf-8").replace("first_name: Ana", "first_name: Anna"), encoding="utf-8")

    role = f"userctl_plan_{secrets.token_hex(4)}"
    url = make_url(db_url)
    statements = [re.sub(r"\buserctl_plan\b", role, s).replace("ON DATABASE userctl ", f'ON DATABASE "{url.database}" ')
                  for s in _read_only_grants()]
    assert any(s.startswith("GRANT SELECT ON ALL TABLES") for s in statements)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    read_only_url = url.set(username=role, password=None).render_as_string(hide_password=False)
    try:
        planned = Runner(read_only_url)("plan", "-f", str(desired), "--detailed-exitcode", "--out",
                                        str(tmp_path / "plan.json"), "--format", "markdown")
        assert planned.exit_code == 2, planned.output
        assert "Anna" in planned.stdout
        read_only = sa.create_engine(read_only_url)
        try:
            for forbidden in ("UPDATE users SET first_name = 'x'", "SELECT secret FROM totp_secrets"):
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), read_only.begin() as conn:
                    conn.exec_driver_sql(forbidden)
        finally:
            read_only.dispose()
        applied = Runner(read_only_url)("apply", str(tmp_path / "plan.json"), "--yes", "--operator", "ana@acme.co")
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
    (step,) = [s for s in _job("apply")["steps"] if s.get("name") == "Apply"]
    command = shlex.split(step["run"].replace("${{ vars.USERCTL_OPERATOR }}", operator.email))[1:]

    # The pull request's job planned something else than what was merged: bob deleted.
    Path("users.yaml").write_text(re.sub(r"  bob@acme.co:.*?(?=\n  \S|\Z)", "", merged, flags=re.S), encoding="utf-8")
    assert run("plan", "-f", "users.yaml", "--out", "plan.json").exit_code == 0
    assert [c["action"] for c in json.loads(Path("plan.json").read_text())["changes"]] == ["delete"]
    Path("users.yaml").write_text(merged.replace("first_name: Ana", "first_name: Anna"), encoding="utf-8")
    refused = run(*command, "--otp-code", operator.code())
    assert refused.exit_code == 4 and "does not match users.yaml on this branch" in refused.stderr, refused.output

    assert run("plan", "-f", "users.yaml", "--out", "plan.json").exit_code == 0
    applied = run(*command)
    assert applied.exit_code == 0, applied.output
    assert run("plan", "-f", "users.yaml", "--detailed-exitcode").exit_code == 0
