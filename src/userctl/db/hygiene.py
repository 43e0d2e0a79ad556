"""What the hygiene findings and the access review read: the organization's review settings and
the users and invitations hygiene looks at (`userctl.hygiene` decides). Set-based Core SELECTs
inside the caller's transaction."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from userctl.clock import naive_utc
from userctl.db import tables
from userctl.db.snapshot import read_case_duplicates, read_organization, read_roles
from userctl.hygiene import (
    DORMANT,
    Account,
    HygieneFacts,
    Invitation,
    ReviewSettings,
    dormant_cutoff,
    expiry_findings,
    findings,
    privileged,
)
from userctl.plan import Finding
from userctl.state import LiveState, Organization, email_key, identity_keys


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
    """The organization's `max_inactive_days`, `review_every_days` and which hygiene findings
    block, from its stored policies: a declared `max_inactive_days` is a rule, so a dormant user
    left active blocks the plan; undeclared, the PCI defaults only inform."""
    from userctl.db.snapshot import read_policies

    policies = read_policies(conn, org_id)
    inactive, review = (
        policies.get(("max_inactive_days", "")),
        policies.get(("review_every_days", "")),
    )
    defaults = ReviewSettings()
    return ReviewSettings(
        max_inactive_days=inactive
        if isinstance(inactive, int) and not isinstance(inactive, bool)
        else defaults.max_inactive_days,
        review_every_days=review
        if isinstance(review, int) and not isinstance(review, bool)
        else defaults.review_every_days,
        blocking=frozenset({DORMANT}) if inactive is not None else frozenset(),
    )


def read_facts(
    conn: Connection,
    org_id: int,
    settings: ReviewSettings,
    now: dt.datetime,
    *,
    everyone: bool = False,
    dormant_only: bool = False,
) -> HygieneFacts:
    """The users hygiene may flag — active ones not seen since the dormancy cutoff, or holding a
    privileged role without an authenticator (`dormant_only`: the former alone; `everyone`: all
    users, for the review) — and the latest invitation of every user still invited."""
    u, n = tables.users.c, tables.notifications.c
    roles = read_roles(conn, org_id)
    role_names = {
        int(i): name
        for i, name in conn.execute(
            select(tables.roles.c.id, tables.roles.c.name).where(
                tables.roles.c.organization_id == org_id
            )
        )
    }
    query = select(
        u.email, u.status, u.role_id, u.totp_enrolled, u.created_at, u.last_login_at, u.two_factor
    ).where(u.organization_id == org_id)
    if not everyone:
        cutoff = dormant_cutoff(settings, now)
        privileged_roles = [
            i for i, name in role_names.items() if privileged(roles[name].permissions)
        ]
        dormant = func.coalesce(u.last_login_at, u.created_at) < cutoff
        unenrolled = and_(u.totp_enrolled == False, u.role_id.in_(privileged_roles))  # noqa: E712 - SQL, not Python
        query = query.where(
            u.status == "active", dormant if dormant_only else or_(dormant, unenrolled)
        )
    # Keyed as the live state keys them: rows of one identity stay apart, each seen.
    keys = _identity_keys(conn, org_id)
    accounts = []
    for email, status, role_id, enrolled, created_at, last_login_at, two_factor in conn.execute(
        query
    ):
        role = role_names[int(role_id)]
        accounts.append(
            Account(
                keys.get(email) or email_key(email),
                status,
                role,
                roles[role].permissions,
                bool(enrolled),
                created_at,
                last_login_at,
                str(two_factor),
            )
        )
    latest = (
        select(n.user_id, func.max(n.id).label("id"))
        .where(n.organization_id == org_id, n.user_id.is_not(None))
        .group_by(n.user_id)
        .subquery()
    )
    invitations = [
        Invitation(keys.get(email) or email_key(email), expires_at)
        for email, expires_at in conn.execute(
            select(u.email, n.expires_at)
            .join(latest, latest.c.id == n.id)
            .join(tables.users, u.id == n.user_id)
            .where(u.status == "invited", n.status == "sent", n.expires_at.is_not(None))
        )
    ]
    return HygieneFacts(tuple(accounts), tuple(invitations))


def _identity_keys(conn: Connection, org_id: int) -> dict[str, str]:
    """Stored email -> its key in the live state, for the rows that share an identity."""
    keys: dict[str, str] = {}
    for group in read_case_duplicates(conn, org_id):
        keys.update(identity_keys(group))
    return keys


def read_hygiene(
    conn: Connection, live: LiveState, now: dt.datetime
) -> tuple[HygieneFacts, ReviewSettings]:
    """What a plan's hygiene findings need, in the plan's read transaction. The planner's
    snapshot `live` already says who holds a privileged role without an authenticator; only the
    dormant candidates are read (filtered by the database: a plan of 100k users reads the few)."""
    org_id = read_organization(conn, live.organization.slug)[0]
    settings = settings_for(conn, org_id)
    facts = read_facts(conn, org_id, settings, now, dormant_only=True)
    known = {a.email for a in facts.accounts}
    moment = naive_utc(now)
    # Not dormant (they are not among the candidates): their creation is taken as now.
    privileged_roles = {name for name, role in live.roles.items() if privileged(role.permissions)}
    unenrolled = [
        Account(
            email,
            u.status,
            u.role,
            live.roles[u.role].permissions,
            False,
            moment,
            two_factor=u.two_factor,
        )
        for email, u in live.users.items()
        if u.role in privileged_roles
        and u.status == "active"
        and not u.totp_enrolled
        and email not in known
    ]
    return HygieneFacts((*facts.accounts, *unenrolled), facts.invitations), settings
