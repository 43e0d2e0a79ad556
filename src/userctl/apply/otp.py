"""TOTP confirmation of operators (DESIGN §4 "TOTP"): RFC 6238 via pyotp, 30-second steps,
±1 step of drift, each step usable once per operator, and a lockout after repeated wrong codes.

How a command uses it — a wrong code must be counted in the same locked unit that checked it:

    result = otp.locked_write(engine, organization, work, now=now, lock_timeout_s=timeout)

    def work(conn, org_id):                           # under the organization lock
        ...checks (reads only)...
        otp.verify_operator_code(conn, operator.id, code, now)
        ...writes...

`locked_write` opens the write transaction, takes the organization lock as its first statement
and runs `work` inside a savepoint. `verify_operator_code` works inside that transaction: it
locks the operator's totp_secrets row, refuses a locked-out operator without looking at the
code, records the used time step (so a replay, even by a concurrent process, fails on a unique
key) and resets the failure counter, all of which commit or roll back with the caller's changes.
A wrong code raises `WrongCode`: `locked_write` then rolls back to the savepoint (whatever `work`
did is undone: a rolled-back command writes nothing else), books the failure, starting the
lockout at the MAX_FAILURES-th in a row, commits that alone and raises CodeRejected with the
attempts left (the CLI may ask again) or TwoFactorFailed with the lockout time. The lock is held
from the check to the booking's commit, so parallel guesses are checked one after the other, each
seeing the failures booked before it: no more than MAX_FAILURES codes are ever checked before the
lockout. (The booking used to run after the rollback, in a transaction of its own: by then the next
guess had been checked.) Codes and secrets never appear in messages, logs or audit events.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from dataclasses import dataclass
from typing import Callable, TypeVar

import pyotp
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from userctl.apply.audit import AuditRecord, append_events
from userctl.apply.secret_store import (
    ENCRYPTED_PREFIX,
    ENV_KEY,
    decrypt_secret,
    encrypt_secret,
    is_encrypted,
    owner_of,
    sealed,
    secret_key_from_env,
)
from userctl.clock import iso_z, naive_utc, unix_seconds, utcnow
from userctl.db.models import OtpUse, TotpSecret, User
from userctl.errors import CodeRejected, TwoFactorFailed, UsageError
from userctl.plan import user_address
from userctl.state import email_key

STEP_SECONDS = 30
DRIFT_STEPS = 1
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
# pyotp alone would accept full-width and other Unicode digits; a code is six ASCII digits.
_CODE = re.compile(r"[0-9]{6}")
T = TypeVar("T")


class WrongCode(TwoFactorFailed):
    """A well-formed code that matches none of the accepted steps: it counts towards the lockout.
    Carries the operator so that `locked_write` can book it."""

    def __init__(self, user_id: int, email: str) -> None:
        self.user_id = user_id
        self.email = email
        super().__init__(f"wrong one-time code for operator {email}")


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    email: str
    failed_attempts: int  # consecutive wrong codes so far (0 once a lockout starts)
    locked_until: dt.datetime | None

    def message(self) -> str:
        if self.locked_until is not None:
            return (
                f"wrong one-time code for operator {self.email}: {MAX_FAILURES} wrong "
                f"codes in a row, so {self.email} is locked out of confirmations "
                f"until {iso_z(self.locked_until)}"
            )
        left = MAX_FAILURES - self.failed_attempts
        return (
            f"wrong one-time code for operator {self.email}: check the authenticator's clock "
            f"and use the current code ({left} attempt(s) left before a "
            f"{_minutes(LOCKOUT)}-minute lockout)"
        )


def generate_secret() -> str:
    """A fresh 160-bit secret, base32 (32 characters)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, email: str, org: str) -> str:
    """The otpauth:// URI an authenticator app scans; the issuer names userctl and the
    organization's slug `org`, so one phone can hold operators of several organizations."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=email, issuer_name=f"userctl ({org})"
    )


def enroll(conn: Connection, user_id: int) -> str:
    """(Re)create the user's authenticator secret and mark them enrolled; returns the plain
    secret, to be shown once. The previous secret stops working with this transaction."""
    secret = generate_secret()
    conn.execute(delete(TotpSecret).where(TotpSecret.user_id == user_id))
    store_totp_secret(conn, user_id, secret)
    return secret


def verify_operator_code(
    conn: Connection, user_id: int, code: str, now: dt.datetime, *, read_at: dt.datetime
) -> None:
    """Accept `code` from operator `user_id` at `now`, or raise TwoFactorFailed saying why
    (`WrongCode` when it should count towards the lockout). Call it inside `locked_write` (see
    the module doc), before the first write.

    The code is judged at `read_at`, the moment the command read it (its prompt returned, or the
    command started with it in an option or a variable), not at `now`: whatever the command did
    in between (planning a large file, waiting for the lock) cannot turn a code that was valid
    when given into a wrong one counted towards the lockout. A moment after `now` is no reading
    of a code; the lockout and the record of the used step are of `now`."""
    moment = naive_utc(now)
    given = min(naive_utc(read_at), moment)
    # FOR UPDATE: the lockout and the counter are read and written by one check at a time,
    # whatever lock the caller holds (every caller also holds the organization's).
    row = conn.execute(
        select(TotpSecret.secret, TotpSecret.locked_until, TotpSecret.failed_attempts)
        .where(TotpSecret.user_id == user_id)
        .with_for_update()
    ).first()
    if row is None:
        raise TwoFactorFailed(
            f"operator (user id {user_id}) has no authenticator enrolled with userctl"
        )
    email = _email_of(conn, user_id)
    if row.locked_until is not None and row.locked_until > moment:
        raise TwoFactorFailed(
            f"operator {email} is locked out of confirmations until {iso_z(row.locked_until)} "
            f"after {MAX_FAILURES} wrong codes; wait, then use a fresh code"
        )
    if not isinstance(code, str) or _CODE.fullmatch(code) is None:
        # Not a guess at all (a typo, an empty variable): refused without counting.
        raise CodeRejected(
            "a one-time code is exactly six digits 0-9; copy it from the authenticator app"
        )
    secret = decrypt_secret(str(row.secret), owner=owner_of(user_id, email))
    step = _matching_step(secret, code, unix_seconds(given) // STEP_SECONDS)
    if step is None:
        raise WrongCode(user_id, email)
    last_used = conn.execute(
        select(func.max(OtpUse.time_step)).where(OtpUse.user_id == user_id)
    ).scalar()
    if last_used is not None and step <= int(last_used):
        raise TwoFactorFailed(_replayed(email))
    try:
        # A savepoint: on PostgreSQL a failed INSERT would otherwise abort the caller's transaction.
        with conn.begin_nested():
            conn.execute(insert(OtpUse).values(user_id=user_id, time_step=step, used_at=moment))
    except IntegrityError:
        raise TwoFactorFailed(_replayed(email)) from None
    # Older steps can never be accepted again (step <= last used), so their rows are dead weight.
    conn.execute(delete(OtpUse).where(OtpUse.user_id == user_id, OtpUse.time_step < step))
    if (
        row.failed_attempts or row.locked_until is not None
    ):  # only a row with something to reset is written
        conn.execute(
            update(TotpSecret)
            .where(TotpSecret.user_id == user_id)
            .values(failed_attempts=0, locked_until=None)
        )


def _email_of(conn: Connection, user_id: int) -> str:
    """The user's identity, as every audit address and operator name spells it."""
    return email_key(str(conn.execute(select(User.email).where(User.id == user_id)).scalar_one()))


def store_totp_secret(conn: Connection, user_id: int, secret: str) -> None:
    """Enrol an authenticator: keep the secret (encrypted, sealed to its user) and mark the user
    enrolled. Without the key where other secrets are encrypted, refused: a secret in clear
    beside them is never taken, nor sealed (secret_store.sealed)."""
    if (
        secret_key_from_env() is None
        and conn.execute(
            select(TotpSecret.user_id)
            .where(TotpSecret.secret.startswith(ENCRYPTED_PREFIX))
            .limit(1)
        ).first()
    ):
        raise UsageError(
            f"set {ENV_KEY}: the other TOTP secrets are encrypted with it, and one stored in "
            "clear beside them would be refused"
        )
    email = _email_of(conn, user_id)
    conn.execute(
        insert(TotpSecret).values(
            user_id=user_id,
            secret=encrypt_secret(secret, owner=owner_of(user_id, email)),
            created_at=utcnow(),
            failed_attempts=0,
        )
    )
    conn.execute(
        update(User).where(User.id == user_id).values(totp_enrolled=True, updated_at=utcnow())
    )


def seal_secrets(engine: Engine) -> tuple[int, list[str]]:
    """Seal with USERCTL_SECRET_KEY, each to its user, every TOTP secret stored in clear (enrolled
    before the key was set, while none is encrypted yet) or sealed to no one (by an earlier
    userctl), in one transaction: how many, and why each one left alone was (sealed to another
    user, or in clear beside encrypted ones: `secret_store.sealed`). Run it right after setting
    the key or upgrading."""
    from userctl.db.engine import begin_write

    key = secret_key_from_env()
    if not key:
        raise UsageError(f"set {ENV_KEY} first: the secrets are sealed with it")
    count, refused = 0, []
    with begin_write(engine) as conn:
        rows = conn.execute(
            select(TotpSecret.user_id, TotpSecret.secret, User.email).join(
                User, User.id == TotpSecret.user_id
            )
        ).all()
        # In clear is taken only while nothing is encrypted yet (see sealed).
        clear_taken = not any(is_encrypted(str(stored)) for _, stored, _ in rows)
        for user_id, stored, email in rows:
            try:
                owner = owner_of(int(user_id), email_key(str(email)))
                new = sealed(str(stored), owner, key, clear_taken=clear_taken)
            except UsageError as exc:
                refused.append(str(exc))
                continue
            if new is not None:
                conn.execute(
                    update(TotpSecret).where(TotpSecret.user_id == user_id).values(secret=new)
                )
                count += 1
    return count, refused


def _matching_step(secret: str, code: str, current: int) -> int | None:
    """The time step whose code is `code`, within the drift window. Every candidate is compared
    in constant time so the answer's timing says nothing about near misses."""
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    found: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found


def _replayed(email: str) -> str:
    return f"this code of operator {email} was already used; wait for the next one"


def locked_write(
    engine: Engine,
    organization: str,
    work: Callable[[Connection, int], T],
    *,
    now: dt.datetime,
    lock_timeout_s: float,
) -> T:
    """Run `work(conn, organization_id)` in one write transaction that takes the organization's
    lock before anything else, and commit it. A `WrongCode` raised by `work` undoes what `work`
    did and commits the failure's booking instead, in the same transaction and so under the same
    lock as the check; then TwoFactorFailed says how many attempts are left. Any other error
    rolls everything back."""
    from userctl.db.engine import begin_write, lock_organization

    with begin_write(engine, lock_timeout_s=lock_timeout_s, organization=organization) as conn:
        org_id = lock_organization(conn, organization, lock_timeout_s)
        # Taken after the lock: rolling back to it keeps the lock until the booking commits.
        before_work = conn.begin_nested()
        try:
            result = work(conn, org_id)
        except WrongCode as wrong:
            before_work.rollback()
            outcome = _book_failure(conn, org_id, wrong, now)
        else:
            before_work.commit()
            return result
    raise (TwoFactorFailed if outcome.locked_until else CodeRejected)(outcome.message())


def _book_failure(
    conn: Connection, org_id: int, wrong: WrongCode, now: dt.datetime
) -> FailureOutcome:
    """Count one wrong code of `wrong.user_id` (an operator of organization `org_id`, whose lock
    the caller holds), start the lockout at the MAX_FAILURES-th in a row, and audit both."""
    moment = naive_utc(now)
    # Locked again: on PostgreSQL rolling back to the savepoint released the lock `work` took.
    failed_so_far = conn.execute(
        select(TotpSecret.failed_attempts)
        .where(TotpSecret.user_id == wrong.user_id)
        .with_for_update()
    ).scalar_one()
    attempts = failed_so_far + 1
    locked_until = moment + LOCKOUT if attempts >= MAX_FAILURES else None
    conn.execute(
        update(TotpSecret)
        .where(TotpSecret.user_id == wrong.user_id)
        .values(failed_attempts=0 if locked_until else attempts, locked_until=locked_until)
    )
    events = [
        AuditRecord(
            wrong.email,
            "none",
            "otp.failure",
            user_address(wrong.email),
            after={"failed_attempts": attempts},
        )
    ]
    if locked_until is not None:
        events.append(
            AuditRecord(
                wrong.email,
                "none",
                "otp.lockout",
                user_address(wrong.email),
                after={"locked_until": iso_z(locked_until)},
            )
        )
    append_events(conn, org_id, events, moment)
    return FailureOutcome(wrong.email, 0 if locked_until else attempts, locked_until)


def _minutes(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)
