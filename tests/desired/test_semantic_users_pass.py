"""The lean loop that checks (and builds) the users of a valid desired state (semantic._users_pass)
answers "nothing wrong" exactly when the loop that reports the users' problems
(semantic._report_users) finds none: over documents drawn to collide in every rule (emails alike
but for case, shared identities, unknown and case-folded roles, repeated bank accounts, inactive
users with accounts, impossible dates) and holding values of the wrong types."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from userctl.desired import semantic
from userctl.errors import Path as ProblemPath

ROLES = {"Admin": "a.yaml", "Viewer": "a.yaml"}
ABSENT = object()

FIELDS: dict[str, list[Any]] = {
    "role": ["Admin", "Viewer", "admin", "Nope", 5, ["Admin"], None],
    "id_type": ["CC", "CE", 5],
    "id_number": ["1", "2", "3", 7, None, ["1"]],
    "bank_accounts": [
        [],
        ["a"],
        ["a", "b"],
        ["a", "A"],
        ["a", "a"],
        ["á", "Á"],
        ["á", "b"],
        [1, "a", "a"],
        [None, "x"],
        "x",
        None,
    ],
    "status": ["active", "inactive", 3],
    "expires": ["2026-01-01", "2026-02-30", "2026-2-3", 5, None],
}
EMAILS = ["a@x.co", "A@x.co", "b@x.co", "B@X.CO", "c@x.co", "d@x.co"]

users = st.dictionaries(
    # Each key its own string object, as parsed: the rules tell two declarations apart so.
    st.sampled_from(EMAILS).map(lambda email: "".join(list(email))),
    st.one_of(
        st.fixed_dictionaries(
            {},
            optional={name: st.sampled_from(values) for name, values in FIELDS.items()},
        ),
        st.sampled_from([None, [1], "x"]),
    ),
    max_size=5,
)
documents = st.lists(
    st.one_of(st.fixed_dictionaries({"users": users}), st.just({"users": ["x"]})),
    min_size=1,
    max_size=3,
)


def _at(file: str, path: ProblemPath, *, key: bool = False) -> tuple[int, int]:
    return 1, 1


@settings(max_examples=1000, deadline=None)
@given(documents, st.booleans())
def test_the_lean_loop_passes_exactly_what_the_reporting_loop_does(
    docs: list[dict[str, Any]], roles_known: bool
) -> None:
    named = [(f"f{i}.yaml", doc) for i, doc in enumerate(docs)]
    roles = ROLES if roles_known else None
    report = semantic._Report(_at)
    semantic._report_users(named, roles, report)
    assert semantic._users_pass(named, roles, None) == (report.problems == []), report.problems
