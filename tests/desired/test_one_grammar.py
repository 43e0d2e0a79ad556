"""One grammar (issue 22): a file's verdict, values and problem locations never depend on which
parser read it, nor on text that does not change its data (a comment that sends the file to the
marked parser). Each case here was a way around the rules, or a wrong value, on one of the paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from userctl.desired import fast_yaml
from userctl.desired.loader import load_desired
from userctl.errors import InputError

HEADER = (
    "version: 1\norganization: x-org\nroles:\n  Admin:\n    permissions: [users.view]\nusers:\n"
)
FIELDS = (
    '{{first_name: {first}, last_name: Ruiz, id_type: CC, id_number: "1234", '
    'phone: "+5730011122", role: Admin{extra}}}'
)
# A comment that reads like an alias: it once sent the file to the marked parser (no longer: see
# test_a_comment_never_costs_a_valid_file_the_marked_reading); the precise path reads it anyway.
ROUTING_COMMENT = "# owner: *team*"


def user_file(first: str = "Ana", extra: str = "") -> str:
    return HEADER + "  a@b.co: " + FIELDS.format(first=first, extra=extra) + "\n"


def outcome(tmp_path: Path, text: str, parser: str = "auto") -> object:
    f = tmp_path / "x.yaml"
    f.write_text(text, encoding="utf-8")
    try:
        return load_desired(f, parser=parser)  # type: ignore[arg-type]
    except InputError as exc:
        return [str(p).removeprefix(f"{f}:") for p in exc.problems]


def every_way(tmp_path: Path, text: str) -> list[object]:
    """The outcome of `text` on both paths, with and without a comment that routes it (on a line
    of its own at the end, or after a value: no line moves)."""
    commented = text.replace("organization: x-org\n", f"organization: x-org  {ROUTING_COMMENT}\n")
    assert commented != text
    return [
        outcome(tmp_path, variant, parser)
        for variant in (text, commented, text + ROUTING_COMMENT + "\n")
        for parser in ("auto", "precise")
    ]


def assert_one_verdict(tmp_path: Path, text: str) -> object:
    first, *others = every_way(tmp_path, text)
    assert all(other == first for other in others), [first, *others]
    return first


# What each of these is: invalid YAML, a strict rule stepped around, or a key YAML reads otherwise.
REFUSED = {
    "ambiguous boolean, no space after ':'": user_file(first="No").replace(
        "{first_name: No", '{"first_name":No'
    ),
    "True, no space after ':'": user_file(extra=', "force_password_reset":True'),
    "a block indicator where flow forbids it": user_file(first=">Bob"),
    "a '?' key in flow": user_file().replace("{first_name: Ana", "{ ?first_name: Ana"),
    "a comment without a space after a quoted scalar": HEADER
    + '  a@b.co:\n    first_name: "Bob"#c\n    last_name: Ruiz\n    id_type: CC\n'
    + '    id_number: "1234"\n    phone: "+5730011122"\n    role: Admin\n',
    "${ through a double-quoted escape": user_file(first='"\\x24{HOME}"'),
    "${ in single quotes": user_file(first="'${HOME}'"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_on_every_path_whatever_the_comments(tmp_path: Path, name: str) -> None:
    problems = assert_one_verdict(tmp_path, REFUSED[name])
    assert isinstance(problems, list) and problems, problems
    line = 1 + next(i for i, text in enumerate(REFUSED[name].splitlines()) if "a@b.co" in text)
    if "#c" in REFUSED[name]:
        line += 1  # the first name's own line
    assert all(p.split(":")[0] == str(line) for p in problems), problems


def test_the_boolean_rule_is_on_plain_scalars_only(tmp_path: Path) -> None:
    text = user_file(first='"No"', extra=", force_password_reset: true").replace(
        "last_name: Ruiz", "last_name: 'True'"
    )
    state = assert_one_verdict(tmp_path, text)
    assert not isinstance(state, list), state
    user = state.users["a@b.co"]  # type: ignore[attr-defined]
    assert (user.first_name, user.last_name, user.force_password_reset) == ("No", "True", True)


def test_the_dollar_rule_names_the_value(tmp_path: Path) -> None:
    (problem,) = assert_one_verdict(tmp_path, REFUSED["${ through a double-quoted escape"])  # type: ignore[misc]
    assert "${...} substitution is not supported" in problem


def test_valid_yaml_libyaml_could_not_read_is_read_as_the_spec_says(tmp_path: Path) -> None:
    # Each was refused while libyaml gave the marks: a flow key whose ':' is on the next line, a
    # surrogate-pair escape, '?x' in a flow list (libyaml read a mapping), a tab as separation.
    for text, field, expected in (
        (user_file().replace("{first_name: Ana", '{"first_name"\n    : Ana'), "first_name", "Ana"),
        (user_file(first='"Ana \\ud83d\\ude00"'), "first_name", "Ana \U0001f600"),
        (user_file(extra=", bank_accounts: [?x]"), "bank_accounts", frozenset({"?x"})),
        (user_file().replace("a@b.co: {", "a@b.co:\t{"), "first_name", "Ana"),
    ):
        state = assert_one_verdict(tmp_path, text)
        assert getattr(state.users["a@b.co"], field) == expected, state  # type: ignore[attr-defined]


# --- block scalars ---------------------------------------------------------------------------


def block(style: str, more: str = "") -> str:
    return (
        HEADER.replace(
            "  Admin:\n", f"  Admin:\n    description: {style}\n      Reads users\n{more}"
        )
        + "  a@b.co: "
        + FIELDS.format(first="Ana", extra="")
        + "\n"
    )


@pytest.mark.parametrize("style", ["|", ">", "|+", ">+"])
def test_a_final_line_break_of_a_block_scalar_says_how_to_write_it(
    tmp_path: Path, style: str
) -> None:
    (problem,) = assert_one_verdict(tmp_path, block(style))  # type: ignore[misc]
    assert problem.startswith("5:18:"), problem
    assert "write |- or >- " in problem, problem


@pytest.mark.parametrize("style", ["|-", ">-"])
def test_a_stripped_block_scalar_is_one_line(tmp_path: Path, style: str) -> None:
    state = assert_one_verdict(tmp_path, block(style))
    assert state.roles["Admin"].description == "Reads users"  # type: ignore[attr-defined]


def test_a_line_break_inside_a_value_stays_refused(tmp_path: Path) -> None:
    (problem,) = assert_one_verdict(  # type: ignore[misc]
        tmp_path, block("|-", "      and roles\n")
    )
    assert problem.startswith("5:18:") and "line feed" in problem.lower(), problem
    assert "|-" not in problem  # no advice that would not help


# --- locations -------------------------------------------------------------------------------


def test_a_schema_error_deep_in_a_routed_file_is_at_its_own_place(tmp_path: Path) -> None:
    users = "".join(
        f"  u{i}@b.co: " + FIELDS.format(first="Ana", extra="").replace("1234", f"{i}000") + "\n"
        for i in range(10)
    )
    bad = "  bad@b.co: " + FIELDS.format(first="Ana", extra=", colour: blue") + "\n"
    text = HEADER + users + bad
    plain = assert_one_verdict(tmp_path, text)
    assert isinstance(plain, list) and len(plain) == 1 and plain[0].startswith("17:"), plain
    for feature in ('"\\x24{HOME}"', "'No'", "No", "&a Ana"):
        routed = text.replace("u3@b.co: {first_name: Ana", f"u3@b.co: {{first_name: {feature}")
        problems = assert_one_verdict(tmp_path, routed)
        assert isinstance(problems, list)
        assert any(p.startswith("17:") and "colour" in p for p in problems), problems
        assert all(p.split(":")[0] in ("10", "17") for p in problems), problems


def test_a_repeated_key_before_a_syntax_error_is_a_syntax_error(tmp_path: Path) -> None:
    # yaml_rs stops at the repeated key first; read again, it stops at the bracket left open.
    (problem,) = assert_one_verdict(tmp_path, HEADER + "  Admin: {}\n  Ops: [\n")  # type: ignore[misc]
    assert problem.startswith("8:8: (document): YAML syntax error"), problem


def test_every_repeated_key_is_found_with_the_line_of_the_first(tmp_path: Path) -> None:
    text = user_file().replace("{first_name: Ana,", "{first_name: Ana, 'first_name': Eva,")
    problems = assert_one_verdict(tmp_path, text + "organization: y-org\n")
    assert problems == [
        "7:29: users.a@b.co.first_name: duplicate key 'first_name' (first defined at line 7)",
        "8:1: organization: duplicate key 'organization' (first defined at line 2)",
    ], problems


@pytest.mark.parametrize(
    "comment", [ROUTING_COMMENT, "# reviewed: yes", "#: &x", "# a: > b", "# - !!str", "# ? key"]
)
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_comment_never_costs_a_valid_file_the_marked_reading(comment: str, newline: str) -> None:
    """A comment changes no data, so a valid file holding one is read by the fast path alone, and
    its strings need no walk: at 100k users the marked reading costs about six times the load."""
    text = user_file() + f"  {comment}\n{comment}\n" + "# x\n" + f"x: 1  {comment}\n"
    data = text.replace("\n", newline).encode()
    assert not fast_yaml.scan(data).suspect
    # (A file breaking lines with a lone CR has its strings walked for that alone.)
    assert fast_yaml.scan(data).screen is fast_yaml.Screen.CLEAN or newline == "\r"
    # What the scan still sees: the same text, not in a comment.
    assert fast_yaml.scan(data.replace(b"#", b"z:")).suspect


def test_what_the_scan_still_sees_past_a_hash() -> None:
    # A '#' inside a quoted scalar that opened on an earlier line: the alias after the quote
    # closes is real (yaml_rs expands it), and the scan must still send the file to be refused.
    assert fast_yaml.scan(b'{d: &c 1, a: "x\n # y: *z", b: *c}\n').suspect
    # A line longer than the scan looks into is judged by the marked reader, comment or not.
    assert fast_yaml.scan(b"a: 1\n#" + b" x" * 600 + b": *y\n").suspect
    assert not fast_yaml.scan(b"a: 1\n#" + b" x" * 60 + b": *y\n").suspect
