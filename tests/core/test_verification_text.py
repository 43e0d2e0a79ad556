"""The audit log's `verified_by` text is written from one typed record (verification.py) and
read back into the same record: an email holding "+" (ops+payouts@...) must not be taken for two
confirmations, and text no writer produces is refused rather than guessed at."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from userctl.verification import (
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


# Emails as the desired-state schema admits them (a "+" anywhere in the local part, none in the
# domain), with the confirmation words themselves in the local part: "ops+approval+x@..." once split
# into two confirmations and was refused.
_local = st.lists(
    st.sampled_from(["a", "ops", "+", ".", "-", "totp", "approval", "+totp", "+approval", ":"]),
    min_size=1,
    max_size=6,
).map("".join)
_domain = st.lists(st.sampled_from(["x", "acme", "co", "-", "."]), min_size=1, max_size=4).map(
    lambda parts: "".join(parts) + ".co"
)
_email = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
_confirmed = st.one_of(
    st.just(Confirmed("totp")),
    st.builds(Confirmed, st.just("totp"), _email),
    st.builds(Confirmed, st.just("approval"), _email),
)
# Every record a writer builds: init (nothing confirmed), nothing needed, or one or more
# confirmations (the operator's own code, another person's code, approvals used up).
_records = st.one_of(
    st.builds(lambda v: Verification(init=True, operator_verified=v), st.booleans()),
    st.builds(
        lambda c, v: Verification(confirmed=tuple(c), operator_verified=v),
        st.lists(_confirmed, max_size=3),
        st.booleans(),
    ),
)


@given(_records)
def test_every_record_a_writer_builds_parses_back_to_an_equal_record(record: Verification) -> None:
    text = record.to_text()
    assert Verification.from_text(text, operator_verified=record.operator_verified) == record


def test_the_writers_store_the_text_of_a_record() -> None:
    # The round trip above holds for what the writers store only if each of them stores a record's
    # text: an `AuditEvent(verified_by=...)` given anything but `<record>.to_text()` (a literal, a
    # string built on the spot) would be a form no test parses back.
    src = Path(__file__).resolve().parents[2] / "src" / "userctl"
    written = 0
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg != "verified_by":
                    continue
                value = kw.value
                built = (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and value.func.attr == "to_text"
                )
                assert built, f"{path.relative_to(src)}:{node.lineno}: verified_by not a record's"
                written += 1
    assert written >= 6  # activity, accounts import, review attest, enrolment, apply, resend...


@pytest.mark.parametrize(
    ("granted", "shown"),
    [
        ({"verified_by": "init", "operator_verified": False}, "init"),
        ({"verified_by": "none", "operator_verified": False}, "none (operator gave no code)"),
        ({"verified_by": "none", "operator_verified": None}, "none"),
        ({"verified_by": "approval:init+x@acme.co", "operator_verified": False}, None),
        ({"verified_by": "sms", "operator_verified": False}, "sms (operator gave no code)"),
    ],
)
def test_the_review_page_reads_the_record(granted: dict[str, object], shown: str | None) -> None:
    # Only init, which enrols the first admin before anyone has a code, goes without the note;
    # text no writer produces is shown as it is, never a crash of the page.
    from userctl.render.review import verified

    expected = f"{granted['verified_by']} (operator gave no code)" if shown is None else shown
    assert verified(granted) == expected
