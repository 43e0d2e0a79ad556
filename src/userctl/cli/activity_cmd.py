"""`userctl activity import FILE.csv`: last logins from a platform that keeps them elsewhere."""

from __future__ import annotations

import click

from userctl.cli import checkpoint_out
from userctl.cli.context import app
from userctl.cli.flags import DEFAULT_LOCK_TIMEOUT_S, lock_timeout_type
from userctl.cli.messages import say


@click.group()
def activity() -> None:
    """Users' last logins (read by `userctl hygiene` and the access review)."""


@activity.command("import")
@click.argument("path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--operator",
    envvar="USERCTL_OPERATOR",
    metavar="EMAIL",
    help="Who imports, recorded in the audit log: an operator of the organization (an active "
    "user with an authenticator) whose role holds users.manage.",
)
@click.option(
    "--lock-timeout",
    "lock_timeout_s",
    type=lock_timeout_type,
    default=DEFAULT_LOCK_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for a concurrent apply to finish.",
)
def import_(path: str, operator: str | None, lock_timeout_s: float) -> None:
    """Record last logins from a CSV file with the header email,last_login_at (ISO 8601, UTC when
    no zone is given). A time already recorded, or older than the recorded one, is left alone;
    any bad row imports nothing."""
    from userctl.apply.activity import import_activity
    from userctl.clock import utcnow
    from userctl.desired.reader import MAX_CSV_BYTES, read_bounded

    ctx = app()
    result = import_activity(
        ctx.engine(),
        ctx.organization,
        read_bounded(path, MAX_CSV_BYTES, what="CSV file", advice="split it into several imports"),
        path,
        operator,
        lock_timeout_s,
        utcnow(),
    )
    say(
        f"{result.organization}: last logins updated {len(result.plan.updated)}, "
        f"unchanged {result.plan.unchanged}"
    )
    checkpoint_out.show(
        checkpoint_out.written(ctx.engine(), result.organization, result.audit_head)
    )
