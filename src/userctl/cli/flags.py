"""The options several commands share, each defined once: who confirms and with which code,
how long to wait for the lock, how old a saved plan may be, the result format, the reason."""

from __future__ import annotations

import math
from typing import Any, Callable

import click

DEFAULT_LOCK_TIMEOUT_S = 30.0

operator_option = click.option(
    "--operator",
    envvar="USERCTL_OPERATOR",
    required=True,
    metavar="EMAIL",
    help="Who confirms: a user of the organization with an enrolled "
    "authenticator (or USERCTL_OPERATOR).",
)
otp_option = click.option(
    "--otp-code",
    envvar="USERCTL_OTP_CODE",
    metavar="CODE",
    help="Six-digit TOTP code (or USERCTL_OTP_CODE); asked for on a terminal when needed.",
)


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses NaN, which compares false with every bound and so would
    pass any range (and then fail deep inside, as "unexpected ValueError")."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number: float = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


# A day: long enough for any queue of applies, short enough to be a mistake past it.
MAX_LOCK_TIMEOUT_S = 86400.0
lock_timeout_type = FiniteRange(min=0, max=MAX_LOCK_TIMEOUT_S)
lock_option = click.option(
    "--lock-timeout",
    type=lock_timeout_type,
    default=DEFAULT_LOCK_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for another apply of this organization.",
)


DEFAULT_MAX_AGE_DAYS = 7.0
max_age_option = click.option(
    "--max-age",
    type=FiniteRange(min=0, max=3650),
    default=DEFAULT_MAX_AGE_DAYS,
    show_default=True,
    metavar="DAYS",
    help="Refuse a saved plan made longer ago than this: what was reviewed then "
    "may no longer be what is wanted.",
)


def result_format_option(schema: str) -> Callable[[click.decorators.FC], click.decorators.FC]:
    """`--format text|json` of a command that acts: json is one document on stdout, described by
    `schema` in schemas/; prompts, progress and notes then go to stderr only."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help=f"json: one document on stdout (schemas/{schema}); everything else goes to stderr.",
    )


reason_option = click.option(
    "--reason",
    envvar="USERCTL_REASON",
    metavar="TEXT",
    help="Why this change is made (a ticket id, the pull request's title): recorded in "
    "the plan and in every audit event of its apply (or USERCTL_REASON). Required when "
    "the policies say require_reason.",
)
