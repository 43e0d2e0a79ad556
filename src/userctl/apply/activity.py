"""`userctl activity import FILE.csv`: last logins (header `email,last_login_at`) for a platform
that keeps them elsewhere, written to `users.last_login_at`. `plan_activity` is pure: it reads
the file's bytes against the users' current last logins; `import_activity` runs it and writes
what it returns under the organization lock, in one transaction.

Idempotent: a row whose time is already recorded is "unchanged", and so is one older than the
recorded time (a last login never moves back: an old export must not make an active user look
dormant again, nor hide a later login). Every bad row (unknown user, a time that is not ISO 8601
or lies in the future, an email twice) is reported as FILE:LINE:COL, and then nothing is imported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Mapping

from userctl.apply.accounts_import import _LINE_BREAK, _decode, _Reader, csv_rows
from userctl.clock import iso_z, naive_utc, parse_utc
from userctl.errors import IdentityClash, InputError, UsageError
from userctl.names import text_problem
from userctl.printable import printable
from userctl.state import email_key
from userctl.verification import NOTHING_NEEDED

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

COLUMNS: Final = ("email", "last_login_at")
# The email is held to the rule of users.email; the instant is parsed (and its length capped).
STORED_IN: Final = {"email": "users.email"}


@dataclass(frozen=True, slots=True)
class ActivityPlan:
    updated: Mapping[str, dt.datetime]  # email -> the new last login
    unchanged: int  # rows whose time is recorded already, or older than the recorded one


@dataclass(frozen=True, slots=True)
class ActivityResult:
    organization: str
    plan: ActivityPlan
    audit_head: str | None = None  # None when nothing was recorded, so nothing was appended


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 date or date-time as naive UTC whole seconds (a time without a zone is UTC;
    MariaDB keeps no fraction, and idempotence compares what it stored). Raises ValueError."""
    return parse_utc(text).replace(microsecond=0)


def plan_activity(
    data: bytes, source: str, recorded: Mapping[str, dt.datetime | None], now: dt.datetime
) -> ActivityPlan:
    """Which users' last login `data` moves forward; `recorded` maps every user's email (lower
    case) to their current last login. Raises InputError naming every bad row."""
    text = _decode(data, source)
    reader = _Reader(source, _LINE_BREAK.split(text))
    first_line: dict[str, int] = {}
    updated: dict[str, dt.datetime] = {}
    unchanged = 0
    latest = naive_utc(now)
    for line, values, cols in csv_rows(text, reader, COLUMNS, STORED_IN):
        email = email_key(values["email"])
        if email in first_line:
            reader.problem(
                line, f"{email} is also on line {first_line[email]}", "email", cols["email"]
            )
            continue
        first_line[email] = line
        if email not in recorded:
            reader.problem(line, f"no user {email!r} in this organization", "email", cols["email"])
        try:
            when: dt.datetime | None = parse_instant(values["last_login_at"])
        except ValueError as exc:
            when = None
            reader.problem(
                line,
                f"{exc}, e.g. 2026-11-30T08:15:00Z",
                "last_login_at",
                cols["last_login_at"],
            )
        if when is not None and when > latest:
            reader.problem(
                line,
                f"{iso_z(when)} is in the future (now is {iso_z(latest)})",
                "last_login_at",
                cols["last_login_at"],
            )
        if email not in recorded or when is None or when > latest:
            continue
        before = recorded[email]
        if before is not None and when <= before:
            unchanged += 1
        else:
            updated[email] = when
    if reader.problems:
        raise InputError(sorted(reader.problems, key=lambda p: (p.line or 0, p.col or 0)))
    return ActivityPlan(updated, unchanged)


def import_activity(
    engine: "Engine",
    organization: str | None,
    data: bytes,
    source: str,
    operator: str | None,
    lock_timeout_s: float,
    now: dt.datetime,
) -> ActivityResult:
    """Record the last logins of `data` in `organization` (None: the only one), all or none."""
    from sqlalchemy import bindparam, select, update

    from userctl.apply import audit
    from userctl.apply.unverified import unverified_operator
    from userctl.db import tables
    from userctl.db.engine import begin_read, begin_write, lock_organization
    from userctl.db.migrate import require_current
    from userctl.db.snapshot import resolve_organization
    from userctl.plan import organization_address

    require_current(engine)
    # The file's name is recorded in the audit event: free text like any other (names.text_problem).
    problem = text_problem(source)
    if problem is not None:
        raise UsageError(printable(f"the file name {source} {problem}; rename the file"))
    with begin_read(engine) as conn:
        slug = resolve_organization(conn, organization)[1].slug
    u = tables.users.c
    with begin_write(engine, lock_timeout_s=lock_timeout_s, organization=slug) as conn:
        org_id = lock_organization(conn, slug, lock_timeout_s)
        who = unverified_operator(conn, org_id, "activity import", operator, now=now)
        recorded: dict[str, dt.datetime | None] = {}
        held: dict[str, list[str]] = {}  # identity -> its stored emails
        for e, at in conn.execute(
            select(u.email, u.last_login_at).where(u.organization_id == org_id)
        ):
            recorded[email_key(e)] = at
            held.setdefault(email_key(e), []).append(str(e))
        result = plan_activity(data, source, recorded, now)
        # A login of an identity several rows hold says nothing of which account logged in.
        clashing = sorted(k for k in result.updated if len(held[k]) > 1)
        if clashing:
            raise IdentityClash(
                "activity import refused: "
                + "; ".join(
                    f"{k} names {len(held[k])} users whose emails differ only by case "
                    f"({', '.join(sorted(held[k]))})"
                    for k in clashing
                )
                + ". Nothing was written"
            )
        head = None
        if result.updated:
            # updated_at is kept: a login is no edit of the user's record.
            conn.execute(
                update(tables.users)
                .where(u.organization_id == org_id, u.email_key == bindparam("key"))
                .values(last_login_at=bindparam("at"), updated_at=u.updated_at),
                [{"key": email, "at": at} for email, at in sorted(result.updated.items())],
            )
            # Last logins decide which accounts look dormant: who fed them in, and which file, is
            # evidence an auditor asks for. One event per import, not per user.
            head = audit.append_events(
                conn,
                org_id,
                [
                    audit.AuditRecord(
                        operator=who,
                        verified_by=NOTHING_NEEDED.to_text(),
                        operator_verified=False,
                        action="activity.import",
                        address=organization_address(slug),
                        after={
                            "file": source,
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "updated": len(result.updated),
                            "unchanged": result.unchanged,
                        },
                    )
                ],
                now,
            )
    return ActivityResult(slug, result, head)
