"""`userctl notifications resend EMAIL`: a new invitation for a user who is still invited,
confirmed by the operator's TOTP code, and sent at once when an SMTP server is set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

import click

from userctl.cli import checkpoint_out
from userctl.cli.code_prompt import interactive, with_code
from userctl.cli.context import app
from userctl.cli.flags import lock_option, operator_option, otp_option
from userctl.cli.messages import say
from userctl.cli.plan_inputs import invitation_options, letterhead
from userctl.errors import TwoFactorRequired, UserctlError
from userctl.state import given_email

if TYPE_CHECKING:
    from userctl.apply.given import GivenCode

T = TypeVar("T")


@click.command()
@click.argument("email")
@operator_option
@otp_option
@invitation_options
@lock_option
def resend(
    email: str,
    operator: str,
    otp_code: str | None,
    invite_base_url: str | None,
    smtp_from: str | None,
    lock_timeout: float,
) -> None:
    """Queue a new invitation (a fresh token, 7 days from sending) for a user who is still
    invited, e.g. one whose invitation expired; every earlier link of that user stops working.
    Confirmed by the operator's TOTP code (they need users.add); at most one resend per user
    every 10 minutes and 5 a day. Sent now when USERCTL_SMTP_URL is set, else by the next
    `userctl notifications send`."""
    from userctl.apply import entries

    def code_given() -> None:
        if not otp_code and not interactive():
            raise TwoFactorRequired(
                "--otp-code (or USERCTL_OTP_CODE) is required: a resend is confirmed with the "
                "operator's TOTP code. Nothing was sent"
            )

    def code(attempt: Callable[[GivenCode], T], could_confirm: Callable[[], bool]) -> T:
        return with_code(
            attempt, otp_code or None, ask=not otp_code, prompt=f"TOTP code of {operator}"
        )

    def queued(slug: str, checkpoint: dict[str, Any] | None) -> None:
        say(f"{slug}: a new invitation for {given_email(email)} is queued")
        checkpoint_out.show(checkpoint)

    # The same refusals as `send`, before anything is written: the link must point somewhere.
    letter = letterhead(invite_base_url, smtp_from, "the new invitation")
    report = entries.resend_command(
        app().engine,
        app().organization,
        email,
        operator,
        lock_timeout_s=lock_timeout,
        letter=letter,
        code_given=code_given,
        with_code=code,
        queued=queued,
    )
    if report is not None:
        say(f"invitations: {report.sent} sent, {report.failed} failed")
        if report.failed:
            raise UserctlError(
                f"{report.failed} invitation(s) could not be sent and stay "
                f"queued: {'; '.join(report.errors)}"
            )
