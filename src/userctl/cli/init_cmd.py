"""`userctl init`: bootstrap one organization and its first administrator (DESIGN §5)."""

from __future__ import annotations

import click

from userctl.cli import checkpoint_out
from userctl.cli.context import app
from userctl.cli.messages import say
from userctl.printable import shell_command


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
@click.option(
    "--secret-file",
    metavar="PATH",
    help="Write the --json document (with the admin's TOTP secret) to PATH, mode 0600, only once "
    "the organization is created; an existing PATH is never overwritten.",
)
@click.option(
    "--exist-ok",
    is_flag=True,
    help="Exit 0, changing nothing, when the organization already exists with this admin "
    "active and enrolled (running a setup script twice).",
)
def init(
    path: str,
    admin_email: str,
    demo: bool,
    as_json: bool,
    secret_file: str | None,
    exist_ok: bool,
) -> None:
    """Run the migrations, create the organization declared in FILE, the admin's role as
    declared there and the admin (active, with a new TOTP authenticator shown once).

    Everything else in FILE is then created by `userctl plan` / `userctl apply`."""
    from userctl.apply.entries import init_command
    from userctl.cli.outputs import SecretFile

    ctx = app()
    done = init_command(
        ctx.engine,
        path,
        organization=ctx.organization,
        admin_email=admin_email,
        with_demo=demo,
        exist_ok=exist_ok,
        secret_file=secret_file,
        reserve=lambda: (
            SecretFile.reserve("--secret-file", secret_file, exist_ok)
            if secret_file is not None
            else None
        ),
    )
    desired, result = done.desired, done.result
    if result is None:
        say(
            f"organization {desired.organization} is already initialised with administrator "
            f"{admin_email.lower()}: nothing changed"
            + (f"; {secret_file} left as it is" if secret_file else ""),
            err=True,
        )
        return

    if as_json:
        click.echo(done.document)
        return

    from userctl.render.enrolment import enrolment_text

    admin = desired.users[result.admin]
    say(
        f"Created organization {result.organization} with role {admin.role!r} "
        f"and administrator {result.admin}."
    )
    checkpoint_out.show(done.checkpoint)
    if demo:
        say(
            f"Demo data: {result.demo_bank_accounts} bank accounts and {result.demo_users} users. "
            f"Run `{shell_command('userctl', 'plan', '-f', path)}` to see every kind of change."
        )
    else:
        say(
            f"Next: `{shell_command('userctl', 'plan', '-f', path)}` shows the rest of the file "
            "as changes to apply."
        )
    click.echo()
    if secret_file is not None:
        say(
            f"The administrator's TOTP secret is in {secret_file} (readable by you only): add it "
            "to an authenticator app or keep it in a secret store, then delete the file."
        )
        return
    click.echo(enrolment_text(result.admin, result.otpauth_uri, color=app().color()), nl=False)
