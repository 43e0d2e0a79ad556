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
# An email may hold "+" itself (ops+payouts@...): a "+" joins two confirmations only where the
# next one starts.
_JOIN = re.compile(r"\+(?=(?:totp|approval)(?::|\+|$))")


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
        for part in _JOIN.split(text):
            how, colon, by = part.partition(":")
            if how not in ("totp", "approval") or (colon or how == "approval") and not by:
                raise ValueError(f"not a verified_by text: {text!r}")
            confirmed.append(Confirmed("totp" if how == "totp" else "approval", by or None))
        return cls(confirmed=tuple(confirmed), operator_verified=operator_verified)


OWN_CODE = Verification(confirmed=(Confirmed("totp"),), operator_verified=True)
NOTHING_NEEDED = Verification()
AT_INIT = Verification(init=True)
