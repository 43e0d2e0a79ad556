"""`userctl mfa enroll EMAIL`: (re)issue a user's authenticator, confirmed by another admin."""

from __future__ import annotations

import json

import click

from userctl.cli.common import (
    interactive,
    lock_option,
    operator_option,
    otp_option,
    reading,
    with_code,
)
from userctl.cli.context import app
from userctl.errors import UsageError


@click.group()
def mfa() -> None:
    """Authenticators (TOTP) of the organization's users."""


@mfa.command()
@click.argument("email")
@operator_option
@otp_option
@lock_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {organization, user, totp_secret, otpauth_uri, audit_head} as JSON, for scripts.",
)
def enroll(
    email: str, operator: str, otp_code: str | None, lock_timeout: float, as_json: bool
) -> None:
    """Give EMAIL (an active user) a new authenticator; the old one stops working. Another admin
    with users.manage confirms with their own TOTP code. The secret is shown once."""
    from userctl.apply.enrolment import enroll_user
    from userctl.clock import utcnow

    # Before the prompt: a wrong --organization fails without asking anyone for a code.
    with reading() as (_conn, _org_id, org):
        pass
    if otp_code is None and not interactive():
        raise UsageError(
            "mfa enroll needs the operator's --otp-code (or "
            "USERCTL_OTP_CODE) when there is no terminal"
        )
    result = with_code(
        lambda code: enroll_user(
            app().engine(),
            org.slug,
            email,
            operator,
            code or "",
            now=utcnow(),
            lock_timeout_s=lock_timeout,
        ),
        otp_code,
        ask=otp_code is None,
        prompt=f"TOTP code of {operator}",
    )

    if as_json:
        click.echo(
            json.dumps(
                {
                    "organization": result.organization,
                    "user": result.email,
                    "totp_secret": result.secret,
                    "otpauth_uri": result.otpauth_uri,
                    "audit_head": result.audit_head,
                },
                indent=2,
            )
        )
        return

    from userctl.render.enrolment import enrolment_text

    click.echo(
        f"Enrolled a new authenticator for {result.email} in {result.organization}, "
        f"confirmed by {operator.strip().lower()}."
    )
    click.echo(f"Audit head: {result.audit_head}")
    click.echo()
    click.echo(enrolment_text(result.email, result.otpauth_uri, color=app().color()), nl=False)
