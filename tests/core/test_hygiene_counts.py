"""A plan's hygiene findings count the privileged users without an authenticator and word only
the first ten (hygiene.Unenrolled: emails, an Account built for those shown): the same findings,
counts included, as the same users given as Accounts, on generated organizations."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from userctl import hygiene
from userctl.hygiene import Account, HygieneFacts, ReviewSettings, Unenrolled

NOW = dt.datetime(2026, 12, 6, 12, 0, 0)
PRIVILEGED = frozenset({"payouts.create"})
PLAIN = frozenset({"users.view"})


def _organization(seed: int) -> tuple[list[Account], dict[str, Account]]:
    """Dormant candidates as the database gives them (a few of them privileged and unenrolled
    too), and the privileged unenrolled users a snapshot knows by email."""
    rng = random.Random(seed)
    emails = [f"u{i:05d}@{rng.choice('abc')}.co" for i in rng.sample(range(99_999), 3_000)]
    candidates, unenrolled = [], {}
    for email in emails:
        if rng.random() < 0.05:
            candidates.append(
                Account(
                    email,
                    "active",
                    "R",
                    rng.choice((PRIVILEGED, PLAIN)),
                    rng.random() < 0.5,
                    NOW - dt.timedelta(days=rng.randrange(50, 400)),
                    two_factor=rng.choice(("required", "optional")),
                )
            )
        elif rng.random() < 0.6:
            unenrolled[email] = Account(
                email,
                "active",
                "R",
                PRIVILEGED,
                False,
                NOW,
                two_factor=rng.choice(("required", "optional")),
            )
    return candidates, unenrolled


@pytest.mark.parametrize("seed", range(8))
def test_counted_findings_equal_those_of_every_account_built(seed: int) -> None:
    candidates, unenrolled = _organization(seed)
    rng = random.Random(seed)
    skip = frozenset(rng.sample(sorted(unenrolled), 40) + [a.email for a in candidates[:3]])
    settings = ReviewSettings(blocking=frozenset({hygiene.DORMANT}) if seed % 2 else frozenset())
    order = list(unenrolled)
    rng.shuffle(order)  # a snapshot keeps the database's order, not the emails'
    built: list[str] = []

    def account(email: str) -> Account:
        built.append(email)
        return unenrolled[email]

    counted = HygieneFacts(candidates, skip=skip, unenrolled=Unenrolled(order, account))
    whole = HygieneFacts([*candidates, *unenrolled.values()], skip=skip)

    for limit in (None, hygiene.PLAN_LIMIT, 1):
        built.clear()
        found = hygiene.findings(counted, settings, NOW, limit)
        assert found == hygiene.findings(whole, settings, NOW, limit)
        if limit is not None:
            assert len(built) <= limit  # only those shown were built

    # The count against a brute-force one.
    brute = sum(
        1
        for a in (*candidates, *unenrolled.values())
        if a.email not in skip
        and not a.totp_enrolled
        and a.status == "active"
        and a.permissions & {"payouts.create"}
    )
    found = hygiene.findings(counted, settings, NOW, hygiene.PLAN_LIMIT)
    codes = [f for f in found if f.code == hygiene.PRIVILEGED_WITHOUT_2FA]
    assert len(codes) == hygiene.PLAN_LIMIT + 1
    assert f"and {brute - hygiene.PLAN_LIMIT} more" in codes[-1].message
