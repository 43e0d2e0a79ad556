"""`userctl apply` and `userctl approve`."""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import TYPE_CHECKING

import click

from userctl.cli.common import (
    FiniteRange,
    interactive,
    invitation_options,
    letterhead,
    lock_option,
    make_options,
    max_age_option,
    operator_option,
    otp_option,
    plan_from_file,
    planning_options,
    read_plan_file,
    reason_option,
    result_format_option,
    with_code,
)
from userctl.cli.context import app
from userctl.clock import iso_z
from userctl.errors import ConfirmationRequired, Refused, UsageError, UserctlError
from userctl.plan import Plan, made_at
from userctl.render import render
from userctl.render.text import approval_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from userctl.apply.outbox import Letterhead, SendReport, SmtpTarget
    from userctl.apply.transaction import ApplyResult, ApproveResult
    from userctl.planner import PlanOptions

PROGRESS_THRESHOLD = 300
# Clocks of the planning and the applying machine may disagree a little.
CLOCK_SKEW = dt.timedelta(minutes=5)
# An approval is for a reviewed plan about to be applied, not a standing permission.
MAX_APPROVAL_HOURS = 168.0


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


@click.command()
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(),
    help="The desired-state file or directory. Alone: plan and apply it in one go. With PLAN_FILE: "
    "apply PLAN_FILE only if FILE plans to exactly it (what a pipeline runs on the merged branch).",
)
@operator_option
@otp_option
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal)."
)
@planning_options
@lock_option
@max_age_option
@invitation_options
@result_format_option("apply.schema.json")
@reason_option
def apply(
    plan_file: str | None,
    path: str | None,
    operator: str,
    otp_code: str | None,
    yes: bool,
    no_prune: bool,
    replace: tuple[str, ...],
    allow_mass_removal: bool,
    lock_timeout: float,
    max_age: float,
    invite_base_url: str | None,
    smtp_from: str | None,
    reason: str | None,
    fmt: str,
) -> None:
    """Apply a saved PLAN_FILE, the desired state in -f FILE, or PLAN_FILE checked against -f FILE,
    in one transaction."""
    from userctl.apply.transaction import apply_plan, code_can_confirm
    from userctl.clock import utcnow
    from userctl.db.migrate import require_current

    ctx = app()
    if plan_file is None and path is None:
        raise UsageError(
            "give a saved PLAN file, -f FILE, or both (PLAN -f FILE applies PLAN "
            "only if FILE still plans to it)"
        )
    # Parsed before anything is written: a typo found only after commit would fail a committed
    # apply.
    smtp = _smtp_target()
    engine = ctx.engine()
    started = utcnow()
    if plan_file is None:
        assert path is not None
        the_plan = plan_from_file(
            engine,
            path,
            make_options(no_prune, replace, allow_mass_removal, operator, reason),
            ctx.organization,
            started,
        )
    else:
        if path is None and (no_prune or replace):
            raise UsageError(
                "--no-prune and --replace shape a new plan: use them with `plan`, "
                "`apply -f FILE` or `apply PLAN -f FILE`"
            )
        require_current(engine)
        the_plan = read_saved_plan(plan_file, ctx.organization, started, max_age)
        saved_reason = the_plan.options.get("reason")
        if reason is not None and reason != saved_reason:
            raise UsageError(
                f"--reason differs from the reason {plan_file} was made with ({saved_reason!r}): "
                "a saved plan's reason is part of what was reviewed; plan again to change it"
            )
        if path is not None:
            _refuse_unless_file_plans_to(
                engine,
                the_plan,
                plan_file,
                path,
                make_options(
                    no_prune,
                    replace,
                    allow_mass_removal,
                    the_plan.options.get("operator"),
                    saved_reason,
                ),
                ctx.organization,
                started,
            )
    as_json = fmt == "json"
    if not the_plan.active_changes:
        if as_json:
            click.echo(_applied_document(the_plan, operator, None, None, started), nl=False)
        else:
            click.echo(render(the_plan.to_data(), "text", color=ctx.color()), nl=False)
        if otp_code is not None:
            click.echo("--otp-code was not used: there is nothing to apply.", err=True)
        return
    # Every user the executor creates (a replace too) is invited.
    invited = sum(
        1 for c in the_plan.active_changes if c.kind == "user" and c.action in ("create", "replace")
    )
    letter = letterhead(
        invite_base_url, smtp_from, f"{invited} invitation(s)" if smtp and invited else None
    )
    if not yes:
        if not interactive():
            raise ConfirmationRequired(
                "refusing to apply without confirmation: no terminal to ask on; pass --yes"
            )
        click.echo(
            render(the_plan.to_data(), "text", color=ctx.color(sys.stderr if as_json else None)),
            nl=False,
            err=as_json,
        )
        click.confirm(
            f"Apply these {len(the_plan.active_changes)} changes to {the_plan.organization}?",
            abort=True,
            err=True,
        )
    ask = (
        otp_code is None
        and the_plan.requires_2fa
        and interactive()
        and code_can_confirm(engine, the_plan, operator, utcnow())
    )
    total = len(the_plan.active_changes)
    moments: list[dt.datetime] = []

    def run(code: str | None, read_at: dt.datetime) -> "ApplyResult":
        now = utcnow()
        moments.append(now)
        if total > PROGRESS_THRESHOLD and sys.stderr.isatty():
            with click.progressbar(length=total, label="Applying", file=sys.stderr) as bar:
                return apply_plan(
                    engine,
                    the_plan,
                    operator,
                    otp_code=code,
                    allow_mass_removal=allow_mass_removal,
                    lock_timeout_s=lock_timeout,
                    now=now,
                    code_read_at=read_at,
                    progress=bar.update,
                )
        return apply_plan(
            engine,
            the_plan,
            operator,
            otp_code=code,
            allow_mass_removal=allow_mass_removal,
            lock_timeout_s=lock_timeout,
            now=now,
            code_read_at=read_at,
        )

    result = with_code(run, otp_code, ask)
    if not as_json:
        click.echo(
            f"Applied {result.applied} change(s) to {the_plan.organization} (serial "
            f"{result.serial}), verified by {result.verified_by}."
        )
        if result.invitations_queued:
            click.echo(f"Queued {result.invitations_queued} invitation email(s).")
        click.echo(f"Audit chain head: {result.audit_head}")
    report = _deliver_invitations(
        engine, smtp, letter, result.organization_id, result.invitations_queued
    )
    if report is not None and not as_json:
        click.echo(f"Invitations: {report.sent} sent, {report.failed} still queued.")
    if as_json:
        delivery = None if report is None else (report.sent, report.failed)
        click.echo(_applied_document(the_plan, operator, result, delivery, moments[-1]), nl=False)


def _applied_document(
    plan: Plan,
    operator: str,
    result: "ApplyResult | None",
    delivery: tuple[int, int] | None,
    at: dt.datetime,
) -> str:
    """`apply --format json`; `result` is None when the plan had nothing to apply."""
    from userctl.render import results

    return results.document(
        results.applied(
            organization=plan.organization,
            plan_digest=plan.digest,
            actions=[f"{c.kind}.{c.action}" for c in plan.active_changes]
            if result is not None
            else [],
            operator=operator.strip().lower(),
            operator_verified=result is not None and result.operator_verified,
            approvers=result.approvers if result is not None else (),
            serial=result.serial if result is not None else None,
            audit_head=result.audit_head if result is not None else None,
            audit_seqs=result.audit_seqs if result is not None else None,
            invited=result.invited if result is not None else (),
            delivery=delivery,
            at=at,
        )
    )


def _refuse_unless_file_plans_to(
    engine: "Engine",
    saved: Plan,
    plan_file: str,
    path: str,
    options: "PlanOptions",
    organization: str | None,
    now: dt.datetime,
) -> None:
    """The pipeline's guarantee: what is applied is what was reviewed, and no more than the merged
    file says. An artifact from a pull request's own CI job cannot carry anything else."""
    from userctl.replan import same_plan

    why = same_plan(saved, plan_from_file(engine, path, options, organization, now))
    if why is not None:
        _refuse_if_stale(engine, saved)
        raise Refused(
            f"{plan_file} does not match {path} on this branch: {why}. Nothing was written: plan "
            f"{path} again and have that plan reviewed"
        )


def _refuse_if_stale(engine: "Engine", saved: Plan) -> None:
    """A plan whose rows changed since (already applied, or overtaken) also differs from the file:
    it is refused as stale, as without -f, since planning again is the way on, not the file."""
    from userctl.apply.transaction import check_preconditions
    from userctl.db.engine import begin_read
    from userctl.db.snapshot import read_live_state

    with begin_read(engine) as conn:
        live = read_live_state(conn, saved.organization)
    check_preconditions(saved, live)


def _smtp_target() -> "SmtpTarget | None":
    from userctl.apply import outbox

    url = os.environ.get(outbox.ENV_SMTP_URL)
    return outbox.parse_smtp_url(url) if url else None


def _deliver_invitations(
    engine: "Engine", smtp: "SmtpTarget | None", letter: "Letterhead", org_id: int, queued: int
) -> "SendReport | None":
    """After commit (a rolled-back apply never gets here, so it never sends anything), deliver
    this organization's queued invitations; None when not tried. The apply is committed whatever
    happens here, so a failure is a warning: the emails stay queued for
    `userctl notifications send`."""
    if not queued:
        return None
    if smtp is None:
        click.echo(
            "USERCTL_SMTP_URL is not set: invitations stay queued (`userctl notifications send`).",
            err=True,
        )
        return None
    from sqlalchemy.exc import SQLAlchemyError

    from userctl.apply import outbox
    from userctl.clock import utcnow

    try:
        report = outbox.send_queued(engine, smtp, utcnow(), org_id, letterhead=letter)
    except (UserctlError, SQLAlchemyError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(
            f"warning: invitations not sent ({reason}); they stay queued: retry "
            "with `userctl notifications send`.",
            err=True,
        )
        return None
    if report.failed:
        click.echo(
            "Some invitations could not be sent; retry with `userctl notifications send`.", err=True
        )
    return report


@click.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@operator_option
@otp_option
@click.option(
    "--valid-for",
    type=FiniteRange(min=0.01, max=MAX_APPROVAL_HOURS),
    default=24.0,
    show_default=True,
    help=f"Hours the approval stays valid (at most {MAX_APPROVAL_HOURS:g}: a week).",
)
@lock_option
@max_age_option
@click.option(
    "--yes",
    is_flag=True,
    help="Do not ask to confirm on a terminal (the TOTP code is still required).",
)
@result_format_option("approve.schema.json")
def approve(
    plan_file: str,
    operator: str,
    otp_code: str | None,
    valid_for: float,
    lock_timeout: float,
    max_age: float,
    yes: bool,
    fmt: str,
) -> None:
    """Record a 2FA approval of one exact saved plan, so a pipeline can apply it without a code."""
    from userctl.apply.transaction import approve_plan
    from userctl.clock import utcnow
    from userctl.db.migrate import require_current

    ctx = app()
    engine = ctx.engine()
    require_current(engine)
    the_plan = read_saved_plan(plan_file, ctx.organization, utcnow(), max_age)
    as_json = fmt == "json"
    # An approver never signs blind: what the code will confirm comes first.
    click.echo(
        approval_text(the_plan.to_data(), color=ctx.color(sys.stderr if as_json else None)),
        nl=False,
        err=as_json,
    )
    if not yes:
        if not interactive():
            # As apply: a pipeline must say --yes; silence is no consent.
            raise ConfirmationRequired(
                "refusing to approve without confirmation: no terminal to ask on; pass --yes"
            )
        click.confirm(f"Approve this plan for {the_plan.organization}?", abort=True, err=True)
    if otp_code is None and not interactive():
        raise UsageError("approve needs --otp-code (or USERCTL_OTP_CODE) when there is no terminal")
    moments: list[dt.datetime] = []

    def run(code: str | None, read_at: dt.datetime) -> "ApproveResult":
        moments.append(utcnow())
        return approve_plan(
            engine,
            the_plan,
            operator,
            code or "",
            now=moments[-1],
            valid_for=dt.timedelta(hours=valid_for),
            lock_timeout_s=lock_timeout,
            code_read_at=read_at,
        )

    done = with_code(run, otp_code, ask=otp_code is None)
    if as_json:
        from userctl.render import results

        click.echo(
            results.document(
                results.approved(
                    organization=the_plan.organization,
                    plan_digest=the_plan.digest,
                    approver=done.approver,
                    approval_id=done.approval_id,
                    valid_until=done.expires_at,
                    audit_head=done.audit_head,
                    at=moments[-1],
                )
            ),
            nl=False,
        )
        return
    click.echo(
        f"Approved plan {the_plan.digest} for {the_plan.organization} by {done.approver}, valid "
        f"until {iso_z(done.expires_at)}."
    )
    click.echo(f"Audit chain head: {done.audit_head}")
