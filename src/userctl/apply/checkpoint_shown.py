"""The signed checkpoint a write appended, read back by the chain head the write returned, after
it committed, for the command to show (docs/auditing.md "Signed checkpoints")."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def written(engine: "Engine", organization: str, head: str | None) -> dict[str, Any] | None:
    """The checkpoint signing `head` in `organization` (its slug), as `audit checkpoints
    --format json` shows one; None without a signing key (no read then) or when nothing was
    appended."""
    from userctl.apply.checkpoints import checkpoint_at
    from userctl.apply.signing import ENV_SIGNING_KEY
    from userctl.db.snapshot import resolve_organization

    if head is None or not os.environ.get(ENV_SIGNING_KEY, "").strip():
        return None
    with engine.connect() as conn:
        org_id, _ = resolve_organization(conn, organization)
        found = checkpoint_at(conn, org_id, head)
    return None if found is None else found.as_data()
