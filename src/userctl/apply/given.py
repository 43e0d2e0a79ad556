"""A TOTP code as a command received it, with the moment it was read: every check of the code
judges it at that moment, so that what the command does first (planning a large file) cannot
expire a code that was valid when given."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GivenCode:
    code: str | None = field(repr=False)  # None: no code was given; a code is never printed
    read_at: dt.datetime
