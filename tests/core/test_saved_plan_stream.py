"""A saved plan is read change by change (plan.read_saved), never held whole: from its text in
chunks of any size and in any JSON layout it is the plan that was written, with the digest it was
written with (computed once, while reading); anything else is refused as the whole-text reader
refused it, at the same line and column."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any, Iterator

import pytest

from tests.core.planner_states import ADMIN, OPS, ROOT, desired, live, user
from userctl import plan as planmod
from userctl.errors import InputError, Refused
from userctl.plan import DerivedDiff, Plan, plain_diff, read_saved
from userctl.planner import PlanOptions, diff, field_diff


def saved_plan(new_users: int = 30) -> Plan:
    """Creates (with a bank account each), an update, a deactivation, and a gate whose
    min_admins has two digits (a number a chunk boundary can split)."""
    bob, eve = user("bob@acme.co", 1), user("eve@acme.co", 2)
    state = live([bob, eve], roles=[ADMIN, OPS], min_admins=12)
    want = desired(
        [
            replace(bob, first_name="Bobby"),
            replace(eve, status="inactive"),
            *(
                user(
                    f"new{i}@acme.co",
                    10 + i,
                    first_name="Zoë",
                    bank_accounts=frozenset({"payroll"}),
                )
                for i in range(new_users)
            ),
        ]
    )
    planned = diff(want, state, PlanOptions(operator=ROOT.email))
    return replace(
        planned,
        provenance=planmod.provenance(
            dt.datetime(2026, 3, 1, 12, 0), {"users.yaml": "sha256:" + "0" * 64}, None
        ),
    )


def pieces(text: str, size: int) -> Iterator[str]:
    return (text[i : i + size] for i in range(0, len(text), size))


@pytest.mark.parametrize("size", [1, 7, 100, 4096, 10**9])
def test_a_plan_read_in_chunks_of_any_size_is_the_plan_written(size: int) -> None:
    written = saved_plan()
    text = planmod.dumps(written)
    assert written.gate_settings["min_admins"] == 12 and len(written.changes) > 60
    read = read_saved(pieces(text, size))
    # Hashed once, while reading: apply and approve ask the plan for it, and get that one.
    assert read._digest == written.digest
    assert read.changes == written.changes and read.preconditions == written.preconditions
    assert read.gate == written.gate and read.provenance == written.provenance
    # The digest verified while reading is the one the whole content gives.
    assert read.digest == written.digest == planmod.compute_digest(read.signed_content())
    assert planmod.dumps(read) == text


def test_a_creates_diff_is_derived_from_its_after_and_written_as_before() -> None:
    written = saved_plan(3)
    creates = [c for c in written.changes if c.action == "create"]
    assert creates and all(isinstance(c.diff, DerivedDiff) for c in creates)
    for change in creates:
        assert plain_diff(change.diff) == field_diff({}, dict(change.after or {}))
        assert change.to_data()["diff"] == field_diff({}, dict(change.after or {}))
    read = planmod.loads(planmod.dumps(written))
    assert all(isinstance(c.diff, DerivedDiff) for c in read.changes if c.action == "create")
    # What is not derived stays as written (an update's diff, an assignment's).
    assert all(type(c.diff) is dict for c in read.changes if c.before is not None)


def test_a_derived_diff_built_in_one_pass_is_the_mapping_it_reads_as() -> None:
    """`as_dict` (what equality and the saved JSON use) gives what reading the diff field by
    field gives, in the same order: a list field's sorted set, no field that is None."""
    derived = DerivedDiff({"name": "ops", "permissions": ["b", "a", "b"], "expires": None})
    by_field = {name: derived[name] for name in derived}
    assert by_field["permissions"]["added"] == ["a", "b"] and "expires" not in by_field
    assert derived.as_dict() == by_field and list(derived.as_dict()) == list(by_field)
    assert plain_diff(derived) == by_field and derived == by_field
    assert derived != {**by_field, "name": {"before": None, "after": "dev"}}
    assert derived != {name: entry for name, entry in by_field.items() if name != "name"}


def test_a_create_whose_diff_is_not_its_afters_keeps_the_diff_it_states() -> None:
    """A hand-edited diff must reach replan as it is (to be refused there), not be replaced by
    the one its `after` gives."""
    data = json.loads(planmod.dumps(saved_plan(3)))
    create = next(c for c in data["changes"] if c["action"] == "create" and c["kind"] == "user")
    create["diff"]["first_name"]["after"] = "Mallory"
    read = planmod.loads(_resigned(data))
    [kept] = [c for c in read.changes if c.address == create["address"] and c.action == "create"]
    assert not isinstance(kept.diff, DerivedDiff) and kept.diff["first_name"]["after"] == "Mallory"


def _resigned(data: dict[str, Any], **dumps: Any) -> str:
    signed = {k: v for k, v in data.items() if k not in ("digest", "findings", "summary")}
    return json.dumps({**data, "digest": planmod.compute_digest(signed)}, **dumps)


@pytest.mark.parametrize(
    "layout",
    [
        {},  # one line
        {"indent": 4},
        {"indent": "\t", "ensure_ascii": True},
        {"separators": (",", ":")},
    ],
    ids=["one-line", "indent-4", "tabs-ascii", "compact"],
)
def test_a_plan_reformatted_by_a_tool_is_the_same_plan(layout: dict[str, Any]) -> None:
    """Decided: the layout of the JSON is not part of the plan (the digest covers its content),
    so a file re-indented or with its keys in another order (jq does both) is read alike."""
    written = saved_plan()
    data = json.loads(planmod.dumps(written))
    reordered = dict(reversed(list(data.items())))  # "changes" last: read after the rest
    text = json.dumps(reordered, **layout)
    for size in (3, 10**9):
        read = read_saved(pieces(text, size))
        assert read.digest == written.digest and read.changes == written.changes


def test_an_edit_deep_in_the_changes_is_refused_by_the_digest() -> None:
    written = saved_plan()
    text = planmod.dumps(written)
    # In the last change's record, past every chunk but the last few.
    at = text.rindex('"first_name": "First"')
    assert at > len(text) * 3 // 4
    edited = text[:at] + '"first_name": "Firsts"' + text[at + len('"first_name": "First"') :]
    with pytest.raises(Refused, match="modified after it was written"):
        read_saved(pieces(edited, 64))


@pytest.mark.parametrize("shown", ['user["root@acme.co"]', 'user["new1@acme.co"]', ""])
def test_a_changes_address_edited_alone_is_refused_by_the_digest(shown: str) -> None:
    """A change's address is read from its kind and key, which the digest covers as the address
    they give: an address edited alone (to name another user, the plan's operator, or nothing),
    the digest left as written, must not read as the plan that was written, for a reviewer of
    the file sees it."""
    text = planmod.dumps(saved_plan(2))
    stated = '"address": "user[\\"new0@acme.co\\"]"'
    assert text.count(stated) == 1
    edited = text.replace(stated, f'"address": {json.dumps(shown)}')
    with pytest.raises(Refused, match="modified after it was written"):
        read_saved(pieces(edited, 64))


def test_a_key_given_twice_at_the_top_is_refused() -> None:
    text = planmod.dumps(saved_plan(2))
    for key in ("organization", "changes"):
        value = json.dumps(json.loads(text)[key])
        twice = text.replace("{", '{"' + key + '": ' + value + ", ", 1)
        with pytest.raises(InputError, match=f'gives "{key}" twice'):
            read_saved(pieces(twice, 50))


def _broken(text: str) -> list[str]:
    deep = text.rindex('"kind"')
    return [
        "",
        "   ",
        "{not json",
        "[1, 2",
        text[: len(text) // 2],
        text[:deep] + text[deep:].replace(",", ";", 1),
        text[:deep] + text[deep:].replace('"', "", 1),
        text.rstrip() + " x",
        text.replace("{", "{\n", 1).replace('"changes": [', '"changes": [\n  1,,', 1),
        text.replace('"changes": [', '"changes": [1,]', 1).replace("]1", "] 1", 1),
        text.replace('"digest"', '"digest" ', 1).replace('"digest" :', '"digest" ', 1),
        text[: text.rindex("}")],
    ]


@pytest.mark.parametrize("size", [1, 5, 10**9])
def test_invalid_json_is_placed_where_json_loads_places_it(size: int) -> None:
    text = planmod.dumps(saved_plan(5))
    for broken in _broken(text):
        with pytest.raises(json.JSONDecodeError) as expected:
            json.loads(broken)
        with pytest.raises(InputError) as got:
            read_saved(pieces(broken, size) if broken else iter(()))
        [problem] = got.value.problems
        assert problem.message == f"not a saved plan: invalid JSON ({expected.value.msg})"
        assert (problem.line, problem.col) == (expected.value.lineno, expected.value.colno)


def test_a_schema_problem_in_a_change_is_placed_at_its_index() -> None:
    data = json.loads(planmod.dumps(saved_plan(5)))
    index = len(data["changes"]) - 1
    data["changes"][index]["phase"] = "whenever"
    with pytest.raises(InputError, match=f"malformed at changes/{index}/phase"):
        read_saved(pieces(_resigned(data), 10))


def test_what_is_not_a_saved_plan_is_refused_before_its_changes_are_judged() -> None:
    """The whole-document checks come first, as when the document was read whole: an old plan
    is `plan again`, whatever its changes hold."""
    data = json.loads(planmod.dumps(saved_plan(2)))
    data["format_version"] = 1
    data["changes"][0]["action"] = "explode"
    with pytest.raises(InputError, match="format_version 3 expected"):
        read_saved(pieces(_resigned(data), 10))


def test_a_number_split_between_two_chunks_is_read_whole() -> None:
    """A top-level number ends where the text does only at the end of the text: "3" then "1" in
    the next chunk is 31, a format this userctl does not read, not 3 followed by junk."""
    text = planmod.dumps(saved_plan(2)).replace('"format_version": 3', '"format_version": 31')
    at = text.index('"format_version": 31') + len('"format_version": 3')
    with pytest.raises(InputError, match="format_version 3 expected"):
        read_saved(iter((text[:at], text[at:])))


def test_a_deletes_diff_is_derived_from_its_before_and_written_as_before() -> None:
    """A removed user's and a removed role's diff (every field to None; a list field all
    removed) is derived from `before` in the planned plan and in the plan read back, and reads
    and writes as the planner's `field_diff(before, {})`."""
    bob, eve = user("bob@acme.co", 1, role=ADMIN.name), user("eve@acme.co", 2)
    state = live([ROOT, bob, eve], roles=[ADMIN, OPS])
    planned = diff(
        desired([ROOT, bob], roles=[ADMIN]),
        state,
        PlanOptions(operator=ROOT.email, allow_mass_removal=True),
    )
    deletes = [c for c in planned.changes if c.before is not None and c.after is None]
    assert {c.kind for c in deletes} >= {"user", "role"}
    written = replace(
        planned,
        provenance=planmod.provenance(
            dt.datetime(2026, 3, 1), {"u.yaml": "sha256:" + "0" * 64}, None
        ),
    )
    read = planmod.loads(planmod.dumps(written))
    for plan in (written, read):
        for change in (c for c in plan.changes if c.kind in ("user", "role") and c.after is None):
            assert isinstance(change.diff, DerivedDiff)
            expected = field_diff(dict(change.before or {}), {})
            assert plain_diff(change.diff) == expected == dict(change.diff)
            assert list(change.diff) == list(expected) and len(change.diff) == len(expected)
    role = next(c for c in read.changes if c.kind == "role" and c.after is None)
    assert role.diff["permissions"]["removed"] == sorted(OPS.permissions)
    assert read.changes == written.changes and planmod.dumps(read) == planmod.dumps(written)
    # A created and a removed record alike are two different diffs.
    assert DerivedDiff({"name": "x"}) != DerivedDiff({"name": "x"}, gone=True)


def test_a_deletes_diff_that_is_not_its_befores_is_kept_as_stated() -> None:
    bob, eve = user("bob@acme.co", 1), user("eve@acme.co", 2)
    planned = diff(desired([ROOT, bob]), live([ROOT, bob, eve]), PlanOptions(operator=ROOT.email))
    data = json.loads(
        planmod.dumps(
            replace(
                planned,
                provenance=planmod.provenance(
                    dt.datetime(2026, 3, 1), {"u.yaml": "sha256:" + "0" * 64}, None
                ),
            )
        )
    )
    delete = next(c for c in data["changes"] if c["action"] == "delete")
    delete["diff"]["first_name"]["before"] = "Mallory"
    [kept] = [c for c in planmod.loads(_resigned(data)).changes if c.action == "delete"]
    assert type(kept.diff) is dict and kept.diff["first_name"]["before"] == "Mallory"


def test_a_saved_updates_after_shares_its_befores_strings() -> None:
    """Each change is parsed on its own, so an update's `after` would hold a second copy of every
    string its `before` holds, and its key a third copy of the email."""
    read = planmod.loads(planmod.dumps(saved_plan(3)))
    update = next(c for c in read.changes if c.action == "update" and c.kind == "user")
    assert update.before is not None and update.after is not None
    for name in ("email", "last_name", "phone", "id_number"):
        assert update.after[name] is update.before[name]  # type: ignore[literal-required]
    assert update.key[0] is update.after["email"]
    assert update.after["first_name"] != update.before["first_name"]
    created = next(c for c in read.changes if c.action == "create")
    assert created.key[0] is (created.after or {})["email"]
