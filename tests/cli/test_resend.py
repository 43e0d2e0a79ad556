"""An invitation is one live token (DESIGN §8 invariant 9; apply/resend.py, outbox.revoke_tokens):
`notifications resend` used to ignore USERCTL_INVITE_BASE_URL and send without it, leave every
earlier registration link working, have no limit, and record whatever --operator said. Now it
shares send's refusals, revokes the earlier tokens, needs an operator who passes the one rule
(users.add) with a TOTP code, is limited per user, and is audited."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import ADMIN_PERMS, code_at, tables
from tests.apply.test_notify import SmtpServer, part, token_of
from tests.conftest import Factory, Operator, Runner
from userctl.apply import outbox
from userctl.apply.resend import RESEND_INTERVAL, RESENDS_PER_DAY, resend_invitation
from userctl.clock import utcnow
from userctl.db import tables as t
from userctl.db.engine import begin_read, begin_write
from userctl.errors import NotAuthorized, Refused

ORG = "acme-payments"
BASE_URL = "https://app.acme.co/join"
INVITEE = "late@acme.co"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


class Scene:
    def __init__(self, factory: Factory, engine: Engine) -> None:
        self.engine = engine
        self.org = factory.org(ORG, name="Acme Payments")
        admin = factory.role(self.org, "Admin", ADMIN_PERMS)
        viewer = factory.role(self.org, "Viewer", ["users.view", "users.manage"])
        self.root = factory.operator(self.org, "root@acme.co", admin)
        self.viewer = factory.operator(self.org, "viewer@acme.co", viewer)
        self.gone = factory.operator(self.org, "gone@acme.co", admin)
        self.expired = factory.operator(self.org, "expired@acme.co", admin)
        self.user = factory.user(self.org, INVITEE, viewer, status="invited")
        users = t.users.c
        with engine.begin() as conn:
            conn.execute(
                sa.update(t.users).where(users.email == "gone@acme.co").values(status="inactive")
            )
            conn.execute(
                sa.update(t.users)
                .where(users.email == "expired@acme.co")
                .values(expires=utcnow().date() - dt.timedelta(days=1))
            )
        other = factory.org("other")
        outsider_role = factory.role(other, "Admin", ADMIN_PERMS)
        self.outsider = factory.operator(other, "out@other.co", outsider_role)

    def resend(self, runner: Runner, op: Operator, *extra: str, **env: str | None) -> Any:
        return runner(
            "--organization",
            ORG,
            "notifications",
            "resend",
            INVITEE,
            "--operator",
            op.email,
            *extra,
            env={"USERCTL_INVITE_BASE_URL": BASE_URL, "USERCTL_SMTP_URL": None} | env,
        )

    def tokens(self) -> list[tuple[str, str | None]]:
        n = t.notifications.c
        with self.engine.connect() as conn:
            return [
                (r.status, r.token_hash)
                for r in conn.execute(
                    sa.select(n.status, n.token_hash).where(n.user_id == self.user).order_by(n.id)
                )
            ]

    def registers(self, token: str) -> bool:
        with begin_read(self.engine) as conn:
            return outbox.registering_user(conn, token, utcnow()) == self.user


@pytest.fixture
def scene(factory: Factory, engine: Engine) -> Scene:
    return Scene(factory, engine)


def test_resend_sends_one_live_link_to_the_configured_page_and_audits_the_operator(
    scene: Scene, runner: Runner, smtp: SmtpServer, engine: Engine
) -> None:
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, scene.org, scene.user, INVITEE, utcnow())
    assert outbox.send_queued(engine, smtp.url, utcnow()).sent == 1
    first = token_of(smtp.inbox.messages[0])
    assert scene.registers(first)

    done = scene.resend(
        runner, scene.root, "--otp-code", scene.root.code(), USERCTL_SMTP_URL=smtp.url
    )
    assert done.exit_code == 0, done.output
    assert "1 sent, 0 failed" in done.stdout
    second = smtp.inbox.messages[1]
    link = token_of(second)
    assert f"{BASE_URL}?token={link}" in part(second, "text/plain")
    assert "platform.invalid" not in part(second, "text/plain")
    assert not scene.registers(first) and scene.registers(link)
    assert [s for s, _ in scene.tokens()] == ["revoked", "sent"]
    assert scene.tokens()[0][1] is None

    log = json.loads(runner("--organization", ORG, "audit", "log", "--format", "json").stdout)
    [event] = [e for e in log if e["action"] == "notification.resend"]
    assert (event["operator"], event["verified_by"], event["address"]) == (
        "root@acme.co",
        "totp",
        f'user["{INVITEE}"]',
    )
    assert runner("--organization", ORG, "audit", "verify").exit_code == 0


def test_three_resends_leave_only_the_last_link_working(
    scene: Scene, engine: Engine, smtp: SmtpServer
) -> None:
    start = utcnow().replace(microsecond=0)
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, scene.org, scene.user, INVITEE, start)
    outbox.send_queued(engine, smtp.url, start)
    links = [token_of(smtp.inbox.messages[0])]
    for i in range(1, 4):
        moment = start + i * (RESEND_INTERVAL + dt.timedelta(minutes=1))
        resend_invitation(
            engine,
            ORG,
            INVITEE,
            "root@acme.co",
            code_at(scene.root, moment),
            now=moment,
            lock_timeout_s=5,
        )
        # Revoked when resent, not only once the new one goes out.
        with begin_read(engine) as conn:
            assert outbox.registering_user(conn, links[-1], moment) is None
        assert outbox.send_queued(engine, smtp.url, moment).sent == 1
        links.append(token_of(smtp.inbox.messages[-1]))
    with begin_read(engine) as conn:
        live = [outbox.registering_user(conn, link, moment) for link in links]
    assert live == [None, None, None, scene.user]
    assert [h is not None for _, h in scene.tokens()] == [False, False, False, True]


def test_resend_is_limited_per_user(scene: Scene, engine: Engine, runner: Runner) -> None:
    done = scene.resend(runner, scene.root, "--otp-code", scene.root.code())
    assert done.exit_code == 0, done.output
    before = tables(engine)
    again = scene.resend(
        runner, scene.root, "--otp-code", scene.root.code(utcnow().timestamp() + 30)
    )
    assert again.exit_code == 4, again.output
    assert "one resend per 10 minutes" in again.stderr and "Nothing was sent" in again.stderr
    assert tables(engine) == before  # refused before the code was looked at: not even booked

    # At most RESENDS_PER_DAY a rolling day, however far apart.
    start = utcnow().replace(microsecond=0) + RESEND_INTERVAL
    step = dt.timedelta(hours=1)
    for i in range(RESENDS_PER_DAY - 1):
        moment = start + i * step
        resend_invitation(
            engine,
            ORG,
            INVITEE,
            "root@acme.co",
            code_at(scene.root, moment),
            now=moment,
            lock_timeout_s=5,
        )
    moment = start + (RESENDS_PER_DAY - 1) * step
    with pytest.raises(Refused, match=f"{RESENDS_PER_DAY} new invitations in the last 24 hours"):
        resend_invitation(
            engine,
            ORG,
            INVITEE,
            "root@acme.co",
            code_at(scene.root, moment),
            now=moment,
            lock_timeout_s=5,
        )
    later = utcnow().replace(microsecond=0) + dt.timedelta(days=1, minutes=1)
    resend_invitation(
        engine,
        ORG,
        INVITEE,
        "root@acme.co",
        code_at(scene.root, later),
        now=later,
        lock_timeout_s=5,
    )


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("viewer", "lacks users.add"),
        ("gone", "is inactive"),
        ("expired", "expired on"),
        ("outsider", "is not a user of this organization"),
    ],
)
def test_resend_by_someone_who_may_not_act_is_refused(
    scene: Scene, engine: Engine, runner: Runner, who: str, why: str
) -> None:
    op: Operator = getattr(scene, who)
    before = tables(engine)
    refused = scene.resend(runner, op, "--otp-code", op.code())
    assert refused.exit_code == 4, refused.output
    assert why in refused.stderr and "Traceback" not in refused.output
    assert tables(engine) == before


def test_resend_without_a_code_or_with_a_wrong_one_is_refused(
    scene: Scene, engine: Engine, runner: Runner
) -> None:
    before = tables(engine)
    refused = scene.resend(runner, scene.root, USERCTL_OTP_CODE=None)
    assert refused.exit_code == 4, refused.output
    assert "--otp-code (or USERCTL_OTP_CODE) is required" in refused.stderr
    assert tables(engine) == before
    wrong = scene.resend(runner, scene.root, "--otp-code", "000000")
    assert wrong.exit_code == 4, wrong.output
    assert [s for s, _ in scene.tokens()] == []  # nothing queued; the failure alone is booked
    with pytest.raises(NotAuthorized):
        resend_invitation(
            engine, ORG, INVITEE, "nobody@acme.co", "123456", now=utcnow(), lock_timeout_s=5
        )


@pytest.mark.parametrize("smtp_set", [True, False])
def test_resend_without_a_registration_page_is_refused_like_send(
    scene: Scene, engine: Engine, runner: Runner, smtp: SmtpServer, smtp_set: bool
) -> None:
    before = tables(engine)
    refused = scene.resend(
        runner,
        scene.root,
        "--otp-code",
        scene.root.code(),
        USERCTL_INVITE_BASE_URL=None,
        USERCTL_SMTP_URL=smtp.url if smtp_set else None,
    )
    assert refused.exit_code == 1, refused.output
    assert "USERCTL_INVITE_BASE_URL (or --invite-base-url)" in refused.stderr
    assert tables(engine) == before and smtp.inbox.messages == []
    bad = scene.resend(
        runner, scene.root, "--otp-code", scene.root.code(), "--invite-base-url", "ftp://x"
    )
    assert bad.exit_code == 1 and "must be the registration page's URL" in bad.stderr
    assert tables(engine) == before


def test_a_resend_while_the_earlier_invitation_is_in_flight_wins(
    scene: Scene, engine: Engine
) -> None:
    """A sender claimed the invitation and is talking to SMTP when an operator resends: the
    link that sender mails never registers, the resent one does."""
    from userctl.apply.outbox import _claim, _record

    now = utcnow().replace(microsecond=0)
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, scene.org, scene.user, INVITEE, now)
    [in_flight], _ = _claim(engine, ORG, now, 0, 5)
    resend_invitation(
        engine, ORG, INVITEE, "root@acme.co", code_at(scene.root, now), now=now, lock_timeout_s=5
    )
    outcome = _record(engine, in_flight, now, None)
    assert (outcome.status, outcome.reason) == ("cancelled", "superseded")
    assert not scene.registers(in_flight.token)
    assert [s for s, _ in scene.tokens()] == ["cancelled", "queued"]
    [resent], _ = _claim(engine, ORG, now, 0, 5)
    assert _record(engine, resent, now, None).status == "sent"
    assert scene.registers(resent.token) and not scene.registers(in_flight.token)
