"""Everyday views of the live database, each in one read-only transaction: `users list/show`,
`roles list` (and `accounts list`, in accounts_cmd.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

import click

from userctl.cli.context import reading
from userctl.cli.messages import say
from userctl.render.tables import FORMATS
from userctl.state import LIVE_STATUSES

if TYPE_CHECKING:
    from userctl.policies import Violation

F = TypeVar("F", bound=Callable[..., Any])


def format_option(choices: tuple[str, ...], help_text: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="table",
        show_default=True,
        help=help_text,
    )


def warn_of_clashes(clashes: Sequence[Violation]) -> None:
    """Rows of one identity in a listing: the finding `policy check` blocks on, on stderr, so
    that stdout stays one document a pipeline parses."""
    for clash in clashes:
        say(f"Warning: {clash.message}", err=True)


@click.group()
def users() -> None:
    """List and inspect the organization's users (read-only)."""


@users.command("list")
@click.option("--status", type=click.Choice(LIVE_STATUSES), help="Only users with this status.")
@click.option("--role", metavar="NAME", help="Only holders of this role (exact name).")
@click.option(
    "--search", metavar="TEXT", help="Case-insensitive part of the first name, last name or email."
)
@format_option(FORMATS)
def list_users(status: str | None, role: str | None, search: str | None, fmt: str) -> None:
    """Users sorted by id: name, username (email), phone, role, 2FA (the setting and whether an
    authenticator is enrolled: two fields, two_factor and totp_enrolled, in JSON and CSV), status,
    last login ("never" when none is known; null in JSON)."""
    from userctl.db.listings import users_listing_batches
    from userctl.render.tables import (
        USER_COLUMNS,
        USER_TABLE_COLUMNS,
        matches_search,
        render_batches,
        user_row,
    )

    # Streamed for JSON and CSV: each batch of users is written as it is read.
    with reading() as (conn, org_id, org):
        listed = users_listing_batches(conn, org_id, org, status=status, role=role)
        rows = (
            [
                user_row(item.user, item.last_login_at)
                for item in batch
                if search is None or matches_search(item.user, search)
            ]
            for batch in listed.batches
        )
        # A user's fields are str, bool or None, as their columns' types.
        pieces = render_batches(
            USER_COLUMNS,
            rows,
            fmt,
            empty="No users match.",
            table_columns=USER_TABLE_COLUMNS,
            plain=True,
        )
        for piece in pieces:
            click.echo(piece, nl=False)
    warn_of_clashes(listed.clashes)


@users.command("show")
@click.argument("email")
@format_option(
    FORMATS,
    help_text="csv: a field,value row per field; accounts by key (details: `accounts list`).",
)
def show_user(email: str, fmt: str) -> None:
    """Every field of one user, their role and permissions, and the organization's bank accounts
    split into assigned and unassigned."""
    from userctl.db.listings import user_view
    from userctl.render.tables import render_user_detail, user_detail

    with reading() as (conn, org_id, org):
        found = user_view(conn, org_id, org, email)
    stamps = found.stamps
    detail = user_detail(
        found.user,
        found.role,
        found.accounts,
        stamps.created_at if stamps else None,
        stamps.updated_at if stamps else None,
        stamps.last_login_at if stamps else None,
    )
    click.echo(render_user_detail(detail, fmt), nl=False)


@click.group()
def roles() -> None:
    """List the organization's roles (read-only)."""


@roles.command("list")
@format_option(FORMATS)
def list_roles(fmt: str) -> None:
    """Roles by name: description, number of permissions, number of users holding it."""
    from userctl.db.listings import roles_listing
    from userctl.render.tables import ROLE_COLUMNS, render, role_row

    with reading() as (conn, org_id, _org):
        listed = roles_listing(conn, org_id)
    rows = [role_row(role, count) for role, count in listed]
    click.echo(render(ROLE_COLUMNS, rows, fmt, empty="No roles."), nl=False)
