"""What the hygiene findings and the access review read: the organization's review settings and
the users and invitations hygiene looks at (`userctl.hygiene` decides). Set-based Core SELECTs
inside the caller's transaction; a plan's reads are named queries of db/plan_read.py, run here
through `snapshot.core_rows`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.engine import Connection

from userctl.db import plan_read, tables
from userctl.db.snapshot import core_rows, read_case_duplicates, read_policies
from userctl.hygiene import (
    HygieneFacts,
    ReviewSettings,
    dormant_cutoff,
    expiry_findings,
    findings,
    privileged,
)
from userctl.plan import Finding
from userctl.state import LiveState, Organization


def hygiene_report(
    conn: Connection, org_id: int, org: Organization, now: dt.datetime
) -> tuple[ReviewSettings, list[Finding]]:
    """`userctl hygiene`: the organization's settings and every finding on the live database."""
    from userctl.db.snapshot import read_live_state

    settings = settings_for(conn, org_id)
    return settings, findings_now(conn, org_id, read_live_state(conn, org.slug), settings, now)


def findings_now(
    conn: Connection, org_id: int, live: LiveState, settings: ReviewSettings, now: dt.datetime
) -> list[Finding]:
    """The findings of the live state `live` at `now` (what `hygiene` lists and the access review
    flags): dormant users, expired invitations, privileged users without 2FA, then who expires
    when and who is past it, which is part of who has access."""
    found = findings(read_facts(conn, org_id, settings, now), settings, now)
    return found + expiry_findings(live.users, now.date())


def settings_for(conn: Connection, org_id: int) -> ReviewSettings:
    """The organization's review settings, from its stored policies (plan_read.review_settings)."""
    return plan_read.review_settings(read_policies(conn, org_id))


def _accounts_query() -> Select[tuple[Any, ...]]:
    u = tables.users.c
    return select(
        u.email, u.status, u.role_id, u.totp_enrolled, u.created_at, u.last_login_at, u.two_factor
    )


def hygiene_queries(org_id: Any, cutoff: Any) -> dict[str, Select[tuple[Any, ...]]]:
    """plan_read's hygiene queries (see snapshot.plan_queries): the active users not seen since
    `cutoff`, and the latest invitation of every user still invited."""
    u, n = tables.users.c, tables.notifications.c
    latest = (
        select(n.user_id, func.max(n.id).label("id"))
        .where(n.organization_id == org_id, n.user_id.is_not(None))
        .group_by(n.user_id)
        .subquery()
    )
    return {
        "dormant": _accounts_query().where(
            u.organization_id == org_id,
            u.status == "active",
            func.coalesce(u.last_login_at, u.created_at) < cutoff,
        ),
        "invitations": select(u.email, n.expires_at)
        .join(latest, latest.c.id == n.id)
        .join(tables.users, u.id == n.user_id)
        .where(u.status == "invited", n.status == "sent", n.expires_at.is_not(None)),
    }


def read_facts(
    conn: Connection,
    org_id: int,
    settings: ReviewSettings,
    now: dt.datetime,
    *,
    everyone: bool = False,
) -> HygieneFacts:
    """The users hygiene may flag — active ones not seen since the dormancy cutoff, or holding a
    privileged role without an authenticator (`everyone`: all users, for the review) — and the
    latest invitation of every user still invited."""
    u = tables.users.c
    rows = core_rows(conn)
    role_rows = rows("roles", org_id=org_id)
    roles = plan_read.roles_from(role_rows, rows("role_permissions", org_id=org_id))
    role_names = {int(i): name for i, name, _ in role_rows}
    query = _accounts_query().where(u.organization_id == org_id)
    if not everyone:
        privileged_roles = [
            i for i, name in role_names.items() if privileged(roles[name].permissions)
        ]
        dormant = func.coalesce(u.last_login_at, u.created_at) < dormant_cutoff(settings, now)
        unenrolled = and_(u.totp_enrolled == False, u.role_id.in_(privileged_roles))  # noqa: E712 - SQL, not Python
        query = query.where(u.status == "active", or_(dormant, unenrolled))
    # Keyed as the live state keys them: rows of one identity stay apart, each seen.
    keys = plan_read.identity_keys(read_case_duplicates(conn, org_id))
    accounts = tuple(
        plan_read.account_from_row(row, keys, role_names, roles) for row in conn.execute(query)
    )
    return HygieneFacts(accounts, plan_read.invitations(rows, org_id, keys))


def read_hygiene(
    conn: Connection, live: LiveState, now: dt.datetime
) -> tuple[HygieneFacts, ReviewSettings]:
    """What a plan's hygiene findings need, in the plan's read transaction (plan_read.hygiene)."""
    return plan_read.hygiene(core_rows(conn), live, now)
