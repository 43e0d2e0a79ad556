"""The edge around the pure planner: a desired-state file planned against the live database (in
a read-only transaction), its problems and findings placed at FILE:LINE:COL, and the plan's
provenance (the files' hashes, the git commit, the database it was made against)."""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import os
import subprocess
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from userctl import state
from userctl.errors import InputError, Problem, Refused, UsageError, UserctlError
from userctl.gcpause import gc_paused
from userctl.plan import (
    Change,
    Finding,
    Plan,
    change_fingerprint,
    provenance,
    read_saved,
    saved_changes_at,
)
from userctl.planner import PlanOptions, diff
from userctl.state import given_email

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from userctl.db.thin import PlanReads
    from userctl.replan import HeldPlan


def plan_from_file(
    engine: "Engine | Callable[[], Engine]",
    path: str | os.PathLike[str],
    options: PlanOptions,
    organization: str | None,
    now: dt.datetime,
    *,
    url: str | None = None,
    connect_timeout: int | None = None,
) -> Plan:
    """The edge around the pure planner: load the file, read the live snapshot in a read-only
    transaction, plan, and turn planner problems into FILE:LINE:COL.

    With the database's `url` (and `engine` a function that makes the engine), the reads run on
    the raw driver (db/thin.py) and SQLAlchemy is never imported, unless that path declines:
    then the engine is made and read through, which words any refusal."""
    from userctl import hygiene
    from userctl.desired.loader import load_desired, locate

    # One pause around the three bulk steps (the loader's and the snapshot's own pauses nest
    # inside it): no collection runs between them, over objects that all survive.
    with gc_paused():
        desired = load_desired(path)
        if organization is not None and organization != desired.organization:
            raise UsageError(
                f"--organization {organization} does not match the file, which "
                f"declares {desired.organization!r}"
            )
        reads = None
        if url is not None:
            from userctl.db.thin import read_for_plan

            reads = read_for_plan(url, desired.organization, desired.users, now, connect_timeout)
        if reads is None:
            reads = _read_for_plan(engine if not callable(engine) else engine(), desired, now)
        live, facts, settings = reads.live, reads.facts, reads.settings
        try:
            planned = diff(desired, live, options, now.date())
        except InputError as exc:
            raise InputError(locate(exc.problems, desired)) from None
        # Every plan shows them: a reviewer sees a dormant user whichever change brought it up.
        planned = hygiene.with_findings(planned, facts, settings, now)
        findings = tuple(located_findings(planned.findings, desired))
    return replace(
        planned,
        findings=findings,
        provenance=provenance(now, desired.files, git_commit(path), reads.shown),
    )


def _read_for_plan(engine: "Engine", desired: state.DesiredState, now: dt.datetime) -> "PlanReads":
    """What a plan reads, through SQLAlchemy: on a database at the schema's revision, in a
    read-only transaction."""
    from userctl.db.engine import begin_read, shown
    from userctl.db.hygiene import read_hygiene
    from userctl.db.migrate import require_current
    from userctl.db.snapshot import read_live_state
    from userctl.db.thin import PlanReads

    require_current(engine)
    with begin_read(engine) as conn:
        live = read_live_state(conn, desired.organization, like=desired.users)
        facts, settings = read_hygiene(conn, live, now)
    return PlanReads(live, facts, settings, shown(engine.url))


def located_findings(
    findings: tuple[Finding, ...], desired: state.DesiredState
) -> Iterator[Finding]:
    """Findings about a declaration (a policy violation, an expiry) with its FILE:LINE:COL."""
    from userctl.desired.loader import locate

    placed = {f.path for f in findings if f.path}
    where = {p.path: p for p in locate([Problem("", p) for p in placed], desired)} if placed else {}
    for f in findings:
        problem = where.get(f.path)
        if problem is None or problem.file is None:
            yield f
            continue
        at = (
            f"{problem.file}:{problem.line}:{problem.col or 1}"
            if problem.line is not None
            else problem.file
        )
        yield replace(f, message=f"{at}: {f.message}")


def git_commit(path: str | os.PathLike[str]) -> str | None:
    """HEAD of the git work tree holding `path`, when it is in one (and git is installed)."""
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        found = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = found.stdout.strip()
    return commit if found.returncode == 0 and len(commit) in (40, 64) else None


def read_plan_file(path: str) -> Plan:
    """A saved plan whose size, format and digest are right; nothing about it is trusted yet.
    Read in chunks, decoded as they come: the file is never held whole (plan.read_saved)."""
    try:
        with _saved_text(path) as text:
            return read_saved(text, source=path)
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a saved plan (not UTF-8 text)") from None


def held_saved(plan: Plan, path: str) -> "HeldPlan":
    """`plan`, read from the saved plan file `path`, held so that re-deriving it lets go of its
    changes: a refusal gets the saved change it names back from the file, checked to be the one
    read before (by its fingerprint)."""
    from userctl.replan import HeldPlan

    # Not `plan` itself: the closure would keep every saved change alive beside the re-derived.
    fingerprint_at = plan.without_changes().fingerprint_at

    def saved_at(positions: Sequence[int]) -> Iterator[tuple[int, Change]]:
        if not positions:
            return
        changed = Refused(
            f"{path} changed while it was being applied: the saved plan cannot be compared with "
            "the one read. Nothing was written; apply it again"
        )
        given = 0
        try:
            with _saved_text(path) as text:
                for index, change in saved_changes_at(text, positions, path):
                    if change_fingerprint(change) != fingerprint_at(index):
                        raise changed
                    given += 1
                    yield index, change
        except (
            UserctlError,
            OSError,
            UnicodeDecodeError,
            KeyError,
            TypeError,
            ValueError,
            RecursionError,  # nested deeper than a saved plan is read (plan.read_saved)
        ):
            raise changed from None
        if given < len(positions):
            raise changed

    return HeldPlan(plan, saved_at)


@contextlib.contextmanager
def _saved_text(path: str) -> Iterator[Iterator[str]]:
    """The text of the saved plan at `path`, in chunks decoded as they come."""
    from userctl.desired.reader import MAX_DOCUMENT_BYTES, bounded_chunks

    with bounded_chunks(
        path,
        MAX_DOCUMENT_BYTES,
        what="saved plan",
        advice="it is not one `plan --out` wrote",
    ) as chunks:
        yield _decoded(chunks)


def _decoded(chunks: Iterator[bytes]) -> Iterator[str]:
    """UTF-8 text of `chunks`, a character split between two chunks joined (UnicodeDecodeError
    on anything that is not UTF-8)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def plan_options(
    no_prune: bool,
    replace: tuple[str, ...],
    allow_mass_removal: bool,
    operator: str | None,
    reason: str | None = None,
) -> PlanOptions:
    """The options a plan is made with, from the command line's: emails as identities, a
    reason refused as the planner would refuse it."""
    if reason is not None:  # replan is apply's module: a plan without --reason never needs it
        from userctl.replan import reason_problem

        problem = reason_problem(reason)
        if problem is not None:
            raise UsageError(f"--reason: {problem}")
    return PlanOptions(
        prune=not no_prune,
        replace=frozenset(given_email(e) for e in replace),
        allow_mass_removal=allow_mass_removal,
        operator=given_email(operator) if operator else None,
        reason=reason,
    )
