"""`userctl mfa enroll EMAIL`: (re)issue a user's authenticator, confirmed by another admin."""

from __future__ import annotations

import json

import click

from userctl.cli.code_prompt import interactive, with_code
from userctl.cli.context import app, reading
from userctl.cli.flags import lock_option, operator_option, otp_option
from userctl.cli.messages import say
from userctl.errors import UsageError
from userctl.state import given_email


@click.group()
def mfa() -> None:
    """Authenticators (TOTP) of the organization's users."""


@mfa.command()
@click.argument("email")
@operator_option
@otp_option
@click.option(
    "--second-operator",
    metavar="EMAIL",
    help="Under four eyes, re-keying an authenticator already enrolled needs a second admin "
    "(users.manage), a different person from --operator, confirming with their own code.",
)
@click.option(
    "--second-otp-code",
    metavar="CODE",
    help="The second operator's six-digit TOTP code; asked for on a terminal when needed.",
)
@lock_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {organization, user, totp_secret, otpauth_uri, audit_head, checkpoint} as JSON.",
)
def enroll(
    email: str,
    operator: str,
    otp_code: str | None,
    second_operator: str | None,
    second_otp_code: str | None,
    lock_timeout: float,
    as_json: bool,
) -> None:
    """Give EMAIL (an active user) a new authenticator; the old one stops working. Another admin
    with users.manage confirms with their own TOTP code. The secret is shown once. Under four
    eyes, replacing an authenticator already enrolled also needs --second-operator (with
    --second-otp-code); the re-keyed user's unused approvals stop counting."""
    from userctl.apply.enrolment import SecondConfirmer, enroll_user
    from userctl.clock import utcnow

    # Before the prompt: a wrong --organization fails without asking anyone for a code.
    with reading() as (_conn, _org_id, org):
        pass
    if otp_code is None and not interactive():
        raise UsageError(
            "mfa enroll needs the operator's --otp-code (or "
            "USERCTL_OTP_CODE) when there is no terminal"
        )
    if second_otp_code is not None and second_operator is None:
        raise UsageError("--second-otp-code needs --second-operator: whose code is it?")
    second = None
    second_read_at = app().started_at
    if second_operator is not None:
        if second_otp_code is None and not interactive():
            raise UsageError("--second-operator needs --second-otp-code when there is no terminal")
        if second_otp_code is None:
            second_otp_code = click.prompt(
                f"TOTP code of {second_operator}", hide_input=True, err=True
            )
            second_read_at = utcnow()
        second = SecondConfirmer(second_operator, second_otp_code or "", second_read_at)
    result = with_code(
        lambda given: enroll_user(
            app().engine(),
            org.slug,
            email,
            operator,
            given.code or "",
            now=utcnow(),
            lock_timeout_s=lock_timeout,
            second=second,
            code_read_at=given.read_at,
        ),
        otp_code,
        ask=otp_code is None,
        prompt=f"TOTP code of {operator}",
    )

    from userctl.cli import checkpoint_out

    signed = checkpoint_out.written(app().engine(), result.organization, result.audit_head)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "organization": result.organization,
                    "user": result.email,
                    "totp_secret": result.secret,
                    "otpauth_uri": result.otpauth_uri,
                    "audit_head": result.audit_head,
                    "checkpoint": signed,
                },
                indent=2,
            )
        )
        return

    from userctl.render.enrolment import enrolment_text

    say(
        f"Enrolled a new authenticator for {result.email} in {result.organization}, "
        f"confirmed by {given_email(operator)}"
        + (f" and {result.second_confirmer}." if result.second_confirmer else ".")
    )
    say(f"Audit head: {result.audit_head}")
    checkpoint_out.show(signed)
    click.echo()
    click.echo(enrolment_text(result.email, result.otpauth_uri, color=app().color()), nl=False)
