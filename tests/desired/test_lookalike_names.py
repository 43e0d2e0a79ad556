"""Names that look alike are one name: role names and a user's bank-account keys are compared after
NFC and case folding (two that fold equal are declared twice; a reference that matches only after
folding is told the exact spelling), and a name mixing Latin, Greek and Cyrillic letters is refused
naming the odd letter, where a name wholly in one script stays valid."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from tests.desired.test_loader_characters import (
    HIDDEN,
    PARSERS,
    document,
    problems,
    source_at,
    write,
)
from userctl import names
from userctl.desired.loader import check_desired, load_desired
from userctl.desired.semantic import fold

SAME_ROLE = (
    "are the same role: role names are compared ignoring case (after Unicode NFC "
    "normalisation); rename one or remove it"
)
SAME_ACCOUNT = (
    "are the same account: keys are compared ignoring case (after Unicode "
    "NFC normalisation); list it once"
)
EXACT = "a role is referenced exactly as declared"
ONE_SCRIPT = "write it in one script"


# A second role after document()'s one (line 6), on lines 7 to 9; document()'s users follow from
# line 10.
def with_role(name: str, **fields: str) -> str:
    head, users = document(**fields).split("users:\n")
    return (
        f"{head}  {name}:\n    description: Other\n    permissions: [audit.view]\nusers:\n{users}"
    )


# --- roles that fold equal ------------------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    "first,second",
    [("Admin", "admin"), ("Ops", "OPS"), ("Straße", "STRASSE"), ("Ǆemal", "ǆemal")],
    ids=["case", "upper", "folded-sharp-s", "digraph"],
)
def test_roles_whose_names_fold_equal_are_declared_twice(
    tmp_path: Path, parser: str, first: str, second: str
) -> None:
    f = write(tmp_path, with_role(second, role=first))
    # At the second declaration, naming the first: FILE:LINE:COL and "at line N", as duplicate
    # emails are.
    assert problems(f, parser) == [
        f"{f}:7:3: roles.{second}: '{second}' and '{first}' (at line 4) {SAME_ROLE}"
    ]
    assert source_at(f, 7, 3).startswith(second)


def test_roles_that_fold_equal_across_files_name_the_other_file(tmp_path: Path) -> None:
    roles, users = document().split("users:\n")
    write(tmp_path, roles, "a-roles.yaml")
    write(
        tmp_path,
        "version: 1\norganization: x-org\nroles:\n  ADMIN:\n    permissions: []\nusers:\n" + users,
        "b-users.yaml",
    )
    a, b = tmp_path / "a-roles.yaml", tmp_path / "b-users.yaml"
    assert problems(tmp_path) == [
        f"{b}:4:3: roles.ADMIN: 'ADMIN' and 'Admin' (at {a}:4) {SAME_ROLE}"
    ]


def test_a_role_declared_twice_exactly_keeps_its_message(tmp_path: Path) -> None:
    roles, users = document().split("users:\n")
    write(tmp_path, roles, "a-roles.yaml")
    write(
        tmp_path,
        "version: 1\norganization: x-org\nroles:\n  Admin:\n    permissions: []\nusers:\n" + users,
        "b-users.yaml",
    )
    assert problems(tmp_path) == [
        f"{tmp_path / 'b-users.yaml'}:4:3: roles.Admin: role 'Admin' is declared twice (also "
        f"at {tmp_path / 'a-roles.yaml'}:4)"
    ]


def test_roles_that_differ_beyond_case_stay_two_roles(tmp_path: Path) -> None:
    f = write(tmp_path, with_role("Admins"))
    assert sorted(load_desired(f).roles) == ["Admin", "Admins"]


# --- a reference that matches only after folding --------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("written", ["admin", "ADMIN", "aDMIN"])
def test_a_role_reference_in_another_case_is_told_the_exact_spelling(
    tmp_path: Path, parser: str, written: str
) -> None:
    f = write(tmp_path, document().replace("    role: Admin\n", f"    role: {written}\n"))
    assert problems(f, parser) == [
        f"{f}:14:11: users.ana@x.co.role: unknown role '{written}' (did you mean 'Admin'? {EXACT})"
    ]


def test_the_exact_spelling_is_suggested_where_spelling_alone_suggests_nothing(
    tmp_path: Path,
) -> None:
    # difflib finds "OPS" and "Ops" too far apart (one letter in three in common): folding finds it.
    f = write(tmp_path, with_role("Ops").replace("    role: Admin\n", "    role: OPS\n"))
    assert problems(f) == [
        f"{f}:17:11: users.ana@x.co.role: unknown role 'OPS' (did you mean 'Ops'? {EXACT})"
    ]


# --- bank-account keys that fold equal ------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
def test_bank_account_keys_that_fold_equal_in_one_list_are_listed_twice(
    tmp_path: Path, parser: str
) -> None:
    f = write(tmp_path, document(account="ops-main, payroll, OPS-Main"))
    assert problems(f, parser) == [
        f"{f}:15:40: users.ana@x.co.bank_accounts[2]: bank accounts 'OPS-Main' and "
        f"'ops-main' (at line 15) {SAME_ACCOUNT}"
    ]
    assert source_at(f, 15, 40).startswith("OPS-Main")


def test_a_key_listed_twice_exactly_keeps_its_message(tmp_path: Path) -> None:
    f = write(tmp_path, document(account="ops-main, ops-main"))
    assert problems(f) == [
        f"{f}:15:31: users.ana@x.co.bank_accounts[1]: bank account 'ops-main' is "
        "listed twice (first at line 15)"
    ]


def test_the_same_key_in_two_users_lists_is_fine(tmp_path: Path) -> None:
    second = (
        "  bo@x.co:\n    first_name: Bo\n    last_name: Diaz\n    id_type: CC\n"
        "    id_number: '87654321'\n    phone: '+573001112234'\n    role: Admin\n"
        "    bank_accounts: [OPS-MAIN]\n"
    )
    f = write(tmp_path, document() + second)
    assert check_desired(f).users == 2


def test_folding_is_nfc_then_case_folding() -> None:
    assert fold("Admin") == fold("ADMIN") == "admin"
    assert fold("Straße") == fold("STRASSE") == "strasse"
    assert fold("ǰ") == unicodedata.normalize(
        "NFC", "ǰ".casefold()
    )  # folding decomposes it: NFC again
    assert fold("Ωmega") == fold("ωMEGA")


# --- mixed scripts --------------------------------------------------------------------------------

# The field, its value as written, and the message's details: the letter named, its position, the
# script of the rest. Each is an ordinary-looking name.
MIXED = {
    "Cyrillic A in a role name": (
        "role",
        "\u0410dmin",
        "U+0410 CYRILLIC CAPITAL LETTER A",
        1,
        "Latin",
    ),
    "Greek omicron in a role name": (
        "role",
        "Supp\u03bfrt",
        "U+03BF GREEK SMALL LETTER OMICRON",
        5,
        "Latin",
    ),
    "Cyrillic o in a first name": (
        "first_name",
        "J\u043es\u00e9",
        "U+043E CYRILLIC SMALL LETTER O",
        2,
        "Latin",
    ),
    "Latin a in a Cyrillic last name": (
        "last_name",
        "\u0418\u0432\u0430\u043d\u043e\u0432a",
        "U+0061 LATIN SMALL LETTER A",
        7,
        "Cyrillic",
    ),
    "Greek alpha in a Cyrillic name": (
        "last_name",
        "\u0391\u043d\u043d\u0430",
        "U+0391 GREEK CAPITAL LETTER ALPHA",
        1,
        "Cyrillic",
    ),
    "Cyrillic e in a bank key": (
        "account",
        "ops-m\u0430in",
        "U+0430 CYRILLIC SMALL LETTER A",
        6,
        "Latin",
    ),
}
WHERE = {
    "role": (4, 3, "roles.{}"),
    "first_name": (9, 17, "users.ana@x.co.first_name"),
    "last_name": (10, 16, "users.ana@x.co.last_name"),
    "account": (15, 21, "users.ana@x.co.bank_accounts[0]"),
}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("case", sorted(MIXED))
def test_a_name_mixing_scripts_is_refused_naming_the_odd_letter(
    tmp_path: Path, parser: str, case: str
) -> None:
    field, written, named, position, usual = MIXED[case]
    f = write(tmp_path, document(**{field: written}))
    line, col, path = WHERE[field]
    message = f"mixes scripts: {named} at position {position} among {usual} letters; {ONE_SCRIPT}"
    expected = [f"{f}:{line}:{col}: {path.format(written)}: {message}"]
    if field == "role":  # refused where declared and where referenced, as a hidden character is
        expected.append(f"{f}:14:11: users.ana@x.co.role: {message}")
    assert problems(f, parser) == expected
    assert source_at(f, line, col).startswith(written)


# One problem per string: the file, and where and what the one problem is.
ONCE = {
    # Not also the schema's pattern for a slug: the letter is what to fix.
    "an organization": (
        document().replace("organization: x-org", "organization: x-\u043erg"),
        "2:15: organization: mixes scripts: U+043E CYRILLIC SMALL LETTER O at position 3 "
        f"among Latin letters; {ONE_SCRIPT}",
    ),
    # A hidden character hides what the name looks like: it is the one problem.
    "a name also hiding a character": (
        document(first_name="J\u043e\u200bs\u00e9"),
        "9:17: users.ana@x.co.first_name: "
        f"contains U+200B ZERO WIDTH SPACE at position 3, {HIDDEN}",
    ),
}


@pytest.mark.parametrize("case", sorted(ONCE))
def test_a_name_mixing_scripts_is_one_problem(tmp_path: Path, case: str) -> None:
    text, expected = ONCE[case]
    f = write(tmp_path, text)
    assert problems(f) == [f"{f}:{expected}"]


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    "role,first_name,last_name,account",
    [
        ("Администраторы", "Иван", "Петров-Водкин", "счёт-1"),
        ("Διαχειριστές", "Ἀλέξανδρος", "Παπαδόπουλος", "λογαριασμός 2"),
        ("Admin 2 (ops)", "Zoë", "Ñúñez", "ops-main"),
    ],
    ids=["cyrillic", "greek", "latin"],
)
def test_names_wholly_in_one_script_are_valid(
    tmp_path: Path, parser: str, role: str, first_name: str, last_name: str, account: str
) -> None:
    f = write(
        tmp_path,
        document(role=role, first_name=first_name, last_name=last_name, account=f"'{account}'"),
    )
    desired = load_desired(f, parser=parser)  # type: ignore[arg-type]
    ana = desired.users["ana@x.co"]
    assert (list(desired.roles), ana.first_name, ana.last_name, set(ana.bank_accounts)) == (
        [role],
        first_name,
        last_name,
        {account},
    )


def test_a_description_may_quote_another_script(tmp_path: Path) -> None:
    f = write(tmp_path, document(description="Access for the Москва office"))
    assert load_desired(f).roles["Admin"].description == "Access for the Москва office"


def test_scripts_are_read_from_letters_only() -> None:
    for name in ["R2-D2", "Ωμέγα-3 ®", "Москва 2024", "Ölçek", "ǅemal", "ʼApostrophe", "Ὀδυσσεύς"]:
        assert names.mixed_scripts(name) is None, name
    # Modifier letters and letters beyond U+FFFF carry their script too.
    assert names.mixed_scripts("ᴀdmin") is None  # U+1D00 LATIN LETTER SMALL CAPITAL A
    assert (
        names.mixed_scripts("ab\U0001df00") is None
    )  # U+1DF00 LATIN SMALL LETTER FENG DIGRAPH WITH TRILL
    assert names.mixed_scripts("Ад\U0001df00") == (
        "mixes scripts: U+1DF00 LATIN SMALL LETTER FENG DIGRAPH WITH TRILL at position 3 among "
        "Cyrillic letters; write it in one script"
    )


def test_the_script_blocks_hold_every_letter_of_the_three_scripts() -> None:
    """characters reads a letter's script from its Unicode name, and looks for such letters only in
    _SCRIPT_BLOCKS (a scan of all of Unicode would cost every walked file a second)."""
    in_blocks = {code for start, end in names.SCRIPT_BLOCKS for code in range(start, end)}
    outside = [
        f"U+{code:04X} {unicodedata.name(chr(code))}"
        for code in range(0x110000)
        if code not in in_blocks and names._script_of(chr(code)) is not None
    ]
    assert outside == []


def test_the_letters_the_screen_lets_through_are_all_latin() -> None:
    """A file the screen passes (ASCII and the Latin letters of LATIN_BYTES) is never walked, so it
    must not be able to mix scripts: every letter it can hold is Latin."""
    letters = [chr(c) for c in [*range(0x20, 0x7F), *range(0xC0, 0x280)] if chr(c).isalpha()]
    assert {names._script_of(c) for c in letters} == {"LATIN"}
