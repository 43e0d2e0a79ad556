"""Finding a user by email, by identity (DESIGN §8 invariant 6): `View1@Hidden.co` as stored by
the platform is the `view1@hidden.co` a command is given. The one lookup every command that names
a user on its command line goes through (operators, enrolment, invitations, `users show`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.engine import Connection

from userctl.db import tables
from userctl.errors import IdentityClash
from userctl.state import email_key


def user_row(conn: Connection, org_id: int, email: str, *columns: Any) -> Row[Any] | None:
    """The row (`columns` of users, or of what they join) of the user of organization `org_id`
    whose identity `email` names, or None. An identity held by several rows, which a database
    without migration 0007's index may hold, is refused: acting on one of them would leave the
    other's access unseen."""
    u = tables.users.c
    rows = conn.execute(
        select(u.email, *columns).where(
            u.organization_id == org_id, u.email_key == email_key(email)
        )
    ).all()
    if len(rows) > 1:
        raise IdentityClash(
            f"{email_key(email)} names {len(rows)} users whose emails differ only by case "
            f"({', '.join(sorted(str(r[0]) for r in rows))}): nothing is done for either until "
            "all but one are deleted or renamed on the platform"
        )
    return rows[0] if rows else None
