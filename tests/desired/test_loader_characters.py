"""Names a reviewer can trust: the loader refuses, in every string value and key, control and format
characters (whatever escape spelt them), text not in NFC, and emails that are not ASCII, each
located FILE:LINE:COL at the offending value and reported with every other problem; and the
screen that spares a clean file the walk over its strings never lets one of them through."""

from __future__ import annotations

import itertools
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from userctl import names
from userctl.cli.main import cli
from userctl.desired import characters, fast_yaml
from userctl.desired.fast_yaml import Screen
from userctl.desired.loader import check_desired, load_desired
from userctl.desired.strict_yaml import parse_marked
from userctl.errors import InputError

HIDDEN = (
    "a control or format character that would display differently from what is stored: remove it"
)
NOT_NFC = (
    "is not in Unicode NFC form (a decomposed accent looks the same but is stored "
    "differently): write it in NFC, as "
)
LOOKALIKE = (
    "email addresses must be ASCII, as a look-alike address is a "
    "second identity; use the ASCII address"
)
PARSERS = ["auto", "precise"]


def document(
    *,
    role: str = "Admin",
    description: str = "Full access",
    email: str = "ana@x.co",
    first_name: str = "Ana",
    last_name: str = "Ruiz",
    id_number: str = "'12345678'",
    account: str = "ops-main",
) -> str:
    """A valid file but for what the caller puts in it; each value on a line of its own."""
    return (
        "version: 1\n"  # 1
        "organization: x-org\n"  # 2
        "roles:\n"  # 3
        f"  {role}:\n"  # 4, key at column 3
        f"    description: {description}\n"  # 5, value at column 18
        "    permissions: [users.view]\n"  # 6
        "users:\n"  # 7
        f"  {email}:\n"  # 8, key at column 3
        f"    first_name: {first_name}\n"  # 9, value at column 17
        f"    last_name: {last_name}\n"  # 10, value at column 16
        "    id_type: CC\n"  # 11
        f"    id_number: {id_number}\n"  # 12, value at column 16
        "    phone: '+573001112233'\n"  # 13
        f"    role: {role}\n"  # 14, value at column 11
        f"    bank_accounts: [{account}]\n"  # 15, item at column 21
    )


def write(tmp_path: Path, text: str, name: str = "users.yaml") -> Path:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


def problems(path: Path, parser: str = "auto") -> list[str]:
    with pytest.raises(InputError) as exc:
        load_desired(path, parser=parser)  # type: ignore[arg-type]
    return [str(p) for p in exc.value.problems]


def source_at(path: Path, line: int, col: int) -> str:
    return path.read_text(encoding="utf-8").splitlines()[line - 1][col - 1 :]


# --- control and format characters ---------------------------------------------------------------

# Where document() puts a field's value: line, column, path.
AT = {
    "description": (5, 18, "roles.Admin.description"),
    "first_name": (9, 17, "users.ana@x.co.first_name"),
    "last_name": (10, 16, "users.ana@x.co.last_name"),
    "id_number": (12, 16, "users.ana@x.co.id_number"),
}
# The field, its value as written, the character the message names, and its position in the value.
REFUSED = {
    "NUL as \\0": ("first_name", '"Ana\\0"', "U+0000 NULL", 4),
    "ESC as \\e": ("description", '"Full \\e[31maccess"', "U+001B ESCAPE", 6),
    "ESC as \\x1b": ("description", '"\\x1b[2J"', "U+001B ESCAPE", 1),
    "zero-width space": ("last_name", "Ru\u200biz", "U+200B ZERO WIDTH SPACE", 3),
    "zero-width space as \\u": ("last_name", '"Ru\\u200Biz"', "U+200B ZERO WIDTH SPACE", 3),
    "right-to-left override": (
        "last_name",
        "Ruiz\u202egnp.exe",
        "U+202E RIGHT-TO-LEFT OVERRIDE",
        5,
    ),
    "right-to-left isolate": ("first_name", "'Ana \u2067x'", "U+2067 RIGHT-TO-LEFT ISOLATE", 5),
    "BOM inside a value": ("first_name", "An\ufeffa", "U+FEFF ZERO WIDTH NO-BREAK SPACE", 3),
    "zero-width joiner": ("first_name", "A\u200dna", "U+200D ZERO WIDTH JOINER", 2),
    "soft hyphen": ("last_name", "Ru\u00adiz", "U+00AD SOFT HYPHEN", 3),
    "tab in a name": ("first_name", '"Ana\tMaría"', "U+0009 CHARACTER TABULATION", 4),
    "tab as \\t": ("first_name", '"Ana\\tMaría"', "U+0009 CHARACTER TABULATION", 4),
    "next line as \\N": ("last_name", '"Ruiz\\N"', "U+0085 NEXT LINE", 5),
    "line separator as \\L": ("last_name", '"Ru\\Liz"', "U+2028 LINE SEPARATOR", 3),
    "line feed from a literal block": (
        "description",
        "|-\n      Full\n      access",
        "U+000A LINE FEED",
        5,
    ),
    "line feed from a blank line": ("description", '"Full\n\n      access"', "U+000A LINE FEED", 5),
    "NUL where the schema also refuses": ("id_number", '"1234\\0"', "U+0000 NULL", 5),
}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_control_and_format_characters_are_refused_at_the_value(
    tmp_path: Path, case: str, parser: str
) -> None:
    field, written, named, position = REFUSED[case]
    line, col, path = AT[field]
    f = write(tmp_path, document(**{field: written}))
    # Exactly this one problem: the schema and the semantic rules say nothing more about the
    # value (their messages would quote the very characters refused).
    assert problems(f, parser) == [
        f"{f}:{line}:{col}: {path}: contains {named} at position {position}, {HIDDEN}"
    ]
    assert source_at(f, line, col) == written.partition("\n")[0]  # the position is the value's


@pytest.mark.parametrize("parser", PARSERS)
def test_a_hidden_character_in_a_role_name_is_refused_at_the_key_and_at_each_reference(
    tmp_path: Path, parser: str
) -> None:
    f = write(tmp_path, document(role="Admin\u200b"))
    path = "roles.Admin\\u200b"  # the message itself shows the character escaped
    message = f"contains U+200B ZERO WIDTH SPACE at position 6, {HIDDEN}"
    assert problems(f, parser) == [
        f"{f}:4:3: {path}: {message}",
        f"{f}:14:11: users.ana@x.co.role: {message}",
    ]


@pytest.mark.parametrize("parser", PARSERS)
def test_a_hidden_character_in_a_list_item_is_refused_at_the_item(
    tmp_path: Path, parser: str
) -> None:
    f = write(tmp_path, document(account='"ops\\u200B-main"'))
    assert problems(f, parser) == [
        f"{f}:15:21: users.ana@x.co.bank_accounts[0]: "
        f"contains U+200B ZERO WIDTH SPACE at position 4, {HIDDEN}"
    ]


def test_several_hidden_characters_are_counted_after_the_first(tmp_path: Path) -> None:
    f = write(tmp_path, document(last_name='"\\u202ERu\\u200Biz\\0"'))
    assert problems(f) == [
        f"{f}:10:16: users.ana@x.co.last_name: contains U+202E RIGHT-TO-LEFT OVERRIDE at "
        "position 1 and 2 more control or format characters, which would display differently "
        "from what is stored: remove them"
    ]


def test_every_control_character_has_its_unicode_name() -> None:
    controls = {c for c in range(0x100) if unicodedata.category(chr(c)) == "Cc"}
    assert controls == set(range(0x20)) | set(
        range(0x7F, 0xA0)
    )  # the rest are "<control>" in messages
    named = names.CONTROL_NAMES
    assert set(named) == set(range(0x20)) | {0x7F, 0x85}
    assert all(
        unicodedata.lookup(name) == chr(c) for c, name in named.items()
    )  # Unicode's own aliases


# --- NFC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    "written", ["Go\u0301mez", '"Go\\u0301mez"'], ids=["decomposed", "escaped"]
)
def test_a_name_not_in_nfc_is_refused_with_its_nfc_spelling(
    tmp_path: Path, parser: str, written: str
) -> None:
    f = write(tmp_path, document(last_name=written))
    assert problems(f, parser) == [f'{f}:10:16: users.ana@x.co.last_name: {NOT_NFC}"Gómez"']
    assert source_at(f, 10, 16) == written


@pytest.mark.parametrize("parser", PARSERS)
def test_a_role_name_not_in_nfc_is_refused_at_the_key_and_at_each_reference(
    tmp_path: Path, parser: str
) -> None:
    decomposed = "Operac\u0327o\u0303es"
    f = write(tmp_path, document(role=decomposed))
    assert problems(f, parser) == [
        f'{f}:4:3: roles.{decomposed}: {NOT_NFC}"Operações"',
        f'{f}:14:11: users.ana@x.co.role: {NOT_NFC}"Operações"',
    ]


# --- emails --------------------------------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    "email,named,position",
    [
        (
            "an\u0430@x.co",
            "U+0430 CYRILLIC SMALL LETTER A",
            3,
        ),  # far from Latin: the strings are walked
        (
            "jos\u00e9@x.co",
            "U+00E9 LATIN SMALL LETTER E WITH ACUTE",
            4,
        ),  # Latin: only the emails are
        ('"an\\u0430@x.co"', "U+0430 CYRILLIC SMALL LETTER A", 3),  # an ASCII file, with an escape
    ],
    ids=["cyrillic", "accented", "escaped"],
)
def test_an_email_that_is_not_ascii_is_refused_naming_the_character(
    tmp_path: Path, parser: str, email: str, named: str, position: int
) -> None:
    f = write(tmp_path, document(email=email))
    key = email.strip('"').encode().decode("unicode_escape") if email.startswith('"') else email
    # One problem: not also the schema's "is not valid; expected an email address".
    assert problems(f, parser) == [
        f"{f}:8:3: users.{key}: contains {named} at position {position}: {LOOKALIKE}"
    ]
    assert source_at(f, 8, 3).startswith(email)


def test_a_lookalike_of_a_declared_email_is_refused_not_taken_for_another_user(
    tmp_path: Path,
) -> None:
    lookalike = (
        "  an\u0430@x.co:\n    first_name: Ana\n    last_name: Ruiz\n    id_type: CC\n"
        "    id_number: '87654321'\n    phone: '+573001112234'\n    role: Admin\n"
    )
    f = write(tmp_path, document() + lookalike)
    # Emails are compared case-insensitively, never by look: without the rule this is a second user.
    assert problems(f) == [
        f"{f}:16:3: users.an\u0430@x.co: "
        f"contains U+0430 CYRILLIC SMALL LETTER A at position 3: {LOOKALIKE}"
    ]


def test_a_hidden_character_in_an_email_is_named_as_such(tmp_path: Path) -> None:
    f = write(tmp_path, document(email="ana\u200b@x.co"))
    assert problems(f) == [
        f"{f}:8:3: users.ana\\u200b@x.co: contains U+200B ZERO WIDTH SPACE at position 4, {HIDDEN}"
    ]


# --- what stays valid ----------------------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
def test_accents_in_nfc_load_in_every_name_and_key(tmp_path: Path, parser: str) -> None:
    f = write(
        tmp_path,
        document(
            role="Operações",
            description="Operações de pagamento",
            first_name="María José",
            last_name="Pérez Gómez",
        ),
    )
    desired = load_desired(f, parser=parser)  # type: ignore[arg-type]
    assert (
        list(desired.roles) == ["Operações"]
        and desired.roles["Operações"].description == "Operações de pagamento"
    )
    ana = desired.users["ana@x.co"]
    assert (ana.first_name, ana.last_name, ana.role) == ("María José", "Pérez Gómez", "Operações")
    assert check_desired(f, parser=parser).roles == 1  # type: ignore[arg-type]


def test_a_role_named_in_another_script_is_valid(tmp_path: Path) -> None:
    f = write(tmp_path, document(role="Операции", description="Пользователи"))
    assert list(load_desired(f).roles) == ["Операции"]


# --- with every other problem, in any file --------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
def test_character_problems_are_reported_with_every_other_problem(
    tmp_path: Path, parser: str
) -> None:
    text = document(first_name='"Ana\\0"', last_name="Go\u0301mez").replace(
        "+573001112233", "12345"
    )
    text = text.replace("    role: Admin\n", "    role: Admn\n")
    f = write(tmp_path, text)
    assert problems(f, parser) == [
        f"{f}:9:17: users.ana@x.co.first_name: contains U+0000 NULL at position 4, {HIDDEN}",
        f'{f}:10:16: users.ana@x.co.last_name: {NOT_NFC}"Gómez"',
        f'{f}:13:12: users.ana@x.co.phone: "12345" is not valid; expected phone number in '
        "E.164 format: + then 8 to 15 digits, quoted.",
        f"{f}:14:11: users.ana@x.co.role: unknown role 'Admn' (did you mean 'Admin'?)",
    ]


def test_each_file_of_a_directory_is_checked(tmp_path: Path) -> None:
    roles, users = document().split("users:\n")
    write(tmp_path, roles, "a-roles.yaml")
    write(
        tmp_path,
        "version: 1\norganization: x-org\nusers:\n" + users.replace("Ruiz", "Ru\u202eiz"),
        "b-users.yaml",
    )
    b = tmp_path / "b-users.yaml"
    assert problems(tmp_path) == [
        f"{b}:6:16: users.ana@x.co.last_name: "
        f"contains U+202E RIGHT-TO-LEFT OVERRIDE at position 3, {HIDDEN}"
    ]


# --- through the CLI -----------------------------------------------------------------------------


def test_validate_and_plan_refuse_them_with_file_line_col(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("USERCTL_ORGANIZATION", raising=False)
    f = write(
        tmp_path, document(first_name='"Ana\\0"', email="an\u0430@x.co", last_name="Go\u0301mez")
    )
    expected = [
        f"{f}:8:3: users.an\u0430@x.co: "
        f"contains U+0430 CYRILLIC SMALL LETTER A at position 3: {LOOKALIKE}",
        f"{f}:9:17: users.an\u0430@x.co.first_name: contains U+0000 NULL at position 4, {HIDDEN}",
        f'{f}:10:16: users.an\u0430@x.co.last_name: {NOT_NFC}"Gómez"',
        "3 problems found",
    ]
    runner = CliRunner()
    validated = runner.invoke(cli, ["validate", "-f", str(f)], catch_exceptions=False)
    assert (validated.exit_code, validated.stdout) == (1, "")
    assert validated.stderr.splitlines() == expected
    # plan shares the loader, and refuses the file before it opens the database.
    never = tmp_path / "never.db"
    planned = runner.invoke(
        cli, ["--database-url", f"sqlite:///{never}", "plan", "-f", str(f)], catch_exceptions=False
    )
    assert (
        planned.exit_code == 1 and planned.stderr.splitlines() == expected[:-1]
    )  # plan prints no count
    assert not never.exists()


# --- the screen: no walk for a clean file, and never a miss --------------------------------------


def test_a_generated_organization_with_accents_needs_no_walk(tmp_path: Path) -> None:
    """The bench's files (Spanish names) are screened, not walked: the walk costs about 0.2 s at
    100,000 users, the screen a fifth of that."""
    from bench.gen_org import generate

    text = generate(300, seed=3)
    assert not text.isascii()
    assert fast_yaml.scan(text.encode()).screen is Screen.EMAILS
    assert fast_yaml.scan(text.encode("ascii", errors="ignore")).screen is Screen.CLEAN
    assert fast_yaml.scan(text.replace("\n", "\r\n").encode()).screen is Screen.EMAILS


@pytest.mark.parametrize(
    "text",
    [
        'a: "x\\0"\n',
        "a: x\tb\n",
        "a: |\n  x\n",
        "a: >\n  x\n",
        "a: x\n\n  y\n",
        "a: 'x\n   \n  y'\n",
        "a: 'x\r\n\r\n  y'\r\n",
        "a: 'x\r\r  y'\r",
        "a: b\u200b\n",
        "a: Ä\u0301\n",
        "a: \u00ad\n",
        "a: ¿x?\n",
        "a: ${HOME}\n",
        "a: 'cost $x'\nb: ${HOME}\n",
    ],
)
def test_the_screen_walks_whatever_could_hold_a_refused_character(text: str) -> None:
    assert fast_yaml.scan(text.encode()).screen is Screen.WALK


def test_the_latin_letters_the_screen_lets_through_are_safe_in_any_order() -> None:
    latin = [chr(c) for c in range(0xC0, 0x280)]
    # LATIN_BYTES is exactly the UTF-8 of these letters: valid UTF-8 of those bytes is these
    # letters.
    assert {b for c in latin for b in c.encode()} == fast_yaml.LATIN_BYTES
    for c in latin:
        assert (
            unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp")
            and unicodedata.combining(c) == 0
        )
        assert unicodedata.is_normalized("NFC", c)
        decomposed = unicodedata.normalize("NFD", c)
        assert (
            unicodedata.combining(decomposed[0]) == 0
        )  # its decomposition starts with a base letter
    # No two neighbours compose (a starter composes only with its neighbour or with combining marks,
    # which none of these is): text of these letters and printable ASCII is NFC.
    alphabet = latin + [chr(c) for c in range(0x20, 0x7F)]
    assert all(
        unicodedata.is_normalized("NFC", a + b) for a, b in itertools.product(alphabet, repeat=2)
    )


_FRAGMENTS = st.sampled_from(
    [
        "a",
        "Z",
        " ",
        "é",
        "ç",
        "Ā",
        "ɏ",
        "e\u0301",
        "\u0301",
        "\u200b",
        "\u202e",
        "\ufeff",
        "\u00ad",
        "а",
        "¿",
        "\t",
        "\\t",
        "\\0",
        "\\e",
        "\\u0301",
        "\\n",
        "\\L",
        "\\N",
        "\\_",
        "\\\\",
        "''",
        "\n",
        "\n\n",
        "\n   \n",
        "\r\n",
        "\r\n\r\n",
        "\r",
        "|",
        ">",
        "#",
        "@",
        "-",
    ]
)
_STYLES = st.sampled_from(
    [
        "k: {}",
        "k: '{}'",
        'k: "{}"',
        "k: |-\n  {}",
        "k: >-\n  {}",
        "k: [{}]",
        "'{}': v",
        '"{}": v',
        "users:\n  '{}': v",
        'users:\n  "{}": v',
        "users:\n  {}: v",
    ]
)


@settings(max_examples=1500)
@given(
    st.lists(
        st.tuples(_STYLES, st.lists(_FRAGMENTS, min_size=1, max_size=6)), min_size=1, max_size=3
    )
)
def test_property_the_screen_never_misses_what_the_walk_finds(
    entries: list[tuple[str, list[str]]],
) -> None:
    lines = []
    for i, (style, fragments) in enumerate(entries):
        entry = style.format("".join(fragments).replace("\n", "\n  "))
        lines.append(
            entry.replace("k:", f"k{i}:", 1).replace("users:", f"users{i}:", 1) if i else entry
        )
    text = "\n".join(lines) + "\n"
    marked = parse_marked(text)
    if marked.problems or not isinstance(marked.value, dict):
        return  # not a document: nothing to screen
    found = set(characters._walk(marked.value))
    verdict = fast_yaml.scan(text.encode()).screen
    if verdict is Screen.CLEAN:
        assert found == set(), text
    elif verdict is Screen.EMAILS:
        assert found == set(characters._emails(marked.value)), text
