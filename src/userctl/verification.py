"""How a write was confirmed: a typed record, and its one serialisation to the audit log's
`verified_by` text (`none`, `init`, or confirmations joined by "+": `totp` for the operator's own
code, `totp:EMAIL` for another person's code, `approval:EMAIL` for an approval used up). The
stored text keeps that format, since hash-chained events already hold it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

How = Literal["totp", "approval"]
_INIT, _NONE = "init", "none"
# One confirmation: "totp" or "approval", then ":EMAIL" when it is someone else's. An email's local
# part may hold "+" (ops+payouts@..., even ops+approval+x@...), its domain never does: a "+"
# after the domain, or after a bare "totp", is the one that joins the next confirmation.
_PART = re.compile(r"(totp|approval)(?::([^@]*@[^+]*))?(\+|\Z)")


@dataclass(frozen=True, slots=True)
class Confirmed:
    """One confirmation: a code given now, or an approval recorded earlier with one. `by` is
    whose, when it is not the operator's own code."""

    how: How
    by: str | None = None

    def to_text(self) -> str:
        return self.how if self.by is None else f"{self.how}:{self.by}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """`confirmed` empty: nothing needed confirming (or `init`, which enrols the first admin
    before anyone has a code). `operator_verified`: the operator gave a code of their own."""

    confirmed: tuple[Confirmed, ...] = ()
    operator_verified: bool = False
    init: bool = False

    @property
    def approvers(self) -> tuple[str, ...]:
        """Whose approvals this confirmation used up."""
        return tuple(c.by for c in self.confirmed if c.how == "approval" and c.by is not None)

    def to_text(self) -> str:
        if self.init:
            return _INIT
        return "+".join(c.to_text() for c in self.confirmed) or _NONE

    @classmethod
    def from_text(cls, text: str, *, operator_verified: bool) -> "Verification":
        """The record a stored `verified_by` text was written from; ValueError on any other."""
        if text == _INIT:
            return cls(init=True, operator_verified=operator_verified)
        if text == _NONE:
            return cls(operator_verified=operator_verified)
        confirmed: list[Confirmed] = []
        at = 0
        while at < len(text):
            part = _PART.match(text, at)
            if part is None or part.group(1) == "approval" and part.group(2) is None:
                raise ValueError(f"not a verified_by text: {text!r}")
            confirmed.append(Confirmed("totp" if part.group(1) == "totp" else "approval", part[2]))
            at = part.end()
            if part.group(3) and at == len(text):  # "+" joins two: one must follow
                raise ValueError(f"not a verified_by text: {text!r}")
        if not confirmed:
            raise ValueError("an empty verified_by text")
        return cls(confirmed=tuple(confirmed), operator_verified=operator_verified)


OWN_CODE = Verification(confirmed=(Confirmed("totp"),), operator_verified=True)
NOTHING_NEEDED = Verification()
AT_INIT = Verification(init=True)
