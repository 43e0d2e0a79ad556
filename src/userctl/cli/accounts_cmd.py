"""`userctl accounts list` (a read-only view) and `accounts import`, which registers bank accounts
from a CSV file."""

from __future__ import annotations

import click

from userctl.cli.context import app, reading
from userctl.cli.flags import DEFAULT_LOCK_TIMEOUT_S, lock_timeout_type, result_format_option
from userctl.cli.messages import say
from userctl.cli.views_cmd import format_option, warn_of_clashes
from userctl.render.tables import FORMATS


@click.group()
def accounts() -> None:
    """The organization's payout bank accounts: list them, or register them from a CSV file."""


@accounts.command("list")
@format_option(FORMATS)
def list_accounts(fmt: str) -> None:
    """Bank accounts by key: bank, type, masked number, currency, assigned users."""
    from userctl.db.listings import accounts_listing
    from userctl.render.tables import ACCOUNT_COLUMNS, account_row, render

    with reading() as (conn, org_id, _org):
        listed = accounts_listing(conn, org_id)
    rows = [account_row(account, holders) for account, holders in listed.rows]
    click.echo(render(ACCOUNT_COLUMNS, rows, fmt, empty="No bank accounts."), nl=False)
    warn_of_clashes(listed.clashes)


@accounts.command("import")
@click.argument("path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--operator",
    envvar="USERCTL_OPERATOR",
    metavar="EMAIL",
    help="Who imports, recorded in the audit log: an operator of the organization (an active "
    "user with an authenticator) whose role holds bank_accounts.manage.",
)
@click.option(
    "--lock-timeout",
    "lock_timeout_s",
    type=lock_timeout_type,
    default=DEFAULT_LOCK_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for a concurrent apply to finish.",
)
@result_format_option("accounts-import.schema.json")
def import_accounts(path: str, operator: str | None, lock_timeout_s: float, fmt: str) -> None:
    """Register bank accounts from a CSV file with the header
    key,bank,account_type,masked_number,currency. Accounts already registered with the same
    values are left alone; any bad row imports nothing."""
    from userctl.apply.accounts_import import import_bank_accounts
    from userctl.clock import utcnow
    from userctl.desired.reader import MAX_CSV_BYTES, read_bounded

    data = read_bounded(
        path, MAX_CSV_BYTES, what="CSV file", advice="split it into several imports"
    )
    ctx = app()
    result = import_bank_accounts(
        ctx.engine(), ctx.organization, data, path, operator, lock_timeout_s, utcnow()
    )
    from userctl.cli import checkpoint_out

    signed = checkpoint_out.written(ctx.engine(), result.organization, result.audit_head)
    if fmt == "json":
        from userctl.render import results

        click.echo(
            results.document(
                results.accounts_imported(
                    result.organization,
                    [a.key for a in result.plan.new],
                    [a.key for a in result.plan.unchanged],
                    result.audit_head,
                )
                | {"checkpoint": signed}
            ),
            nl=False,
        )
        return
    say(
        f"{result.organization}: imported {len(result.plan.new)}, "
        f"unchanged {len(result.plan.unchanged)}"
    )
    checkpoint_out.show(signed)
