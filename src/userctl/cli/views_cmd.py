"""Everyday views of the live database — `users list/show`, `roles list`, `accounts list` — all in
one read-only transaction, and `accounts import`, which registers bank accounts from a CSV file."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

from userctl.cli.common import (
    DEFAULT_LOCK_TIMEOUT_S,
    lock_timeout_type,
    reading,
    result_format_option,
)
from userctl.cli.context import app
from userctl.render.tables import FORMATS
from userctl.state import LIVE_STATUSES

F = TypeVar("F", bound=Callable[..., Any])


def _format_option(choices: tuple[str, ...], help_text: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="table",
        show_default=True,
        help=help_text,
    )


@click.group()
def users() -> None:
    """List and inspect the organization's users (read-only)."""


@users.command("list")
@click.option("--status", type=click.Choice(LIVE_STATUSES), help="Only users with this status.")
@click.option("--role", metavar="NAME", help="Only holders of this role (exact name).")
@click.option(
    "--search", metavar="TEXT", help="Case-insensitive part of the first name, last name or email."
)
@_format_option(FORMATS)
def list_users(status: str | None, role: str | None, search: str | None, fmt: str) -> None:
    """Users sorted by id: name, username (email), phone, role, 2FA (the setting and whether an
    authenticator is enrolled: two fields, two_factor and totp_enrolled, in JSON and CSV), status,
    last login ("never" when none is known; null in JSON)."""
    from userctl.db.listings import list_users as read_list
    from userctl.db.snapshot import read_roles
    from userctl.errors import NotFound
    from userctl.render.tables import (
        USER_COLUMNS,
        USER_TABLE_COLUMNS,
        matches_search,
        render,
        user_row,
    )

    with reading() as (conn, org_id, org):
        if role is not None and role not in read_roles(conn, org_id, [role]):
            known = sorted(read_roles(conn, org_id))
            from userctl.errors import did_you_mean

            raise NotFound(
                f"organization {org.slug} has no role {role!r}{did_you_mean(role, known)}; "
                "its roles: "
                f"{', '.join(known) or 'none'}"
            )
        listed = read_list(conn, org_id, status=status, role=role)
    rows = [
        user_row(item.user, item.last_login_at)
        for item in listed
        if search is None or matches_search(item.user, search)
    ]
    click.echo(
        render(USER_COLUMNS, rows, fmt, empty="No users match.", table_columns=USER_TABLE_COLUMNS),
        nl=False,
    )


@users.command("show")
@click.argument("email")
@_format_option(
    FORMATS,
    help_text="csv: a field,value row per field; accounts by key (details: `accounts list`).",
)
def show_user(email: str, fmt: str) -> None:
    """Every field of one user, their role and permissions, and the organization's bank accounts
    split into assigned and unassigned."""
    from userctl.db.identity import user_row
    from userctl.db.listings import user_timestamps
    from userctl.db.snapshot import read_bank_accounts, read_roles, read_users
    from userctl.errors import NotFound
    from userctl.render.tables import render_user_detail, user_detail
    from userctl.state import email_key

    key = email_key(email.strip())
    with reading() as (conn, org_id, org):
        # By identity (VIEW1@HIDDEN.CO finds a stored View1@Hidden.co); refused when several
        # rows hold it, rather than showing one of them.
        found = user_row(conn, org_id, key)
        user = read_users(conn, org_id, [key]).get(key) if found is not None else None
        if user is None:
            from sqlalchemy import select

            from userctl.db import tables
            from userctl.errors import did_you_mean

            u = tables.users.c
            emails = conn.execute(select(u.email).where(u.organization_id == org_id)).scalars()
            raise NotFound(
                f"organization {org.slug} has no user {email!r}"
                f"{did_you_mean(key, [str(e).lower() for e in emails])} "
                "(see `userctl users list --search`)"
            )
        role = read_roles(conn, org_id, [user.role])[user.role]
        accounts = read_bank_accounts(conn, org_id)
        stamps = user_timestamps(conn, org_id, key)
    detail = user_detail(
        user,
        role,
        accounts,
        stamps.created_at if stamps else None,
        stamps.updated_at if stamps else None,
        stamps.last_login_at if stamps else None,
    )
    click.echo(render_user_detail(detail, fmt), nl=False)


@click.group()
def roles() -> None:
    """List the organization's roles (read-only)."""


@roles.command("list")
@_format_option(FORMATS)
def list_roles(fmt: str) -> None:
    """Roles by name: description, number of permissions, number of users holding it."""
    from userctl.db.listings import role_user_counts
    from userctl.db.snapshot import read_roles
    from userctl.render.tables import ROLE_COLUMNS, render, role_row

    with reading() as (conn, org_id, _org):
        all_roles = read_roles(conn, org_id)
        counts = role_user_counts(conn, org_id)
    rows = [role_row(all_roles[name], counts.get(name, 0)) for name in sorted(all_roles)]
    click.echo(render(ROLE_COLUMNS, rows, fmt, empty="No roles."), nl=False)


@click.group()
def accounts() -> None:
    """The organization's payout bank accounts: list them, or register them from a CSV file."""


@accounts.command("list")
@_format_option(FORMATS)
def list_accounts(fmt: str) -> None:
    """Bank accounts by key: bank, type, masked number, currency, assigned users."""
    from userctl.db.listings import account_holders
    from userctl.db.snapshot import read_bank_accounts
    from userctl.render.tables import ACCOUNT_COLUMNS, account_row, render

    with reading() as (conn, org_id, _org):
        registered = read_bank_accounts(conn, org_id)
        holders = account_holders(conn, org_id)
    rows = [account_row(registered[key], holders.get(key, [])) for key in sorted(registered)]
    click.echo(render(ACCOUNT_COLUMNS, rows, fmt, empty="No bank accounts."), nl=False)


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
            ),
            nl=False,
        )
        return
    click.echo(
        f"{result.organization}: imported {len(result.plan.new)}, "
        f"unchanged {len(result.plan.unchanged)}"
    )
