"""The semantic rules, through the real loader (so every message is located) and directly on
documents holding values of the wrong types (the rules must leave those to the schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from userctl.desired import semantic
from userctl.desired.loader import load_desired
from userctl.errors import InputError
from userctl.errors import Path as ProblemPath

HEADER = (
    "version: 1\norganization: sem-org\nroles:\n  Admin:\n    permissions: [users.view]\n"
    "  Viewer:\n    permissions: []\nusers:\n"
)


def user(
    email: str,
    *,
    id_type: str = "CC",
    id_number: str = "12345678",
    role: str = "Admin",
    extra: str = "",
) -> str:
    return (
        f"  {email}:\n    first_name: Ana\n    last_name: Ruiz\n    id_type: {id_type}\n"
        f"    id_number: '{id_number}'\n    phone: '+573001112233'\n    role: {role}\n{extra}"
    )


def problems(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "s.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_desired(f)
    return [f"{p.line}:{p.col}: {p.dotted_path()}: {p.message}" for p in exc.value.problems]


def loads(tmp_path: Path, text: str) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(text, encoding="utf-8")
    load_desired(f)


def test_unknown_role_suggests_the_closest(tmp_path: Path) -> None:
    assert problems(tmp_path, HEADER + user("a@b.co", role="Admn")) == [
        "15:11: users.a@b.co.role: unknown role 'Admn' (did you mean 'Admin'?)"
    ]


def test_unknown_role_lists_the_declared_ones(tmp_path: Path) -> None:
    assert problems(tmp_path, HEADER + user("a@b.co", role="Payouts")) == [
        "15:11: users.a@b.co.role: unknown role 'Payouts'; declared roles: Admin, Viewer"
    ]


def test_unknown_role_when_no_role_is_declared(tmp_path: Path) -> None:
    text = "version: 1\norganization: sem-org\nusers:\n" + user("a@b.co")
    assert problems(tmp_path, text) == [
        "10:11: users.a@b.co.role: unknown role 'Admin'; the desired state declares no roles"
    ]


def test_emails_differing_only_by_case_are_one_user(tmp_path: Path) -> None:
    text = HEADER + user("ana@b.co") + user("Ana@B.co", id_number="87654321")
    assert problems(tmp_path, text) == [
        "16:3: users.Ana@B.co: 'Ana@B.co' and 'ana@b.co' (at line 9) are the same user: emails "
        "are compared case-insensitively"
    ]


def test_an_identity_document_belongs_to_one_user(tmp_path: Path) -> None:
    text = HEADER + user("a@b.co") + user("c@d.co") + user("e@f.co", id_type="CE")
    assert problems(tmp_path, text) == [
        "20:16: users.c@d.co.id_number: id_type CC with id_number 12345678 is already used by "
        "'a@b.co' (at line 13); an identity document belongs to one user"
    ]


def test_a_bank_account_is_listed_once_per_user(tmp_path: Path) -> None:
    text = HEADER + user(
        "a@b.co", extra="    bank_accounts:\n      - ops\n      - pay\n      - ops\n      - ops\n"
    )
    assert problems(tmp_path, text) == [
        "19:9: users.a@b.co.bank_accounts[2]: bank account 'ops' is "
        "listed twice (first at line 17)",
        "20:9: users.a@b.co.bank_accounts[3]: bank account 'ops' is "
        "listed twice (first at line 17)",
    ]


def test_the_same_bank_account_for_several_users_is_fine(tmp_path: Path) -> None:
    loads(
        tmp_path,
        HEADER
        + user("a@b.co", extra="    bank_accounts: [ops]\n")
        + user("c@d.co", id_number="99999999", extra="    bank_accounts: [ops]\n"),
    )


def test_bank_accounts_only_for_active_users(tmp_path: Path) -> None:
    text = HEADER + user("a@b.co", extra="    status: inactive\n    bank_accounts: [ops]\n")
    assert problems(tmp_path, text) == [
        "17:20: users.a@b.co.bank_accounts: bank accounts can only be assigned to active users: "
        "this user is declared inactive; remove its bank_accounts or make it active"
    ]


def test_inactive_users_without_bank_accounts_are_fine(tmp_path: Path) -> None:
    loads(tmp_path, HEADER + user("a@b.co", extra="    status: inactive\n    bank_accounts: []\n"))
    loads(tmp_path, HEADER + user("a@b.co", extra="    status: inactive\n"))


def test_a_mistake_is_reported_once(tmp_path: Path) -> None:
    """A value refused by a strict rule is not reported again by the rules that read it."""
    text = HEADER + user("a@b.co", role="yes") + user("c@d.co", role="*x", id_number="87654321")
    assert [p.split(": ", 2)[1] for p in problems(tmp_path, text)] == [
        "users.a@b.co.role",
        "users.c@d.co.role",
    ]


def test_every_problem_at_once_schema_and_semantic(tmp_path: Path) -> None:
    text = HEADER + user("a@b.co", role="Nope") + user("c@d.co", id_number="1", role="Admin")
    found = problems(tmp_path, text)
    assert [p.split(": ", 2)[1] for p in found] == ["users.a@b.co.role", "users.c@d.co.id_number"]


def _at(file: str, path: ProblemPath, *, key: bool = False) -> tuple[int, int]:
    return (
        len(path),
        1 if key else 2,
    )  # a stand-in source map: the rules only pass positions through


@pytest.mark.parametrize(
    "doc",
    [
        {"organization": 5, "roles": [], "users": "x"},
        {"roles": {"A": None}, "users": {"a@b.co": None, "c@d.co": [1]}},
        {
            "roles": {},
            "users": {
                "a@b.co": {
                    "role": 5,
                    "id_type": ["CC"],
                    "id_number": {"x": 1},
                    "bank_accounts": "ops",
                }
            },
        },
        {"users": {"a@b.co": {"bank_accounts": [None, 1, [2], "x", "x"], "status": "inactive"}}},
    ],
)
def test_rules_leave_wrong_types_to_the_schema(doc: dict[str, Any]) -> None:
    found = semantic.check([("f.yaml", doc)], _at)
    assert all(p.file == "f.yaml" for p in found)
    if "bank_accounts" in str(doc) and isinstance(
        doc["users"]["a@b.co"].get("bank_accounts"), list
    ):
        assert [p.message.split(":")[0] for p in found] == [
            "bank accounts can only be assigned to active users",
            "bank account 'x' is listed twice (first at line 4)",
        ]
    else:
        assert found == []


def test_organization_must_agree_across_documents() -> None:
    found = semantic.check(
        [("a.yaml", {"organization": "one"}), ("b.yaml", {"organization": "two"})], _at
    )
    assert [(p.file, p.path, p.message) for p in found] == [
        (
            "b.yaml",
            ("organization",),
            "organization 'two' differs from 'one' declared at a.yaml:1; "
            "the files of a directory must all declare the same organization",
        )
    ]


def test_roles_that_are_not_a_mapping_leave_role_references_unchecked(tmp_path: Path) -> None:
    """The schema reports `roles:`; "unknown role" on every user would be noise about
    the same mistake."""
    text = "version: 1\norganization: sem-org\nroles: [Admin]\nusers:\n" + user("a@b.co")
    found = problems(tmp_path, text)
    assert [p.split(": ")[1] for p in found] == ["roles"]


def test_role_references_unchecked_when_a_file_could_not_be_parsed() -> None:
    docs = [("b.yaml", {"users": {"a@b.co": {"role": "Admin"}, "A@B.co": {"role": "Admin"}}})]
    assert semantic.check(docs, _at, roles_known=True)[0].message.startswith("unknown role 'Admin'")
    # Duplicates stay true whatever the unparsed file declares.
    assert [p.message.split(" (")[0] for p in semantic.check(docs, _at, roles_known=False)] == [
        "'A@B.co' and 'a@b.co'"
    ]
