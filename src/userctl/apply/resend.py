"""`notifications resend`: a fresh invitation for a user who never registered, as an operator's
confirmed act (DESIGN §8 invariants 1 and 9).

Everything is decided under the organization lock, in one `otp.locked_write`: the user is still
invited, the operator passes the one operator rule (`users.add`: a resend hands out a
registration link, what inviting a user does), the per-user limit is not reached, and then the
operator's TOTP code is checked. Only then are the user's earlier tokens revoked
(`outbox.revoke_tokens`: only the newest link registers), one invitation queued and the resend
audited. The limit is counted from the audit log, which nothing edits: one resend per user per
RESEND_INTERVAL and at most RESENDS_PER_DAY per rolling day (docs/notifications.md says why).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine, func, select

from userctl.apply import otp, outbox
from userctl.apply.audit import AuditRecord, append_events
from userctl.apply.operators import load_operator
from userctl.clock import iso_z, naive_utc
from userctl.db.identity import user_row
from userctl.db.models import AuditEvent, User
from userctl.errors import NotFound, Refused, UsageError
from userctl.plan import user_address
from userctl.state import given_email
from userctl.verification import OWN_CODE

ACTION = "notification.resend"
PERMISSION = "users.add"
RESEND_INTERVAL = dt.timedelta(minutes=10)
RESENDS_PER_DAY = 5


def resend_invitation(
    engine: Engine,
    organization: str,
    email: str,
    operator: str,
    otp_code: str,
    *,
    now: dt.datetime,
    lock_timeout_s: float,
    code_read_at: dt.datetime | None = None,
) -> str:
    """Queue a new invitation for `email` (see the module doc); returns the new audit chain
    head. Nothing is written unless every check passes (a wrong code books only itself). The
    code is judged at `code_read_at` (default `now`), when the command read it."""
    key = given_email(email)
    address = user_address(key)

    def work(conn: Connection, org_id: int) -> str:
        # The operator first: who may not act learns nothing about the invitee.
        me = load_operator(conn, org_id, operator, [PERMISSION], now=now)
        user = user_row(conn, org_id, key, User.id, User.status)
        if user is None:
            raise NotFound(f"organization {organization} has no user {key!r}")
        if user.status != "invited":
            raise UsageError(
                f"{key} is {user.status}, not invited: only a user who never "
                "registered gets an invitation"
            )
        _within_limit(conn, org_id, key, address, now)
        otp.verify_operator_code(conn, me.id, otp_code, now, read_at=code_read_at or now)
        outbox.revoke_tokens(conn, int(user.id))
        outbox.queue_invitation(conn, org_id, int(user.id), key, now)
        return append_events(
            conn,
            org_id,
            [
                AuditRecord(
                    operator=me.email,
                    verified_by=OWN_CODE.to_text(),
                    operator_verified=True,
                    action=ACTION,
                    address=address,
                )
            ],
            now,
        )

    return otp.locked_write(engine, organization, work, now=now, lock_timeout_s=lock_timeout_s)


def _within_limit(conn: Connection, org_id: int, key: str, address: str, now: dt.datetime) -> None:
    moment = naive_utc(now)
    e = AuditEvent
    count, last = conn.execute(
        select(func.count(), func.max(e.created_at)).where(
            e.organization_id == org_id,
            e.action == ACTION,
            e.address == address,
            e.created_at > moment - dt.timedelta(days=1),
        )
    ).one()
    if last is not None and last > moment - RESEND_INTERVAL:
        raise Refused(
            f"{key} was sent a new invitation at {iso_z(last)}: one resend per "
            f"{int(RESEND_INTERVAL.total_seconds() // 60)} minutes, try again after "
            f"{iso_z(last + RESEND_INTERVAL)}. Nothing was sent"
        )
    if count >= RESENDS_PER_DAY:
        raise Refused(
            f"{key} was sent {count} new invitations in the last 24 hours, the most a day "
            "allows: check the address, or wait. Nothing was sent"
        )
