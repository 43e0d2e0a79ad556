"""What `plan` and `apply` take in besides the options every command has: the options that shape
a plan, a saved plan file, and where invitation emails link to.

Imported by `plan`, which must not load the ORM or Alembic: only click, the standard library and
light userctl modules at the top."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from userctl.errors import UsageError

if TYPE_CHECKING:
    from userctl.apply.outbox import Letterhead


def planning_options(f: click.decorators.FC) -> click.decorators.FC:
    """Options that shape a plan, shared by `plan` and `apply -f`."""
    for decorator in reversed(
        [
            click.option(
                "--no-prune",
                is_flag=True,
                help="Keep users and roles that are absent from the file.",
            ),
            click.option(
                "--replace",
                "replace",
                multiple=True,
                metavar="EMAIL",
                help="Delete and re-create this user (needed to change id_type, "
                "id_number or phone). Repeatable.",
            ),
            click.option(
                "--allow-mass-removal",
                is_flag=True,
                help="Lift the guard against removing over 25% of the users.",
            ),
        ]
    ):
        f = decorator(f)
    return f


def invitation_options(f: click.decorators.FC) -> click.decorators.FC:
    """Where invitation emails come from and link to, for the commands that send them."""
    for decorator in reversed(
        [
            click.option(
                "--invite-base-url",
                metavar="URL",
                help="The registration page invitations link to (the token is "
                "appended); needed to send them.",
            ),
            click.option(
                "--smtp-from",
                metavar="ADDRESS",
                help="The From of invitation emails [default: no-reply@platform.invalid].",
            ),
        ]
    ):
        f = decorator(f)
    return f


def letterhead(
    invite_base_url: str | None, smtp_from: str | None, invitations: str | None
) -> "Letterhead":
    """The invitations' letterhead; `invitations`, when there are some to send, says which (for
    the refusal when no --invite-base-url says where their links point)."""
    from userctl.apply import outbox

    if not (invite_base_url or "").strip():
        if invitations is not None:
            # Without it every link would point at platform.invalid, and no invitee could register.
            raise UsageError(
                f"{invitations} would be sent over {outbox.ENV_SMTP_URL} with a link to "
                f"nowhere: set {outbox.ENV_BASE_URL} (or --invite-base-url) to the registration "
                "page's URL. Nothing was written"
            )
        return outbox.Letterhead(sender=smtp_from or outbox.DEFAULT_FROM)
    return outbox.Letterhead(
        outbox.parse_base_url(invite_base_url or ""), smtp_from or outbox.DEFAULT_FROM
    )
