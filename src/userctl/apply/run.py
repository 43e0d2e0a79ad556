"""`apply` and `approve` below the CLI: which plan is applied (planned from the file, a saved plan,
or a saved plan the file must still plan to), applying it with a given code, and delivering the
invitations it queued once it is committed. The CLI only asks, confirms and renders."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from userctl import clock
from userctl.apply.given import GivenCode
from userctl.apply.planning import held_saved, plan_from_file, plan_options, read_plan_file
from userctl.apply.transaction import (
    ApplyResult,
    ApproveResult,
    apply_plan,
    approve_plan,
    check_preconditions,
)
from userctl.clock import iso_z
from userctl.errors import Refused, UsageError, UserctlError
from userctl.gcpause import gc_paused
from userctl.plan import Plan, made_at
from userctl.planner import PlanOptions

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from userctl.apply.outbox import Letterhead, SendReport, SmtpTarget
    from userctl.replan import HeldPlan

# Clocks of the planning and the applying machine may disagree a little.
CLOCK_SKEW = dt.timedelta(minutes=5)
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where the plan to apply comes from: `plan_file` (saved), `path` (the desired state), or
    both (the saved plan, applied only if the file still plans to exactly it); and the options
    a plan made from the file is shaped by."""

    plan_file: str | None
    path: str | None
    organization: str | None  # --organization, when given
    max_age_days: float
    no_prune: bool = False
    replace: tuple[str, ...] = ()
    allow_mass_removal: bool = False
    operator: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.plan_file is None and self.path is None:
            raise UsageError(
                "give a saved PLAN file, -f FILE, or both (PLAN -f FILE applies PLAN "
                "only if FILE still plans to it)"
            )


def read_saved_plan(
    path: str, organization: str | None, now: dt.datetime, max_age_days: float
) -> Plan:
    """The saved plan at `path`, checked for everything that needs no database: its size, format
    and digest, that it is for the organization asked for, and that it is not older than
    --max-age. Apply still re-derives it under the lock (replan.py)."""
    plan = read_plan_file(path)
    if organization is not None and organization != plan.organization:
        raise UsageError(
            f"--organization {organization} does not match {path}, which is a "
            f"plan for {plan.organization!r}"
        )
    made = made_at(plan)
    assert made is not None  # loads refuses a saved plan without its provenance
    if made > now + CLOCK_SKEW:
        raise Refused(
            f"{path} says it was made at {iso_z(made)}, in the future: refused; plan again"
        )
    if now - made > dt.timedelta(days=max_age_days):
        age = (now - made).total_seconds() / 86400
        raise Refused(
            f"{path} was made at {iso_z(made)}, {age:.1f} days ago, longer ago than "
            f"--max-age {max_age_days:g} days: the live state may have moved on "
            "since it was reviewed; plan again"
        )
    return plan


def plan_to_apply(engine: "Engine", source: Source, now: dt.datetime) -> Plan:
    """The plan `source` names, checked as far as it can be before the lock."""
    # Reading a saved plan builds an object per change and per field, all of which live until
    # the apply ends: the cyclic collector would only walk them again and again (DESIGN §6).
    with gc_paused():
        return _plan_to_apply(engine, source, now)


def _plan_to_apply(engine: "Engine", source: Source, now: dt.datetime) -> Plan:
    from userctl.db.migrate import require_current

    if source.plan_file is None:
        assert source.path is not None
        options = plan_options(
            source.no_prune,
            source.replace,
            source.allow_mass_removal,
            source.operator,
            source.reason,
        )
        return plan_from_file(engine, source.path, options, source.organization, now)
    if source.path is None and (source.no_prune or source.replace):
        raise UsageError(
            "--no-prune and --replace shape a new plan: use them with `plan`, "
            "`apply -f FILE` or `apply PLAN -f FILE`"
        )
    require_current(engine)
    saved = read_saved_plan(source.plan_file, source.organization, now, source.max_age_days)
    if source.path is not None:
        # The saved changes are let go of before the file is planned (replan.same_plan).
        held = held_saved(saved, source.plan_file)
        held.plan = saved = saved.without_changes()
    saved_reason = saved.options.get("reason")
    if source.reason is not None and source.reason != saved_reason:
        raise UsageError(
            f"--reason differs from the reason {source.plan_file} was made with "
            f"({saved_reason!r}): a saved plan's reason is part of what was reviewed; plan "
            "again to change it"
        )
    if source.path is not None:
        # The file is planned as the saved plan was: with its operator and its reason.
        as_saved = plan_options(
            source.no_prune,
            source.replace,
            source.allow_mass_removal,
            saved.options.get("operator"),
            saved_reason,
        )
        del saved
        _refuse_unless_file_plans_to(engine, held, source, as_saved, now)
        return held.plan
    return saved


def _refuse_unless_file_plans_to(
    engine: "Engine", held: "HeldPlan", source: Source, options: PlanOptions, now: dt.datetime
) -> None:
    """The pipeline's guarantee: what is applied is what was reviewed, and no more than the merged
    file says. An artifact from a pull request's own CI job cannot carry anything else. `held`
    then holds the plan to apply (replan.same_plan)."""
    from userctl.replan import same_plan

    assert source.path is not None
    why = same_plan(held, plan_from_file(engine, source.path, options, source.organization, now))
    if why is not None:
        _refuse_if_stale(engine, held.plan)
        raise Refused(
            f"{source.plan_file} does not match {source.path} on this branch: {why}. Nothing was "
            f"written: plan {source.path} again and have that plan reviewed"
        )


def _refuse_if_stale(engine: "Engine", saved: Plan) -> None:
    """A plan whose rows changed since (already applied, or overtaken) also differs from the file:
    it is refused as stale, as without -f, since planning again is the way on, not the file."""
    from userctl.db.engine import begin_read
    from userctl.db.snapshot import read_live_state

    with begin_read(engine) as conn:
        live = read_live_state(conn, saved.organization)
    check_preconditions(saved, live)


def held(plan: Plan, plan_file: str | None) -> "HeldPlan":
    """`plan` held for apply or approve (replan.HeldPlan): its changes are let go of while they
    are re-derived. Read from `plan_file`, a refusal reads the change it names back from there;
    made in this process (None), it names the change by what is kept of it."""
    if plan_file is not None:
        return held_saved(plan, plan_file)
    from userctl.replan import HeldPlan

    return HeldPlan.made(plan)


def apply_now(
    engine: "Engine",
    plan: "Plan | HeldPlan",
    operator: str,
    given: GivenCode,
    *,
    allow_mass_removal: bool,
    lock_timeout_s: float,
    progress: Progress | None = None,
) -> ApplyResult:
    """One try at applying `plan` with `given` (judged when it was read), at the clock's now.
    The collector is paused throughout, as while reading: re-deriving the plan, the guards and
    the writes allocate millions of objects that form no cycles and live until the end."""
    with gc_paused():
        return apply_plan(
            engine,
            plan,
            operator,
            otp_code=given.code,
            allow_mass_removal=allow_mass_removal,
            lock_timeout_s=lock_timeout_s,
            now=clock.utcnow(),
            code_read_at=given.read_at,
            progress=progress,
        )


def approve_now(
    engine: "Engine",
    plan: "Plan | HeldPlan",
    operator: str,
    given: GivenCode,
    *,
    valid_for: dt.timedelta,
    lock_timeout_s: float,
) -> ApproveResult:
    """One try at recording `operator`'s approval of `plan` with `given` (re-deriving the plan
    as apply does, with the collector paused as there)."""
    with gc_paused():
        return approve_plan(
            engine,
            plan,
            operator,
            given.code or "",
            now=clock.utcnow(),
            valid_for=valid_for,
            lock_timeout_s=lock_timeout_s,
            code_read_at=given.read_at,
        )


def smtp_target() -> "SmtpTarget | None":
    """The SMTP server invitations go to, parsed before anything is written: a typo found only
    after commit would fail a committed apply."""
    from userctl.apply import outbox

    url = os.environ.get(outbox.ENV_SMTP_URL)
    return outbox.parse_smtp_url(url) if url else None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of the invitations an apply queued: `report` None when none were sent, and
    what to tell the operator about it (the apply is committed whatever happens here)."""

    report: "SendReport | None"
    warnings: tuple[str, ...] = ()


def deliver_invitations(
    engine: "Engine", smtp: "SmtpTarget | None", letter: "Letterhead", result: ApplyResult
) -> Delivery:
    """After commit (a rolled-back apply never gets here, so it never sends anything), deliver
    this organization's queued invitations. A failure is a warning: the emails stay queued for
    `userctl notifications send`."""
    if not result.invitations_queued:
        return Delivery(None)
    if smtp is None:
        return Delivery(
            None,
            (
                "USERCTL_SMTP_URL is not set: invitations stay queued "
                "(`userctl notifications send`).",
            ),
        )
    from sqlalchemy.exc import SQLAlchemyError

    from userctl.apply import outbox

    try:
        report = outbox.send_queued(
            engine, smtp, clock.utcnow(), result.organization_id, letterhead=letter
        )
    except (UserctlError, SQLAlchemyError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Delivery(
            None,
            (
                f"warning: invitations not sent ({reason}); they stay queued: retry "
                "with `userctl notifications send`.",
            ),
        )
    if report.failed:
        return Delivery(
            report,
            ("Some invitations could not be sent; retry with `userctl notifications send`.",),
        )
    return Delivery(report)
