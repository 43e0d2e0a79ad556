"""Records that nothing compares or prints whole (bundles handed from one step to the next, the
action table's rows) generate no __eq__/__hash__/__repr__. dataclasses compiles every generated
method from source at import, and `userctl plan` imports them all in every run (issue 25: at 10k
users the process's fixed costs are most of a plan's gap to its floor). Two of them hold a
database URL, whose password a generated repr would print."""

from __future__ import annotations

import pytest

from userctl.cli.context import AppContext
from userctl.db import thin
from userctl.hygiene import HygieneFacts, Unenrolled
from userctl.plan import ActionRule

BUNDLES = [thin.Url, thin.PlanReads, HygieneFacts, Unenrolled, AppContext, ActionRule]


@pytest.mark.parametrize("record", BUNDLES, ids=lambda r: r.__name__)
def test_bundles_generate_no_comparison_or_repr(record: type) -> None:
    assert record.__eq__ is object.__eq__
    assert record.__repr__ is object.__repr__
    if record.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        assert record.__hash__ is object.__hash__  # frozen and eq would generate one


def test_neither_a_parsed_url_nor_the_context_shows_the_password() -> None:
    url = "postgresql://someone:s3cret-pw@db.internal:5432/app"
    parsed = thin.parse(url)
    assert parsed is not None and parsed.password == "s3cret-pw"
    assert "s3cret" not in repr(parsed) and "s3cret" not in str(parsed)
    context = AppContext(database_url=url)
    assert "s3cret" not in repr(context) and "s3cret" not in str(context)


def test_neither_an_init_result_nor_a_given_code_shows_the_secret() -> None:
    import datetime as dt

    from userctl.apply.bootstrap import InitResult
    from userctl.apply.given import GivenCode

    secret = "JBSWY3DPEHPK3PXP"
    made = InitResult("acme", "root@acme.co", secret, f"otpauth://totp/x?secret={secret}", "h")
    given = GivenCode("492039", dt.datetime(2026, 12, 6))
    assert secret not in repr(made) and secret not in str(made)
    assert "492039" not in repr(given) and "492039" not in str(given)
    assert made.totp_secret == secret and given.code == "492039"  # still there to use
