"""One error hierarchy and the one table of exit codes it maps to (DESIGN §5). Only the CLI
(cli/main.py) turns these into exit codes and messages, so helpers never call sys.exit."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Final, Iterable, Mapping, Sequence

from userctl.printable import printable

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input. `file`/`line`/`col` (1-based) are known once located."""

    message: str
    path: Path = ()
    file: str | None = None
    line: int | None = None
    col: int | None = None

    def dotted_path(self) -> str:
        parts: list[str] = []
        for p in self.path:
            if isinstance(p, int):
                parts.append(f"[{p}]")
            else:
                parts.append(("." if parts else "") + p)
        return "".join(parts) or "(document)"

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}:{self.col or 1}"
            where += ": "
        # A path names keys from the file: a refused key (an RLO in a role name) must not reach
        # the terminal raw in the very message that refuses it.
        return printable(f"{where}{self.dotted_path()}: {self.message}")


def first_few(names: Sequence[str], limit: int, unlisted: int = 0) -> str:
    """How a message names many things: the first `limit`, then how many more (`unlisted`: how
    many there are beyond `names`, for a list that was capped before it got here)."""
    shown = ", ".join(names[:limit])
    more = max(len(names) - limit, 0) + unlisted
    return shown + (f" and {more} more" if more else "")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """The hint after a name that is not found: the closest known one, or nothing. The one place
    every "unknown X" message gets its suggestion from."""
    import difflib  # only when a name was not found: every command imports this module

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class UserctlError(Exception):
    """Anything userctl reports as one sentence; its exit code is looked up in EXIT_CODES."""


class InputError(UserctlError):
    """Bad input: every problem found, reported together."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(UserctlError):
    """Wrong options or arguments (beyond what click itself rejects)."""


class DatabaseError(UserctlError):
    """The database is unreachable, not migrated, or holds something unexpected."""


class NotFound(UserctlError):
    """An organization, user or file named on the command line does not exist."""


class Refused(UserctlError):
    """A safety mechanism said no: guards, 2FA, approvals, stale plans, locks (exit 4)."""


class GuardBlocked(Refused):
    pass


class StalePlan(Refused):
    pass


class PolicyViolation(Refused):
    """The state a plan leaves behind (or the live one) breaks the organization's policies."""


class ForgedPlan(Refused):
    """A saved plan asks for something the planner would not have written for the live state:
    flags, policy or changes that re-deriving them does not give back."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail  # what differs, for callers that word their own refusal


class LockTimeout(Refused):
    pass


class TwoFactorRequired(Refused):
    pass


class TwoFactorFailed(Refused):
    pass


class CodeRejected(TwoFactorFailed):
    """A code the operator may type again: a wrong one (counted towards the lockout, which it did
    not start) or one that is not six digits (not a guess: not counted)."""


class NotAuthorized(Refused):
    pass


class ConfirmationRequired(Refused):
    pass


class AuditChainBroken(UserctlError):
    """`audit verify` found an altered, missing or reordered event, or a head mismatch: exit 4,
    so that a pipeline tells a tampered trail from a verification that could not run (exit 1)."""


class IdentityClash(Refused):
    """Several users of one organization hold one identity: their emails differ only by case
    (DESIGN §8 invariant 6). Nothing acts on, or for, either of them until one is removed."""


class ExitCode(IntEnum):
    """Every code the process may end with. A pipeline branches on these, so a value never
    changes meaning; docs/reference.md lists them."""

    OK = 0
    ERROR = 1  # bad input, usage, a database error: fix the input or the setup and rerun
    CHANGES = 2  # plan --detailed-exitcode: changes, none needing 2FA
    CHANGES_NEED_2FA = 3  # plan --detailed-exitcode: changes, some needing 2FA
    REFUSED = 4  # a safety mechanism said no, or the audit chain is broken
    SOFTWARE = 70  # sysexits' EX_SOFTWARE: a bug in userctl, never the input's fault
    INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


# The one mapping from error class to exit code: the most specific class listed in an error's
# MRO wins. Anything not derived from UserctlError is unexpected (a bug): ExitCode.SOFTWARE.
EXIT_CODES: Final[Mapping[type[UserctlError], ExitCode]] = MappingProxyType(
    {
        UserctlError: ExitCode.ERROR,
        Refused: ExitCode.REFUSED,
        AuditChainBroken: ExitCode.REFUSED,
    }
)


def exit_code_of(exc: BaseException) -> ExitCode:
    """The exit code an error ends the process with."""
    for cls in type(exc).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return ExitCode.SOFTWARE


def plan_exit_code(*, blocked: bool, detailed: bool, changes: bool, needs_2fa: bool) -> ExitCode:
    """`plan`'s code: 4 when blocked whatever was asked; 2/3 only with --detailed-exitcode, so a
    plain `plan` with changes is a success."""
    if blocked:
        return ExitCode.REFUSED
    if not detailed or not changes:
        return ExitCode.OK
    return ExitCode.CHANGES_NEED_2FA if needs_2fa else ExitCode.CHANGES
