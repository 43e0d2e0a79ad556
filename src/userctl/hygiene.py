"""Account hygiene (PCI DSS 8.2.6, 7.2.4): findings about the live organization that no plan
causes but every plan should show — users dormant past the policy's limit, invitations that
expired unused, holders of a privileged permission without an authenticator — and the two
settings the access review runs on. Also expiring access (`expiry_findings`), which the reports
show but a plan does not (a plan deactivates the expired itself). Pure: callers read the facts
and the settings at the edges (`db.hygiene`) and hand them here.

The findings are shown, not enforced: a finding blocks (a plan, `userctl hygiene`'s exit) only
when its code is in the `blocking` set, which the organization's policies choose, except a user
past their expiry and still active, which always blocks a report.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Final, Iterable, Mapping, Sequence

from userctl.clock import iso_z, naive_utc
from userctl.plan import Finding, Plan
from userctl.printable import shell_command
from userctl.state import PRIVILEGED_PERMISSIONS, User

# Defaults of `policies.max_inactive_days` (PCI DSS 8.2.6) and `policies.review_every_days`
# (PCI DSS 7.2.4: at least every six months).
DEFAULT_MAX_INACTIVE_DAYS: Final = 90
DEFAULT_REVIEW_EVERY_DAYS: Final = 182

DORMANT: Final = "dormant_user"
STALE_INVITATION: Final = "stale_invitation"
PRIVILEGED_WITHOUT_2FA: Final = "privileged_without_2fa"
CODES: Final = (DORMANT, STALE_INVITATION, PRIVILEGED_WITHOUT_2FA)
# Expiring access, reported by `hygiene`, `policy check` and the access review (a plan deactivates
# the expired itself, so a plan never shows these): who is past their expiry and still has access
# (always blocking), and who expires within the horizon.
EXPIRED: Final = "expired_user"
EXPIRING: Final = "expiring_user"


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    """What the organization's policies say about hygiene and reviews (the defaults until it
    declares otherwise). `blocking`: finding codes that block instead of informing."""

    max_inactive_days: int = DEFAULT_MAX_INACTIVE_DAYS
    review_every_days: int = DEFAULT_REVIEW_EVERY_DAYS
    blocking: frozenset[str] = frozenset()

    def to_data(self) -> dict[str, object]:
        return {
            "max_inactive_days": self.max_inactive_days,
            "review_every_days": self.review_every_days,
            "blocking": sorted(self.blocking),
        }


@dataclass(frozen=True, slots=True)
class Account:
    """One user as hygiene sees them."""

    email: str
    status: str
    role: str
    permissions: frozenset[str]
    totp_enrolled: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None = None
    two_factor: str | None = None  # required / optional / disabled; None: not read


@dataclass(frozen=True, slots=True)
class Invitation:
    """The latest invitation sent to a user who is still `invited`."""

    email: str
    expires_at: dt.datetime


# Inputs to `findings`, never compared or printed (its `account` is a function): no generated
# __eq__/__hash__/__repr__ to compile at every import, nor for HygieneFacts below.
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Unenrolled:
    """Holders of a privileged permission without an authenticator, known by email only (a plan's
    snapshot has them all: half the organization at scale). Findings count them and build an
    Account (`account`) only for the few a plan shows."""

    emails: Sequence[str] = ()
    account: Callable[[str], Account] | None = None


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class HygieneFacts:
    accounts: Sequence[Account] = ()
    invitations: Sequence[Invitation] = ()
    skip: frozenset[str] = field(
        default_factory=frozenset
    )  # emails a plan already deactivates or deletes
    # More privileged users without an authenticator, none of them among `accounts`.
    unenrolled: Unenrolled = Unenrolled()


def dormant_cutoff(settings: ReviewSettings, now: dt.datetime) -> dt.datetime:
    """Users whose last login (or, never having logged in, creation) is before this are dormant."""
    return naive_utc(now) - dt.timedelta(days=settings.max_inactive_days)


def privileged(permissions: Iterable[str]) -> list[str]:
    return sorted(PRIVILEGED_PERMISSIONS.intersection(permissions))


def is_dormant(account: Account, settings: ReviewSettings, now: dt.datetime) -> bool:
    last_seen = account.last_login_at or account.created_at
    return account.status == "active" and last_seen < dormant_cutoff(settings, now)


def findings(
    facts: HygieneFacts, settings: ReviewSettings, now: dt.datetime, limit: int | None = None
) -> list[Finding]:
    """Every hygiene finding, by kind then email; with `limit`, the first `limit` of each kind
    and then one that counts the rest (only those shown are worded)."""
    moment = naive_utc(now)
    accounts = sorted(
        (a for a in facts.accounts if a.email not in facts.skip), key=lambda a: a.email
    )
    dormant = [a for a in accounts if is_dormant(a, settings, moment)]
    stale = sorted(
        (i for i in facts.invitations if i.email not in facts.skip and i.expires_at < moment),
        key=lambda i: i.email,
    )
    unenrolled, unenrolled_total = _unenrolled(accounts, facts, limit)
    found: list[Finding] = []

    def dormant_message(a: Any) -> str:
        return _dormant_message(a, settings, moment)

    kinds: tuple[tuple[str, Sequence[Any], int, Callable[[Any], str]], ...] = (
        (DORMANT, dormant, len(dormant), dormant_message),
        (STALE_INVITATION, stale, len(stale), _stale_message),
        (PRIVILEGED_WITHOUT_2FA, unenrolled, unenrolled_total, _unenrolled_message),
    )
    for code, items, total, word in kinds:
        shown = items if limit is None else items[:limit]
        found.extend(_finding(code, settings, word(item)) for item in shown)
        if total > len(shown):
            found.append(
                _finding(
                    code,
                    settings,
                    f"and {total - len(shown)} more {code} finding(s): "
                    "`userctl hygiene` lists them all",
                )
            )
    return found


def _unenrolled(
    accounts: Sequence[Account], facts: HygieneFacts, limit: int | None
) -> tuple[Sequence[Account], int]:
    """The privileged users without an authenticator, in email order (the first `limit` of them
    with a limit), and how many there are in all: `accounts` (built, sorted, not skipped) that
    are, then `facts.unenrolled`, of which only the first `limit` are built and sorted."""
    built = [
        a
        for a in accounts
        if a.status == "active"
        and not a.totp_enrolled
        and not PRIVILEGED_PERMISSIONS.isdisjoint(a.permissions)
    ]
    emails = [e for e in facts.unenrolled.emails if e not in facts.skip]
    if not emails:
        return built, len(built)
    build = facts.unenrolled.account
    assert build is not None, "unenrolled emails come with their account builder"
    first = heapq.nsmallest(limit, emails) if limit is not None else sorted(emails)
    merged = list(heapq.merge(built, map(build, first), key=lambda a: a.email))
    return merged, len(built) + len(emails)


def _stale_message(invitation: Any) -> str:
    return (
        f"{invitation.email} never registered: their invitation expired "
        f"{iso_z(invitation.expires_at)}; send a new one with "
        f"`{shell_command('userctl', 'notifications', 'resend', invitation.email)}`, or remove "
        "them from the file"
    )


def _unenrolled_message(a: Any) -> str:
    """The advice follows what is already declared: a user with `two_factor: required` who has not
    enrolled needs nothing in the file, only to log in."""
    holds = f"{a.email} holds {', '.join(privileged(a.permissions))} (role {a.role})"
    if a.two_factor == "required":
        return (
            f"{holds} and has `two_factor: required` but has not enrolled an authenticator yet: "
            "they must enrol at their next login"
        )
    return (
        f"{holds} without an enrolled authenticator: set `two_factor: required` for them in the "
        "file, so that they must enrol at their next login"
    )


def _dormant_message(a: Account, settings: ReviewSettings, now: dt.datetime) -> str:
    if a.last_login_at is not None:
        since = f"no login for {(now - a.last_login_at).days} days (last {iso_z(a.last_login_at)})"
    else:
        since = (
            f"never logged in since created {(now - a.created_at).days} "
            f"days ago ({iso_z(a.created_at)})"
        )
    return (
        f"{a.email}: {since}, over the {settings.max_inactive_days}-day limit (PCI DSS "
        f"8.2.6); deactivate them (`status: inactive` under `{a.email}:` in the file) or "
        "remove them from the file"
    )


def _finding(code: str, settings: ReviewSettings, message: str) -> Finding:
    return Finding(code, code in settings.blocking, message)


def skipped_by(changes: Iterable[tuple[str, str, str]]) -> frozenset[str]:
    """Emails whose user a plan's (kind, action, email) changes deactivate or delete: a plan that
    already fixes a dormant account is not told to fix it."""
    return frozenset(
        email
        for kind, action, email in changes
        if kind == "user" and action in ("deactivate", "delete")
    )


# A plan shows this many findings of each kind, then one that counts the rest: an organization of
# 100k users may have thousands, and a plan (a PR comment) must stay readable and fast.
PLAN_LIMIT: Final = 10


def with_findings(
    plan: Plan, facts: HygieneFacts, settings: ReviewSettings, now: dt.datetime
) -> Plan:
    """`plan` with the hygiene findings of the live state it was planned on appended (after the
    guards'), leaving out users it already deactivates or deletes."""
    skip = skipped_by((c.kind, c.action, c.key[0]) for c in plan.active_changes)
    # Advice is about the state the plan leaves: a plan that requires 2FA of a user has done
    # what the note would ask for.
    after = {
        c.key[0]: c.user_after()["two_factor"]
        for c in plan.active_changes
        if c.kind == "user" and c.after is not None
    }

    def as_after(a: Account) -> Account:
        return replace(a, two_factor=after[a.email]) if a.email in after else a

    build = facts.unenrolled.account
    unenrolled = replace(
        facts.unenrolled, account=None if build is None else lambda email: as_after(build(email))
    )
    found = findings(
        replace(
            facts,
            accounts=tuple(map(as_after, facts.accounts)),
            skip=facts.skip | skip,
            unenrolled=unenrolled,
        ),
        settings,
        now,
        PLAN_LIMIT,
    )
    return replace(plan, findings=(*plan.findings, *found))


def count_codes(found: Collection[Finding]) -> dict[str, int]:
    return {code: sum(f.code == code for f in found) for code in CODES}


# How far ahead the reports name users whose access ends. Reports run weekly or monthly (an access
# review, a scheduled `policy check`), so they look further ahead than a plan's own notes.
EXPIRY_HORIZON_DAYS: Final = 30


def days_left(expires: str, today: dt.date, horizon: int) -> int | None:
    """How many days from `today` to `expires` (a user's last day, YYYY-MM-DD; 0 when it is
    today) while that is within `horizon` days, else None (past, or further away). The one count
    for the plan's note (planner.EXPIRY_NOTICE_DAYS) and the reports' (EXPIRY_HORIZON_DAYS)."""
    left = (dt.date.fromisoformat(expires) - today).days
    return left if 0 <= left <= horizon else None


def expiring_message(email: str, expires: str, left: int) -> str:
    """How the plan and the reports name a user whose last day is `left` days away."""
    when = "today" if left == 0 else f"in {left} day{'s' if left > 1 else ''}"
    return f"{email} expires {when} ({expires}): deactivated by the first plan after that day"


def expiry_findings(users: Mapping[str, User], today: dt.date) -> list[Finding]:
    """A blocking `expired_user` finding for every user past their expiry who is not inactive
    (only a plan that was not run since leaves one: the next one deactivates them), then an
    `expiring_user` note for every one whose last day is within EXPIRY_HORIZON_DAYS, by date."""
    day = today.isoformat()
    expired, expiring = [], []
    for email in sorted(users):
        user = users[email]
        if user.expires is None or user.status == "inactive":
            continue
        if user.expires < day:
            expired.append(
                Finding(
                    EXPIRED,
                    True,
                    f"{email} expired on {user.expires} and is still {user.status}: run a plan "
                    "of the organization, which deactivates them with no new code",
                    ("users", email, "expires"),
                )
            )
        elif (left := days_left(user.expires, today, EXPIRY_HORIZON_DAYS)) is not None:
            expiring.append(
                (
                    user.expires,
                    Finding(
                        EXPIRING,
                        False,
                        expiring_message(email, user.expires, left),
                        ("users", email, "expires"),
                    ),
                )
            )
    return [*expired, *(f for _, f in sorted(expiring, key=lambda pair: pair[0]))]
