"""The audit log's `verified_by` text is written from one typed record (apply.verification) and
read back into the same record: an email holding "+" (ops+payouts@...) must not be taken for two
confirmations, and text no writer produces is refused rather than guessed at."""

from __future__ import annotations

import pytest

from userctl.apply.verification import (
    AT_INIT,
    NOTHING_NEEDED,
    OWN_CODE,
    Confirmed,
    Verification,
)


@pytest.mark.parametrize(
    ("record", "text"),
    [
        (NOTHING_NEEDED, "none"),
        (AT_INIT, "init"),
        (OWN_CODE, "totp"),
        (Verification(confirmed=(Confirmed("approval", "a+b@x.co"),)), "approval:a+b@x.co"),
        (
            Verification(
                confirmed=(Confirmed("totp"), Confirmed("approval", "ops+totp@x.co")),
                operator_verified=True,
            ),
            "totp+approval:ops+totp@x.co",
        ),
        (
            Verification(
                confirmed=(Confirmed("approval", "a@x.co"), Confirmed("approval", "b+c@y.co"))
            ),
            "approval:a@x.co+approval:b+c@y.co",
        ),
        (
            Verification(
                confirmed=(Confirmed("totp"), Confirmed("totp", "o@x.co")), operator_verified=True
            ),
            "totp+totp:o@x.co",
        ),
    ],
)
def test_the_stored_text_round_trips(record: Verification, text: str) -> None:
    assert record.to_text() == text
    assert Verification.from_text(text, operator_verified=record.operator_verified) == record


def test_approvers_are_the_approvals_used_not_the_codes_given() -> None:
    record = Verification.from_text("totp+approval:b+c@y.co", operator_verified=True)
    assert record.approvers == ("b+c@y.co",)
    assert Verification.from_text("totp+totp:o@x.co", operator_verified=True).approvers == ()


@pytest.mark.parametrize("text", ["", "approval", "approval:", "totp:", "sms", "totp+", "+totp"])
def test_text_no_writer_produces_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Verification.from_text(text, operator_verified=False)
