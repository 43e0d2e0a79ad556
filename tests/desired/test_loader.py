"""The strict loader: reading, the strict YAML rules, directories, locate(), and one verdict on
both paths: yaml_rs behind a pre-scan, and the marked reader laid over yaml_rs's value."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
import yaml_rs
from hypothesis import given, settings
from hypothesis import strategies as st

from userctl.desired import fast_yaml, schema, semantic
from userctl.desired.loader import check_desired, load_desired, locate
from userctl.desired.reader import MAX_FILE_BYTES, read_source
from userctl.desired.strict_yaml import AMBIGUOUS_BOOLEANS, SourceMap, lazy_marks, parse_marked
from userctl.errors import InputError, NotFound, Problem

FIXTURES = Path(__file__).parents[1] / "fixtures" / "loader"
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.yaml"))
VALID = [n for n in ALL_FIXTURES if n.startswith("valid_")]
INVALID = [n for n in ALL_FIXTURES if n.startswith("invalid_")]
DIRECTORIES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    # Problems name files as given: relative names keep the golden files short.
    monkeypatch.chdir(FIXTURES)


def problems_of(path: str | Path, **kwargs: object) -> list[str]:
    with pytest.raises(InputError) as exc:
        load_desired(path, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in exc.value.problems]


# --- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "   \n\n", "# only a comment\n  # another\n", "\n# c\r\n"])
def test_empty_files_are_refused(tmp_path: Path, content: str) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text(content, encoding="utf-8")
    (problem,) = problems_of(f)
    assert problem.startswith(f"{f}:1:1: (document): the file is empty")


def test_not_utf8_names_the_first_bad_byte(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes("version: 1\norganization: acme\nroles:\n  Opé: {}\n".encode("latin-1"))
    (problem,) = problems_of(f)
    assert problem == (
        f"{f}:4:5: (document): the file is not UTF-8: byte 0xe9 at line 4, column 5 cannot be "
        "decoded; save the file as UTF-8"
    )


def test_not_utf8_column_counts_characters_before_the_bad_byte(tmp_path: Path) -> None:
    f = tmp_path / "mixed.yaml"
    f.write_bytes("a: ñé".encode() + b"\xff\n")
    (problem,) = problems_of(f)
    assert ":1:6:" in problem and "byte 0xff at line 1, column 6" in problem


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    f = tmp_path / "huge.yaml"
    with open(f, "wb") as fh:  # sparse: costs no disk, and must not be read
        fh.truncate(MAX_FILE_BYTES + 1)
    (problem,) = problems_of(f)
    assert problem.startswith(f"{f}:1:1: (document): the file is 64.0 MiB, over the 64 MiB limit")


SEVERAL = "several YAML documents in one file: a file holds exactly one"


@pytest.mark.parametrize(
    "first",
    [
        "version: 1\nversion: 1\norganization: x-org\n",  # a duplicate key
        # anchor and alias
        "version: 1\norganization: x-org\nroles: {A: &a {permissions: []}, B: *a}\n",
        "%YAML 1.2\n---\nversion: yes\norganization: x-org\n",  # a directive, an ambiguous boolean
    ],
    ids=["duplicate key", "anchor and alias", "directive and boolean"],
)
@pytest.mark.parametrize("parser", ["auto", "precise"])
def test_several_documents_are_refused_before_anything_else(
    tmp_path: Path, first: str, parser: str
) -> None:
    f = tmp_path / "two.yaml"
    f.write_text(first + "---\nversion: 1\norganization: x-org\n")
    (problem,) = problems_of(f, parser=parser)
    assert problem.startswith(f"{f}:{first.count(chr(10)) + 1}:1: (document): {SEVERAL}")


@pytest.mark.parametrize(
    "content",
    [b"version: 1\nversion: 1\n\xff\n---\n", b"\n# nothing\n"],
    ids=["not utf-8", "empty"],
)
def test_unreadable_bytes_are_refused_before_anything_else(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "bad.yaml"
    f.write_bytes(content)
    (problem,) = problems_of(f)
    assert problem.startswith(f"{f}:") and ("not UTF-8" in problem or "is empty" in problem)


def test_an_oversize_file_is_refused_whatever_it_holds(tmp_path: Path) -> None:
    f = tmp_path / "huge.yaml"
    with open(f, "wb") as fh:
        fh.write(b"version: 1\nversion: 1\n\xff\n---\n")
        fh.truncate(MAX_FILE_BYTES + 1)
    (problem,) = problems_of(f)
    assert problem.startswith(f"{f}:1:1: (document): the file is 64.0 MiB")


def test_the_size_limit_is_64_mib() -> None:
    assert MAX_FILE_BYTES == 64 * 1024 * 1024


def test_a_bom_is_accepted_and_dropped() -> None:
    source = read_source("valid_bom.yaml")
    assert not source.text.startswith("\ufeff") and not source.data.startswith(b"\xef\xbb\xbf")
    assert load_desired("valid_bom.yaml").organization == "bom-org"


def test_a_missing_path_is_not_found() -> None:
    with pytest.raises(NotFound, match="nope.yaml: no such file or directory"):
        load_desired("nope.yaml")


# --- golden problems of every invalid fixture -----------------------------------------------------


@pytest.mark.parametrize("name", INVALID)
def test_invalid_fixture_reports_exactly_its_expected_problems(name: str) -> None:
    expected = (FIXTURES / name).with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    assert problems_of(name) == expected


@pytest.mark.parametrize("name", INVALID)
def test_every_problem_is_located(name: str) -> None:
    with pytest.raises(InputError) as exc:
        load_desired(name)
    for problem in exc.value.problems:
        assert problem.file == name and problem.line is not None and problem.col is not None


@pytest.mark.parametrize("name", VALID)
def test_valid_fixture_loads(name: str) -> None:
    desired = load_desired(name)
    assert desired.organization
    summary = check_desired(name)
    assert (summary.roles, summary.users) == (len(desired.roles), len(desired.users))


def test_the_design_example_loads_into_the_shared_types() -> None:
    desired = load_desired("valid_full.yaml")
    assert desired.organization == "acme-payments"
    assert sorted(desired.roles) == ["Auditor", "Payouts Operator", "SuperAdmin"]
    assert desired.roles["Payouts Operator"].description == ""
    assert desired.roles["Payouts Operator"].permissions == {
        "payouts.view",
        "payouts.create",
        "bank_accounts.view",
    }
    luis = desired.users["luis.gomez@acme.co"]  # emails are stored lower-case
    assert luis.email == "luis.gomez@acme.co"
    assert (luis.id_number, luis.phone, luis.status, luis.force_password_reset) == (
        "AB123456",
        "+14155550123",
        "active",
        True,
    )
    assert luis.bank_accounts == frozenset({"ops-main", "payroll-usd"})
    ana = desired.users["ana.perez@acme.co"]
    assert (ana.last_name, ana.two_factor, ana.force_password_reset) == ("Pérez", "required", False)
    assert desired.users["old.admin@acme.co"].bank_accounts == frozenset()
    assert desired.origins[("users", "luis.gomez@acme.co")] == "valid_full.yaml"
    assert desired.origins[("roles", "Auditor")] == "valid_full.yaml"


def test_quoted_lookalikes_stay_strings() -> None:
    desired = load_desired("valid_quoted_lookalikes.yaml")
    assert desired.organization == "on-line"
    assert set(desired.roles) == {"On", "No", "null"}
    assert (
        desired.roles["On"].description == "yes" and desired.roles["null"].description == "0123456"
    )
    no_one = desired.users["no.one@acme.co"]
    assert (no_one.first_name, no_one.last_name, no_one.id_number) == ("No", "Yes", "0123456")
    assert desired.users["y@acme.co"].bank_accounts == {"off", "n", "~"}


def test_defaults_apply_to_absent_fields() -> None:
    ana = load_desired("valid_block_scalars.yaml").users["maria@text.example"]
    assert (ana.status, ana.force_password_reset, ana.bank_accounts) == (
        "active",
        False,
        frozenset(),
    )
    roles = load_desired("valid_block_scalars.yaml").roles
    assert roles["Support"].description == "Answers customers; can view users, no changes."
    assert roles["Ops"].description == "Operates payouts every day"


# --- the two parsers agree -----------------------------------------------------------------------


def _outcome(path: str, parser: str) -> object:
    try:
        return load_desired(path, parser=parser)  # type: ignore[arg-type]
    except InputError as exc:
        return [str(p) for p in exc.problems]


@pytest.mark.parametrize("name", ALL_FIXTURES + DIRECTORIES)
def test_fast_and_precise_paths_agree(name: str) -> None:
    """Same verdict, same value when valid, same problems when not."""
    assert _outcome(name, "auto") == _outcome(name, "precise")


def _unguarded_verdict(path: str) -> bool:
    """What the fast parser alone (no pre-scan) would say: valid or not. The rules on the data
    (the schema, `${` in a string) run whatever the path."""
    source = read_source(path)
    read = fast_yaml.read(source.data)
    value = read.value if read.accepted and isinstance(read.value, dict) else None
    if value is None or not schema.is_valid(value):
        return False
    if "${" in repr(value):  # repr quotes neither `$` nor `{`: only a string holds them together
        return False
    return not semantic.check([(path, value)], lambda *a, **k: (1, 1))


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_the_prescan_flags_every_file_yaml_rs_alone_would_wrongly_accept(name: str) -> None:
    precise_ok = not isinstance(_outcome(name, "precise"), list)
    if _unguarded_verdict(name) and not precise_ok:
        assert fast_yaml.scan(read_source(name).data).suspect


HEADER = "version: 1\norganization: x-org\nroles:\n  Admin:\n    permissions: [users.view]\n"
USER = (
    "    first_name: Ana\n    last_name: Ruiz\n    id_type: CC\n"
    "    id_number: '1234'\n    phone: '+5730011122'\n"
)
# Files that yaml_rs, the schema and the semantic rules would all accept, and the strict rules
# refuse.
ONLY_THE_PRESCAN_CATCHES = {
    "alias": HEADER + "  Copy: &r\n    permissions: [users.view]\n  Clone: *r\n",
    "tag": HEADER.replace("[users.view]", "!!seq [users.view]"),
    "True": HEADER
    + "users:\n  a@b.co:\n"
    + USER
    + "    role: Admin\n    force_password_reset: True\n",
    "role named No": HEADER + "  No:\n    permissions: []\n",
    "yes as a name": HEADER
    + "users:\n  a@b.co:\n"
    + USER.replace("Ana", "yes")
    + "    role: Admin\n",
    "on as a bank account": HEADER
    + "users:\n  a@b.co:\n"
    + USER
    + "    role: Admin\n    bank_accounts: [on]\n",
    "control character": HEADER.replace("Admin", "Ad\x01min"),
    "line separator": HEADER.replace("Admin", "Ad\u2028min"),
    "merge key": HEADER + "  <<: {permissions: []}\n",
}


@pytest.mark.parametrize("name", sorted(ONLY_THE_PRESCAN_CATCHES))
def test_the_prescan_catches_what_yaml_rs_alone_would_accept(tmp_path: Path, name: str) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(ONLY_THE_PRESCAN_CATCHES[name], encoding="utf-8")
    assert _unguarded_verdict(str(f))  # without the pre-scan, the fast path would say valid
    assert isinstance(_outcome(str(f), "precise"), list)  # the strict rules refuse it
    assert fast_yaml.scan(f.read_bytes()).suspect
    assert _outcome(str(f), "auto") == _outcome(str(f), "precise")


def test_clean_files_take_the_fast_path() -> None:
    for name in (
        "valid_full.yaml",
        "valid_crlf.yaml",
        "valid_flow_style.yaml",
        "valid_quoted_lookalikes.yaml",
        "valid_suspicious_but_fine.yaml",
    ):
        assert not fast_yaml.scan(read_source(name).data).suspect, name


@pytest.mark.parametrize(
    "text",
    [
        "a: yes\n",
        "a: No # comment\n",
        "a:\n  ON\n",
        "a: [x, off]\n",
        "a: [\n  n]\n",
        "a: {b: Y}\n",
        "a:\n  - TRUE\n",
        "Yes: 1\n",
        "x: 1\nFalse: 2\n",
        "a: 1\r  y: 2\r",
        "a: {No: 1}\n",
        "a: x\nb:   True   \n",
        "- no\n",
    ],
)
def test_the_prescan_finds_plain_ambiguous_booleans_in_every_position(text: str) -> None:
    assert fast_yaml.scan(text.encode()).suspect


@pytest.mark.parametrize(
    "text",
    [
        "a: true\n",
        "a: false\n",
        "a: 'yes'\n",
        'a: "No"\n',
        "a: yesterday\n",
        "a: Nora\n",
        "a: on-call\n",
        "noon: 1\n",
        "a: [true, false]\n",
        "a: Yes please\n",
    ],
)
def test_the_prescan_lets_unambiguous_text_through(text: str) -> None:
    assert not fast_yaml.scan(text.encode()).suspect


def test_the_prescan_words_are_the_ambiguous_booleans() -> None:
    import re

    pattern = re.compile(fast_yaml._WORDS)
    assert all(pattern.fullmatch(w) for w in AMBIGUOUS_BOOLEANS)
    candidates = {
        w[:i] + c + w[i + 1 :]
        for w in AMBIGUOUS_BOOLEANS | {"true", "false"}
        for i in range(len(w))
        for c in (w[i].upper(), w[i].lower())
    }
    assert {w for w in candidates if pattern.fullmatch(w)} == set(AMBIGUOUS_BOOLEANS)


_PLAIN_WORDS = st.sampled_from(sorted(AMBIGUOUS_BOOLEANS))
_TEMPLATES = st.sampled_from(
    [
        "a: {w}\n",
        "a:   {w}  # c\n",
        "a:\n  {w}\n",
        "a: [x, {w}]\n",
        "a: [{w}]\n",
        "a:\n  - {w}\n",
        "{w}: 1\n",
        "b: 1\n{w}: 2\n",
        "a:\n  {w}:\n    b: 1\n",
        "a: {{x: {w}}}\n",
        "a: {{{w}: 1}}\n",
        "a: [\n  {w},\n  x]\n",
    ]
)


@given(word=_PLAIN_WORDS, template=_TEMPLATES)
def test_property_no_plain_ambiguous_boolean_escapes_the_prescan(word: str, template: str) -> None:
    text = template.format(w=word)
    refused = [
        p
        for p in parse_marked(text).problems
        if "ambiguous" in p.message or "keys must" in p.message
    ]
    assert refused, text  # the precise parser refuses it...
    assert fast_yaml.scan(text.encode()).suspect, text  # ...so the fast one must not run


_NODE_PROPERTIES = st.sampled_from(["&x", "*x", "!t", "!!str", "!<tag:x>", "? "])
_NODE_TEMPLATES = st.sampled_from(
    [
        "a: {p} b\n",
        "a:\n  {p} b\n",
        "a: [b, {p} c]\n",
        "a: [{p} c]\n",
        "- {p} b\n",
        "a:\n  - {p} b\n",
        "{p} a: b\n",
        "x: 1\n{p} a: b\n",
        "a: {{b: {p} c}}\n",
        "a: {{{p} b: c}}\n",
        "a:\n  b:  {p} c\n",
    ]
)


@given(prop=_NODE_PROPERTIES, template=_NODE_TEMPLATES)
def test_property_anchors_aliases_tags_where_a_node_starts_are_flagged(
    prop: str, template: str
) -> None:
    text = template.format(p=prop)
    assert fast_yaml.scan(text.encode()).suspect, text


@pytest.mark.parametrize(
    "text",
    [
        "a: R&D\n",
        "a: Ruiz & Co\n",
        "a: Admin!\n",
        "a: 100%\n",
        "a: sure?\n",
        "a: x<<y\n",
        "a: b\tc\n",
        "a: [R&D, x*y]\n",
        'a: "& quoted"\n',
    ],
)
def test_indicators_inside_scalars_are_not_suspicious(text: str) -> None:
    assert not fast_yaml.scan(text.encode()).suspect


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("organization: &o\n  acme\n", "anchors (&o) are not allowed"),
        ("organization: !!str\n  # a comment\n  acme\n", "tags (!!str) are not allowed"),
        ("organization: !!str\n  &o\n  acme\n", "tags (!!str) are not allowed"),
    ],
)
def test_a_property_on_a_line_of_its_own_is_refused_and_marks_its_node(
    text: str, said: str
) -> None:
    # The scalar it decorates starts on a later line: the property still counts, and the node's
    # place is the property's (where the value begins as written).
    marked = parse_marked(text)
    assert marked.value == {"organization": "acme"}
    assert [(p.line, p.col) for p in marked.problems][:1] == [(1, 15)]
    assert said in marked.problems[0].message
    assert marked.sourcemap.position(("organization",)) == (1, 15)


_NUMBERISH = st.text(alphabet="0123456789_+-.eExXoObBaAfFiInNlLuU~", min_size=1, max_size=8)


@settings(max_examples=1000)
@given(_NUMBERISH)
def test_property_the_marked_reader_quotes_a_number_as_written(text: str) -> None:
    """The marked reader keeps yaml_rs's value, and the text of a plain number or null as it was
    written, which messages quote ("write "0123" in quotes")."""
    try:
        parsed = yaml_rs.loads("a: " + text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError:
        return
    if not isinstance(parsed, dict) or "a" not in parsed:
        return
    marked = parse_marked("a: " + text)
    assert marked.value is parsed or repr(marked.value) == repr(parsed), text
    if not isinstance(parsed["a"], (str, bool)):
        assert marked.sourcemap.source_text(("a",)) == text, text


def test_an_alias_bomb_is_refused_without_being_expanded(tmp_path: Path) -> None:
    lines = [
        "version: 1",
        "organization: bomb-org",
        "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    ]
    lines += [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
    ]  # 9**10 leaves if expanded
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\n")
    found = problems_of(f)
    assert (
        sum("aliases (*a" in p for p in found) == 81
        and sum("anchors (&a" in p for p in found) == 10
    )


@pytest.mark.parametrize("depth", [3, 60, 64, 200, 300, 50_000])
def test_deep_nesting_is_refused_the_same_way_on_both_paths(tmp_path: Path, depth: int) -> None:
    f = tmp_path / "deep.yaml"
    f.write_text("version: 1\norganization: deep-org\nroles: " + "[" * depth + "]" * depth + "\n")
    auto, precise = _outcome(str(f), "auto"), _outcome(str(f), "precise")
    assert auto == precise
    assert isinstance(auto, list) and len(auto) == 1
    too_deep = (
        "nested more than 64 levels deep (the format needs 4); check the brackets and indentation"
    )
    if depth >= 64:  # found by the marked reader before yaml_rs runs, at the bracket too many
        assert auto[0] == f"{f}:3:71: roles[0][0][0]: {too_deep}"


# --- directories ---------------------------------------------------------------------------------


def test_a_directory_is_one_desired_state() -> None:
    desired = load_desired("dir_valid")
    assert desired.organization == "split-org"
    assert set(desired.roles) == {"Admin", "Operator"} and set(desired.users) == {
        "ana@split.example",
        "bob@split.example",
    }
    assert desired.origins[("roles", "Admin")] == os.path.join("dir_valid", "00-roles.yaml")
    assert desired.origins[("users", "bob@split.example")] == os.path.join(
        "dir_valid", "team-payouts.yaml"
    )


def test_conflicts_across_files_name_both_places() -> None:
    b = os.path.join("dir_conflicts", "b.yaml")
    a = os.path.join("dir_conflicts", "a.yaml")
    assert problems_of("dir_conflicts") == [
        f"{a}:21:31: users.zed@split.example.bank_accounts[1]: bank account 'ops-main' is "
        "listed twice (first at line 21)",
        f"{b}:2:15: organization: organization 'other-org' differs from 'split-org' declared at "
        f"{a}:2; the files of a directory must all declare the same organization",
        f"{b}:4:3: roles.Admin: role 'Admin' is declared twice (also at {a}:4)",
        f"{b}:7:3: users.ANA@split.example: 'ANA@split.example' and 'ana@split.example' (at {a}:7) "
        "are the same user: emails are compared case-insensitively",
        f"{b}:14:3: users.ana@split.example: user 'ana@split.example' "
        f"is declared twice (also at {a}:7)",
        f"{b}:25:16: users.carl@split.example.id_number: id_type CC with "
        f"id_number 12345678 is already used by 'ana@split.example' (at {a}:11); "
        "an identity document belongs to one user",
    ]


def test_every_file_of_a_directory_is_checked_and_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "version: 1\norganization: x-org\nroles:\n  R: {permissions: [nope]}\n"
    )
    (tmp_path / "b.yaml").write_text(
        "version: 1\norganization: x-org\nusers:\n  a@b.co: {role: yes}\n"
    )
    (tmp_path / "c.yaml").write_text("")
    found = problems_of(tmp_path)
    assert [p.split(": ")[0] + ": " + p.split(": ")[1] for p in found] == [
        f"{tmp_path}/a.yaml:4:21: roles.R.permissions[0]",
        *[f"{tmp_path}/b.yaml:4:3: users.a@b.co"] * 5,  # missing fields
        f"{tmp_path}/b.yaml:4:18: users.a@b.co.role",  # ambiguous; not also "unknown role 'yes'"
        f"{tmp_path}/c.yaml:1:1: (document)",
    ]


def test_a_directory_with_yml_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\norganization: x-org\n")
    (tmp_path / "team.yml").write_text("version: 1\norganization: x-org\n")
    assert problems_of(tmp_path) == [
        f"{tmp_path}/team.yml:1:1: (document): only *.yaml files are loaded from a directory: "
        "rename it to .yaml if it declares roles or users, or move it out of the directory"
    ]


def test_a_directory_without_yaml_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".hidden.yaml").write_text("version: 1\norganization: x-org\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yaml").write_text("version: 1\norganization: x-org\n")
    # A directory has no line to point at: it is named alone.
    assert problems_of(tmp_path) == [f"{tmp_path}: (document): the directory holds no *.yaml file"]


ROLES_FILE = "version: 1\norganization: x-org\nroles:\n  Admin:\n    permissions: [users.view]\n"


def test_a_subdirectory_named_yaml_is_reported_not_skipped(tmp_path: Path) -> None:
    """Skipping it would leave its users out of the desired state: apply would delete them."""
    (tmp_path / "a.yaml").write_text(ROLES_FILE)
    (tmp_path / "team.yaml").mkdir()
    (tmp_path / "team.yaml" / "users.yaml").write_text(ROLES_FILE)
    assert problems_of(tmp_path) == [
        f"{tmp_path}/team.yaml:1:1: (document): this is a directory, not a file: only the "
        "*.yaml files directly in the directory given are read; rename it so that its name "
        "does not end in .yaml, or move it out"
    ]


def test_a_broken_link_named_yaml_is_reported_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ROLES_FILE)
    (tmp_path / "team.yaml").symlink_to(tmp_path / "gone.yaml")
    assert problems_of(tmp_path) == [
        f"{tmp_path}/team.yaml:1:1: (document): this is a broken link: it points to "
        f"{tmp_path}/gone.yaml, which does not exist; fix the link or remove it"
    ]


USERS_FILE = (
    "version: 1\norganization: x-org\nusers:\n  ana@x.co:\n    first_name: Ana\n"
    "    last_name: Ruiz\n    id_type: CC\n    id_number: '1234'\n"
    "    phone: '+5730011122'\n    role: Admin\n"
)


@pytest.mark.parametrize(
    "broken,expected",
    [
        (ROLES_FILE + "  Ops: [\n", ":6:8: (document): YAML syntax error"),
        (ROLES_FILE + "---\n", ":6:1: (document): several YAML documents"),
        ("", ":1:1: (document): the file is empty"),
        (b"roles: \xff\n", ":1:8: (document): the file is not UTF-8"),
    ],
    ids=["syntax", "several documents", "empty", "not utf-8"],
)
def test_a_file_that_fails_to_parse_causes_no_false_alarms_in_the_others(
    tmp_path: Path, broken: str | bytes, expected: str
) -> None:
    """The roles users refer to may be declared in the broken file: only its own problem is true."""
    a = tmp_path / "a.yaml"
    a.write_bytes(broken if isinstance(broken, bytes) else broken.encode())
    (tmp_path / "b.yaml").write_text(USERS_FILE)
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{a}{expected}")


def test_a_broken_entry_causes_no_false_alarms_in_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to(tmp_path / "gone.yaml")
    (tmp_path / "b.yaml").write_text(USERS_FILE)
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{tmp_path}/a.yaml:1:1: (document): this is a broken link")


def test_a_broken_file_still_lets_per_file_and_duplicate_problems_through(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ROLES_FILE + "  Ops: [\n")
    (tmp_path / "b.yaml").write_text(
        USERS_FILE.replace("'1234'", "1234") + USERS_FILE.split("users:\n")[1]
    )
    assert [p.split(": ", 2)[:2] for p in problems_of(tmp_path)] == [
        [f"{tmp_path}/a.yaml:6:8", "(document)"],  # the syntax error: the bracket left open
        [f"{tmp_path}/b.yaml:8:16", "users.ana@x.co.id_number"],  # a number where a string belongs
        [f"{tmp_path}/b.yaml:11:3", "users.ana@x.co"],  # declared twice: true whatever a.yaml holds
    ]


def test_with_every_file_parsed_an_unknown_role_is_still_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ROLES_FILE.replace("Admin", "Viewer"))
    (tmp_path / "b.yaml").write_text(USERS_FILE)
    (problem,) = problems_of(tmp_path)
    assert (
        problem == f"{tmp_path}/b.yaml:10:11: users.ana@x.co.role: unknown role "
        "'Admin'; declared roles: Viewer"
    )


def test_a_link_to_a_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "roles.yaml").write_text(ROLES_FILE)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "roles.yaml").symlink_to(tmp_path / "elsewhere" / "roles.yaml")
    assert set(load_desired(tmp_path / "d").roles) == {"Admin"}


def test_a_pipe_named_yaml_in_a_directory_is_reported_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ROLES_FILE)
    os.mkfifo(tmp_path / "team.yaml")  # opening it would wait for a writer forever
    assert problems_of(tmp_path) == [
        f"{tmp_path}/team.yaml:1:1: (document): this is not a regular file (a pipe, socket or "
        "device); a directory's *.yaml entries must be files"
    ]


def test_a_broken_link_given_directly_is_one_clear_problem(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").symlink_to("nowhere.yaml")
    assert problems_of(tmp_path / "users.yaml") == [
        f"{tmp_path}/users.yaml:1:1: (document): this is a broken link: it points to nowhere.yaml, "
        "which does not exist; fix the link or remove it"
    ]


def test_an_unreadable_file_is_located_at_its_start(tmp_path: Path) -> None:
    f = tmp_path / "secret.yaml"
    f.write_text(ROLES_FILE)
    f.chmod(0)
    if os.geteuid() == 0:  # root reads whatever the mode: this file fails its read instead
        f, reason = Path("/proc/self/mem"), "Input/output error"
    else:
        reason = "Permission denied"
    assert problems_of(f) == [f"{f}:1:1: (document): cannot read the file: {reason}"]


def test_dev_null_is_an_empty_file_not_a_missing_one() -> None:
    (problem,) = problems_of("/dev/null")
    assert problem.startswith("/dev/null:1:1: (document): the file is empty")


# --- locate --------------------------------------------------------------------------------------


def test_locate_places_problems_found_later() -> None:
    desired = load_desired("valid_full.yaml")
    found = locate(
        [
            Problem("no such bank account", ("users", "luis.gomez@acme.co", "bank_accounts", 1)),
            Problem("cannot change", ("users", "ana.perez@acme.co", "phone")),
            Problem("still held", ("roles", "Auditor")),
            Problem("the live state is another organization", ("organization",)),
            Problem("not from a file", ("options",)),
        ],
        desired,
    )
    assert [str(p) for p in found] == [
        "options: not from a file",
        "valid_full.yaml:4:15: organization: the live state is another organization",
        "valid_full.yaml:14:3: roles.Auditor: still held",
        "valid_full.yaml:23:12: users.ana.perez@acme.co.phone: cannot change",
        "valid_full.yaml:40:9: users.luis.gomez@acme.co.bank_accounts[1]: no such bank account",
    ]


def test_locate_in_a_directory_uses_the_declaring_file() -> None:
    desired = load_desired("dir_valid")
    (problem,) = locate(
        [Problem("unknown bank account", ("users", "bob@split.example", "bank_accounts", 0))],
        desired,
    )
    assert str(problem) == (
        f"{os.path.join('dir_valid', 'team-payouts.yaml')}:11:21: "
        "users.bob@split.example.bank_accounts[0]: unknown bank account"
    )


# --- odds and ends -------------------------------------------------------------------------------


def test_gc_state_is_restored_after_a_load(tmp_path: Path) -> None:
    assert gc.isenabled()
    load_desired("valid_full.yaml")
    assert gc.isenabled()
    with pytest.raises(InputError):
        load_desired("invalid_semantic.yaml")
    assert gc.isenabled()


def test_a_big_generated_organization_loads_identically_on_both_paths(tmp_path: Path) -> None:
    from bench.gen_org import generate

    f = tmp_path / "org.yaml"
    f.write_text(generate(300, seed=7), encoding="utf-8")
    assert not fast_yaml.scan(f.read_bytes()).suspect  # it exercises the fast path
    fast, precise = load_desired(f), load_desired(f, parser="precise")
    assert fast == precise and len(fast.users) == 300


# --- marks found when first asked ----------------------------------------------------------------


def _all_paths(node: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    paths = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            paths += _all_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            paths += _all_paths(v, prefix + (i,))
    return paths


def _lazy_and_whole(text: str) -> tuple[SourceMap, SourceMap]:
    value = fast_yaml.read(text.encode()).value
    assert isinstance(value, dict)
    return lazy_marks(lambda: text, value), parse_marked(text).sourcemap


@pytest.mark.parametrize(
    "name", VALID + ["invalid_numbers.yaml", "invalid_schema.yaml", "invalid_semantic.yaml"]
)
def test_lazy_marks_are_the_whole_documents_marks(name: str) -> None:
    text = read_source(name).text
    lazy, whole = _lazy_and_whole(text)
    for path in _all_paths(lazy.root):
        for key in (False, True):
            assert lazy.position(path, key=key) == whole.position(path, key=key), (path, key)
        assert lazy.source_text(path) == whole.source_text(path), path


def test_a_block_style_file_is_marked_entry_by_entry(tmp_path: Path) -> None:
    from bench.gen_org import generate

    text = generate(200, seed=3).replace(
        "  user000150@bench.example.com:", "  # a comment line\n\n  user000150@bench.example.com:"
    )
    lazy, whole = _lazy_and_whole(text)
    paths = [
        ("users", "user000150@bench.example.com", "phone"),
        ("users", "user000199@bench.example.com"),
        ("roles", "Viewer", "permissions", 1),
        ("organization",),
        ("version",),
        (),
    ]
    for path in paths:
        assert lazy.position(path) == whole.position(path), path
        assert lazy.position(path, key=True) == whole.position(path, key=True), path
    # Only the entries a path entered were read: not the 199 other users.
    assert len(lazy.pending) >= 199 + 5 and len(lazy.marks) < 10
