"""`userctl init`: bootstrap one organization and its first administrator (DESIGN §5)."""

from __future__ import annotations

import json

import click

from userctl.cli.context import app
from userctl.errors import UsageError


@click.command()
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    metavar="FILE",
    help="Desired-state file (or directory) declaring the organization and the admin.",
)
@click.option(
    "--admin",
    "admin_email",
    required=True,
    metavar="EMAIL",
    help="The first administrator: a user of FILE whose role holds users.manage.",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Also create demo bank accounts and users, so that planning "
    "examples/users.yaml shows every kind of change.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {organization, admin, totp_secret, otpauth_uri} as JSON, for scripts.",
)
def init(path: str, admin_email: str, demo: bool, as_json: bool) -> None:
    """Run the migrations, create the organization declared in FILE, the admin's role as
    declared there and the admin (active, with a new TOTP authenticator shown once).

    Everything else in FILE is then created by `userctl plan` / `userctl apply`."""
    from userctl.apply.bootstrap import initialise
    from userctl.desired.loader import load_desired

    ctx = app()
    desired = load_desired(path)
    if ctx.organization is not None and ctx.organization != desired.organization:
        raise UsageError(
            f"--organization {ctx.organization} does not match {path}, which "
            f"declares {desired.organization!r}"
        )
    result = initialise(ctx.engine(), desired, admin_email, source=path, with_demo=demo)

    if as_json:
        click.echo(
            json.dumps(
                {
                    "organization": result.organization,
                    "admin": result.admin,
                    "totp_secret": result.totp_secret,
                    "otpauth_uri": result.otpauth_uri,
                },
                indent=2,
            )
        )
        return

    from userctl.render.enrolment import enrolment_text

    admin = desired.users[result.admin]
    click.echo(
        f"Created organization {result.organization} with role {admin.role!r} "
        f"and administrator {result.admin}."
    )
    if demo:
        click.echo(
            f"Demo data: {result.demo_bank_accounts} bank accounts and {result.demo_users} users. "
            f"Run `userctl plan -f {path}` to see every kind of change."
        )
    else:
        click.echo(
            f"Next: `userctl plan -f {path}` shows the rest of the file as changes to apply."
        )
    click.echo()
    click.echo(enrolment_text(result.admin, result.otpauth_uri, color=app().color()), nl=False)
