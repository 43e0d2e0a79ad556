"""Which organization a command without a desired-state file works on: the global
`--organization`, or the only one in the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from userctl import state
from userctl.errors import NotFound, UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def resolve_organization(conn: "Connection", slug: str | None) -> tuple[int, state.Organization]:
    from userctl.db.snapshot import organization_slugs, read_organization

    if slug is None:
        slugs = organization_slugs(conn)
        if not slugs:
            raise NotFound("this database holds no organization yet: run `userctl init -f FILE --admin EMAIL`")
        if len(slugs) > 1:
            raise UsageError(
                f"this database holds {len(slugs)} organizations ({', '.join(slugs)}): choose one with --organization"
            )
        slug = slugs[0]
    return read_organization(conn, slug)
