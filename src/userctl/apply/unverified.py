"""Who is recorded as acting by a command that takes no TOTP code (`accounts import`,
`activity import`): the --operator it names must be a user of the organization who passes the
one operator rule (apply.operators.load_operator) with the permission the command needs. The
audit event then records that operator, with operator_verified false: nobody proved with a
code that they typed the command, but no event names someone who could not have.

What each command needs (and why) is declared here, next to the rule, once.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import Connection

from userctl.apply.operators import load_operator
from userctl.errors import UsageError
from userctl.names import email_problem
from userctl.printable import printable
from userctl.state import given_email

# Registering a bank account is what bank_accounts.manage is for. Feeding last logins decides
# who looks dormant to the hygiene check and the access review, which is judging users:
# users.manage, the permission that deactivates them.
NEEDS: Final = {
    "accounts import": ("bank_accounts.manage",),
    "activity import": ("users.manage",),
}


def unverified_operator(
    conn: Connection, org_id: int, command: str, operator: str | None, *, now: dt.datetime
) -> str:
    """The email of `operator` as the audit log records it, once they may run `command` on
    organization `org_id` at `now`. UsageError (exit 1) when none is named or the text could not
    be an email (control or format characters, not ASCII); NotAuthorized (exit 4) when they are
    no operator of the organization who may do this."""
    email = given_email(operator or "")
    if not email:
        raise UsageError(
            f"{command} records who ran it in the audit log: name yourself with --operator EMAIL "
            "(or USERCTL_OPERATOR), a user of the organization"
        )
    problem = email_problem(email)
    if problem is not None:
        raise UsageError(printable(f"--operator {problem}"))
    return load_operator(conn, org_id, email, NEEDS[command], now=now).email
