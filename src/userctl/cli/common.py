"""What several commands share: their common options, the terminal check,
planning a desired-state file against the live database, and a read-only view of the chosen
organization.

Imported by `plan`, which must not load the ORM or Alembic: only click, the standard library and
light userctl modules at the top; everything that touches the database is imported inside the
functions that need it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

import click

from userctl import state
from userctl.cli.context import app
from userctl.errors import CodeRejected, InputError, Problem, UsageError
from userctl.gcpause import gc_paused
from userctl.plan import Finding, Plan, loads, provenance
from userctl.planner import PlanOptions, diff

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

DEFAULT_LOCK_TIMEOUT_S = 30.0

operator_option = click.option(
    "--operator",
    envvar="USERCTL_OPERATOR",
    required=True,
    metavar="EMAIL",
    help="Who confirms: a user of the organization with an enrolled "
    "authenticator (or USERCTL_OPERATOR).",
)
otp_option = click.option(
    "--otp-code",
    envvar="USERCTL_OTP_CODE",
    metavar="CODE",
    help="Six-digit TOTP code (or USERCTL_OTP_CODE); asked for on a terminal when needed.",
)


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses NaN, which compares false with every bound and so would
    pass any range (and then fail deep inside, as "unexpected ValueError")."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number: float = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


# A day: long enough for any queue of applies, short enough to be a mistake past it.
MAX_LOCK_TIMEOUT_S = 86400.0
lock_timeout_type = FiniteRange(min=0, max=MAX_LOCK_TIMEOUT_S)
lock_option = click.option(
    "--lock-timeout",
    type=lock_timeout_type,
    default=DEFAULT_LOCK_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for another apply of this organization.",
)


DEFAULT_MAX_AGE_DAYS = 7.0
max_age_option = click.option(
    "--max-age",
    type=FiniteRange(min=0, max=3650),
    default=DEFAULT_MAX_AGE_DAYS,
    show_default=True,
    metavar="DAYS",
    help="Refuse a saved plan made longer ago than this: what was reviewed then "
    "may no longer be what is wanted.",
)


def result_format_option(schema: str) -> Callable[[click.decorators.FC], click.decorators.FC]:
    """`--format text|json` of a command that acts: json is one document on stdout, described by
    `schema` in schemas/; prompts, progress and notes then go to stderr only."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help=f"json: one document on stdout (schemas/{schema}); everything else goes to stderr.",
    )


def planning_options(f: click.decorators.FC) -> click.decorators.FC:
    """Options that shape a plan, shared by `plan` and `apply -f`."""
    for decorator in reversed(
        [
            click.option(
                "--no-prune",
                is_flag=True,
                help="Keep users and roles that are absent from the file.",
            ),
            click.option(
                "--replace",
                "replace",
                multiple=True,
                metavar="EMAIL",
                help="Delete and re-create this user (needed to change id_type, "
                "id_number or phone). Repeatable.",
            ),
            click.option(
                "--allow-mass-removal",
                is_flag=True,
                help="Lift the guard against removing over 25% of the users.",
            ),
        ]
    ):
        f = decorator(f)
    return f


def invitation_options(f: click.decorators.FC) -> click.decorators.FC:
    """Where invitation emails come from and link to, for the commands that send them."""
    for decorator in reversed(
        [
            click.option(
                "--invite-base-url",
                metavar="URL",
                help="The registration page invitations link to (the token is "
                "appended); needed to send them.",
            ),
            click.option(
                "--smtp-from",
                metavar="ADDRESS",
                help="The From of invitation emails [default: no-reply@platform.invalid].",
            ),
        ]
    ):
        f = decorator(f)
    return f


if TYPE_CHECKING:
    from userctl.apply.outbox import Letterhead


def letterhead(
    invite_base_url: str | None, smtp_from: str | None, invitations: str | None
) -> "Letterhead":
    """The invitations' letterhead; `invitations`, when there are some to send, says which (for
    the refusal when no --invite-base-url says where their links point)."""
    from userctl.apply import outbox

    if not (invite_base_url or "").strip():
        if invitations is not None:
            # Without it every link would point at platform.invalid, and no invitee could register.
            raise UsageError(
                f"{invitations} would be sent over {outbox.ENV_SMTP_URL} with a link to "
                f"nowhere: set {outbox.ENV_BASE_URL} (or --invite-base-url) to the registration "
                "page's URL. Nothing was written"
            )
        return outbox.Letterhead(sender=smtp_from or outbox.DEFAULT_FROM)
    return outbox.Letterhead(
        outbox.parse_base_url(invite_base_url or ""), smtp_from or outbox.DEFAULT_FROM
    )


reason_option = click.option(
    "--reason",
    envvar="USERCTL_REASON",
    metavar="TEXT",
    help="Why this change is made (a ticket id, the pull request's title): recorded in "
    "the plan and in every audit event of its apply (or USERCTL_REASON). Required when "
    "the policies say require_reason.",
)


def make_options(
    no_prune: bool,
    replace: tuple[str, ...],
    allow_mass_removal: bool,
    operator: str | None,
    reason: str | None = None,
) -> PlanOptions:
    from userctl.replan import reason_problem

    problem = reason_problem(reason)
    if problem is not None:
        raise UsageError(f"--reason: {problem}")
    return PlanOptions(
        prune=not no_prune,
        replace=frozenset(e.strip().lower() for e in replace),
        allow_mass_removal=allow_mass_removal,
        operator=operator.strip().lower() if operator else None,
        reason=reason,
    )


T = TypeVar("T")
# Typing slips happen; three tries stay well inside the lockout (otp.MAX_FAILURES in a row).
MAX_PROMPTED_CODES = 3


def with_code(
    run: Callable[[str | None, dt.datetime], T],
    code: str | None,
    ask: bool,
    prompt: str = "TOTP code",
) -> T:
    """`run(code, read_at)`, where `ask` says the code is to be typed at a hidden prompt, and
    `read_at` is when the code was read: the process clock as the prompt returned, or when the
    command started for a code given by option or variable. `run` has the code judged at that
    moment (otp.verify_operator_code), so that what the command does first (planning a large
    file) cannot expire a code that was valid when given. A typed code that is rejected is asked
    for again, up to MAX_PROMPTED_CODES times: each try is a whole `run`, so it is checked, and a
    wrong one counted, in its own locked transaction that writes nothing else
    (otp.locked_write). A code given by option or variable is never tried again: nobody is there
    to type another."""
    from userctl.clock import utcnow

    read_at = app().started_at
    for attempt in range(1, MAX_PROMPTED_CODES + 1):
        if ask:
            code = click.prompt(prompt, hide_input=True, err=True)
            read_at = utcnow()
        try:
            return run(code, read_at)
        except CodeRejected as exc:
            if not ask or attempt == MAX_PROMPTED_CODES:
                raise
            click.echo(f"Error: {exc}", err=True)
    raise AssertionError("unreachable: the last attempt returns or raises")


def interactive() -> bool:
    """Whether there is someone to ask: a prompt needs a keyboard on stdin, and is written to
    stderr so that it never mixes into output a script captures."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def read_plan_file(path: str) -> Plan:
    """A saved plan whose size, format and digest are right; nothing about it is trusted yet."""
    from userctl.desired.reader import MAX_DOCUMENT_BYTES, read_bounded

    data = read_bounded(
        path,
        MAX_DOCUMENT_BYTES,
        what="saved plan",
        advice="it is not one `plan --out` wrote",
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a saved plan (not UTF-8 text)") from None
    return loads(text, source=path)


def plan_from_file(
    engine: "Engine",
    path: str | os.PathLike[str],
    options: PlanOptions,
    organization: str | None,
    now: dt.datetime,
) -> Plan:
    """The edge around the pure planner: load the file, read the live snapshot in a read-only
    transaction, plan, and turn planner problems into FILE:LINE:COL."""
    from userctl import hygiene
    from userctl.db.engine import begin_read, shown
    from userctl.db.hygiene import read_hygiene
    from userctl.db.migrate import require_current
    from userctl.db.snapshot import read_live_state
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
        require_current(engine)
        with begin_read(engine) as conn:
            live = read_live_state(conn, desired.organization)
            facts, settings = read_hygiene(conn, live, now)
        try:
            planned = diff(desired, live, options, now.date())
        except InputError as exc:
            raise InputError(locate(exc.problems, desired)) from None
        planned = hygiene.with_findings(
            planned, facts, settings, now
        )  # every plan shows them (issue 13)
        findings = tuple(located_findings(planned.findings, desired))
    return replace(
        planned,
        findings=findings,
        provenance=provenance(now, file_hashes(path), git_commit(path), shown(engine.url)),
    )


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


def file_hashes(path: str | os.PathLike[str]) -> dict[str, str]:
    """The SHA-256 of each desired-state file `path` names (a file, or a directory's *.yaml), by
    the path as given."""
    from userctl.desired.reader import MAX_FILE_BYTES, read_bounded

    files = sorted(Path(path).glob("*.yaml")) if os.path.isdir(path) else [Path(path)]
    # Read again after loading: bounded like the load, should the file have grown meanwhile.
    return {
        str(f): "sha256:"
        + hashlib.sha256(
            read_bounded(f, MAX_FILE_BYTES, advice="split the users across several files")
        ).hexdigest()
        for f in files
        if f.is_file()
    }


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


@contextlib.contextmanager
def reading_database() -> Iterator["Connection"]:
    """A read-only transaction on a database whose schema this userctl knows."""
    from userctl.db.engine import begin_read
    from userctl.db.migrate import require_current

    engine = app().engine()
    require_current(engine)
    with begin_read(engine) as conn:
        yield conn


@contextlib.contextmanager
def reading() -> Iterator[tuple["Connection", int, state.Organization]]:
    """A read-only snapshot of the chosen organization (`--organization`, or the only one)."""
    with reading_database() as conn:
        from userctl.db.snapshot import resolve_organization

        org_id, org = resolve_organization(conn, app().organization)
        yield conn, org_id, org
