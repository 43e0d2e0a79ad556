"""Loading a desired state: a file, or a directory whose *.yaml files form one desired state.

Per file: read (size, UTF-8, not empty), then parse: yaml_rs decides what the text means
(fast_yaml). When a scan of the bytes vouches that nothing in the file concerns how YAML is
written, only marks are missing: the schema runs on the value directly, and the few marks a
problem needs are found around it (strict_yaml.lazy_marks). Any other file is read with marks,
applying the strict rules (strict_yaml). Either way the characters of every string are checked
(characters), then the semantic rules run across all files, and every problem found anywhere is
raised at once, sorted by FILE:LINE:COL.

A directory: every `*.yaml` file in it (not hidden, not in subdirectories), in name order. Each
file carries `version` and `organization` (the same in all), and any of `roles` and `users`.
A `*.yml` file there is refused rather than silently skipped, and so is a `*.yaml` entry that
cannot be read as a file (a subdirectory, a broken link): the desired state is the whole truth,
so a user in an ignored file would be deleted at apply. When any file could not be read or
parsed, references to roles are not checked (its roles are unknown), so that the only problems
reported are true ones.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from userctl import policies
from userctl.desired import characters, fast_yaml, reader, schema, semantic
from userctl.desired.reader import DIRECTORY, Source, at_start, broken_link, read_source
from userctl.desired.strict_yaml import (
    MAX_DEPTH,
    MarkedDocument,
    Marks,
    lazy_marks,
    nesting_depth,
    parse_marked,
)
from userctl.errors import InputError, NotFound, Path, Problem
from userctl.gcpause import gc_paused
from userctl.state import (
    KEYED_POLICY_RULES,
    POLICY_RULES,
    DesiredState,
    LiveState,
    Organization,
    PolicyKey,
    PolicyValue,
    Role,
)

Parser = Literal["auto", "precise"]
_MISNAMED = (
    "only *.yaml files are loaded from a directory: rename it to .yaml if it declares roles or "
    "users, or move it out of the directory"
)
_NOT_REGULAR = (
    "this is not a regular file (a pipe, socket or device); a "
    "directory's *.yaml entries must be files"
)


@dataclass
class _Document:
    source: Source
    value: dict[str, Any] | None
    marks: Marks
    tainted: set[Path] = field(default_factory=set)  # paths a strict-rule problem already covers
    refused: set[Path] = field(default_factory=set)  # strings refused for their characters
    problems: list[Problem] = field(default_factory=list)

    def is_tainted(self, path: Path) -> bool:
        """Whether a later problem at `path` would repeat one already reported: a strict rule
        broken there or above, or a string refused for its characters (any other message about
        it would quote the very characters that mislead)."""
        if path in self.refused:
            return True
        return bool(self.tainted) and any(path[:i] in self.tainted for i in range(len(path) + 1))


@dataclass(frozen=True, slots=True)
class Summary:
    """What `check_desired` found valid."""

    files: tuple[str, ...]
    organization: str
    roles: int
    users: int


# At most one prefetched file per thread (tests run commands on several threads at once): its
# Source (its file named as given) and the fast parse of its bytes, under way.
_prefetch = threading.local()


@contextmanager
def prefetching(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, load_desired(path) finds the file already read and its fast parse under
    way on another thread. `userctl plan` opens the block before it imports the database layer:
    yaml_rs parses mostly without the GIL, and that import (SQLAlchemy) mostly reads files, so
    the two overlap on two cores (bench/ measures the gain). Nothing else changes: only a
    regular file is prefetched (a pipe can be read only once; a directory is read by
    load_desired as always), and a file that cannot be read is not, so that load_desired reads
    it itself and reports exactly what it always reports.

    The collector stays paused for the whole block (see fast_yaml.BackgroundParse)."""
    previous = getattr(_prefetch, "entry", None)
    with gc_paused():
        _prefetch.entry = None
        with suppress(OSError, InputError):  # load_desired reads it again, and says why
            if stat.S_ISREG(os.stat(path).st_mode):
                source = read_source(path)
                _prefetch.entry = (source, fast_yaml.BackgroundParse(source.data))
        try:
            yield
        finally:
            _prefetch.entry = previous


def _read_source(file: str) -> tuple[Source, fast_yaml.BackgroundParse | None]:
    """The checked content of `file`, and the fast parse of it under way if it was prefetched."""
    entry: tuple[Source, fast_yaml.BackgroundParse] | None = getattr(_prefetch, "entry", None)
    if entry is None or entry[0].file != file:
        return read_source(file), None
    _prefetch.entry = None  # used once: a second load in the block reads the file again
    return entry


def load_desired(path: str | os.PathLike[str], *, parser: Parser = "auto") -> DesiredState:
    """The desired state declared in `path` (a file or a directory of *.yaml files).

    Raises InputError with every problem found, each located FILE:LINE:COL. `parser="precise"`
    skips the fast parser (the tests compare the two)."""
    # Loading allocates millions of objects that all survive: cyclic collections meanwhile are
    # pure cost.
    with gc_paused():
        typed = semantic.TypedUsers()
        return _build(_load_documents(path, parser, typed), typed)


def check_desired(path: str | os.PathLike[str], *, parser: Parser = "auto") -> Summary:
    """The same checks as load_desired without building the typed state (`userctl validate`:
    building 100,000 frozen User objects would cost a fifth of its time budget)."""
    with gc_paused():  # as in load_desired
        documents = _load_documents(path, parser)
        found = _policy_problems(documents)
        if found:
            raise InputError(found)
        values = [d.value for d in documents if d.value is not None]
        return Summary(
            files=tuple(d.source.file for d in documents),
            organization=values[0]["organization"],
            roles=len({name for v in values for name in v.get("roles", {})}),
            users=sum(len(v.get("users", {})) for v in values),
        )


def text_problems(text: str, file: str) -> list[Problem]:
    """Every problem `userctl validate` would report for a file named `file` holding `text`, in
    FILE:LINE:COL order (none: the file is valid). For a text userctl writes itself (`export`),
    which must never write a file that this loader refuses: the rules exist once, here."""
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate: "not UTF-8", located
    if len(data) > reader.MAX_FILE_BYTES:  # the reader's own message, not a copy
        return [
            reader.too_big(file, "file", reader.MAX_FILE_BYTES, reader.DESIRED_ADVICE, len(data))
        ]
    with gc_paused():  # as in load_desired
        try:
            source = Source(file, data)
        except InputError as exc:
            return list(exc.problems)
        document = _parse(source, "auto")
        documents = [document] if document.value is not None else []
        problems = document.problems + _semantic_problems(documents, complete=bool(documents))
        return sorted(problems or _policy_problems(documents), key=_place)


def _load_documents(
    path: str | os.PathLike[str], parser: Parser, typed: semantic.TypedUsers | None = None
) -> list[_Document]:
    """`typed`: filled with the typed users when every file is valid (see TypedUsers)."""
    files, problems = desired_files(path)
    listed = not problems  # every entry of a directory could be read as a file
    documents: list[_Document] = []
    for file in files:
        try:
            source, started = _read_source(file)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        document = _parse(source, parser, started)
        problems.extend(document.problems)
        if document.value is not None:
            documents.append(document)
    complete = listed and len(documents) == len(files)  # every file was read and parsed
    # The users are built only for documents the schema passed (as their build assumes).
    problems.extend(
        _semantic_problems(documents, complete=complete, typed=None if problems else typed)
    )
    if problems:
        raise InputError(sorted(problems, key=_place))
    return documents


def _policy_problems(documents: list[_Document]) -> list[Problem]:
    """The policy violations a valid desired state decides alone, judged on the state it declares
    (the plan judges them again on the state it leaves, with what only the database knows: users
    kept by --no-prune, expiries that have passed, the reason). Each at its FILE:LINE:COL."""
    if not any(d.value is not None and "policies" in d.value for d in documents):
        return []  # most files: no typed state is built for nothing
    typed = semantic.TypedUsers()
    _semantic_problems(documents, complete=True, typed=typed)  # valid: no problem found again
    desired = _build(documents, typed)
    state = LiveState(
        Organization(desired.organization, desired.organization),
        desired.roles,
        desired.users,
        {},
        desired.policies,
    )
    violations = [Problem(v.message, v.path) for v in policies.check(state)]
    return locate(violations, desired, {d.source.file: d.marks for d in documents})


def locate(
    problems: Sequence[Problem], desired: DesiredState, marks: dict[str, Marks] | None = None
) -> list[Problem]:
    """Fill in FILE:LINE:COL for problems found after loading (by the planner), which carry
    only a path such as ("users", email, "phone") or ("roles", name). `marks`: the files' marks
    when the caller has them already."""
    files = sorted(set(desired.origins.values()))
    maps: dict[str, Marks | None] = dict(marks or {})
    located: list[Problem] = []
    for problem in problems:
        file = problem.file or _declaring_file(problem.path, desired, files)
        if file is None or problem.line is not None:
            located.append(problem if file is None else replace(problem, file=file))
            continue
        if file not in maps:
            maps[file] = _marks_of(file)
        sourcemap = maps[file]
        if sourcemap is None:
            located.append(replace(problem, file=file))
            continue
        line, col = sourcemap.position(problem.path, key=len(problem.path) == 2)
        located.append(replace(problem, file=file, line=line, col=col))
    return sorted(located, key=_place)


def desired_files(path: str | os.PathLike[str]) -> tuple[list[str], list[Problem]]:
    """The files making up the desired state, named as messages will show them, and a problem
    for each entry of a directory that names itself part of it but cannot be read as a file.
    Such an entry is never skipped: its users would be missing from the desired state, and
    deleted at apply."""
    shown = os.fspath(path)
    if not os.path.isdir(shown):
        if os.path.lexists(shown):
            # A regular file, or whatever reads like one: a pipe (`-f <(git show HEAD:users.yaml)`),
            # /dev/null (then empty); read_source names a broken link.
            return [shown], []
        raise NotFound(f"{shown}: no such file or directory")
    files: list[str] = []
    problems: list[Problem] = []
    for name in sorted(os.listdir(shown)):
        if name.startswith(".") or not name.endswith((".yaml", ".yml")):
            continue
        entry = os.path.join(shown, name)
        if os.path.isdir(entry):
            if name.endswith(".yaml"):
                problems.append(at_start(entry, DIRECTORY))
        elif name.endswith(".yml"):
            problems.append(at_start(entry, _MISNAMED))
        elif not os.path.exists(entry):
            problems.append(at_start(entry, broken_link(entry)))
        elif not os.path.isfile(entry):  # not opened: a pipe would wait for a writer
            problems.append(at_start(entry, _NOT_REGULAR))
        else:
            files.append(entry)
    if not files and not problems:
        # A directory has no line to point at: FILE alone names it.
        raise InputError([Problem("the directory holds no *.yaml file", file=shown)])
    return files, problems


def _parse(
    source: Source, parser: Parser, started: fast_yaml.BackgroundParse | None = None
) -> _Document:
    """The document in `source` with its problems: the strict rules', its strings' characters',
    and the schema's but where one of the others already speaks."""
    fast = fast_yaml.parse_fast(source.data, started)
    marked, found = _read(source, parser, fast)
    document = _Document(source, marked.value, marked.sourcemap, marked.tainted)
    strict = marked.problems
    if document.value is not None:
        refused = characters.check(document.value, fast.screen, document.marks)
        document.refused = {p.path for p in refused}
        strict = strict + refused
    kept = [p for p in found if not document.is_tainted(p.path)]
    document.problems = [replace(p, file=source.file) for p in strict + kept]
    return document


def _read(
    source: Source, parser: Parser, fast: fast_yaml.Read, *, mapping: bool = True
) -> tuple[MarkedDocument, list[Problem]]:
    """yaml_rs's value (`fast`) with its marks, and the schema's problems. When the scan vouches
    for the file, only marks are missing: the schema runs on the value directly, and marks are
    found around each problem (lazy_marks). Otherwise, or when the schema cannot judge the value
    (a key that is not a string) or it nests too deep, the marked reader reads it with the strict
    rules and names what is wrong (`parser="precise"` always reads it so)."""
    if parser == "auto" and fast.trusted:
        marks = lazy_marks(lambda: source.text, fast.value)
        try:
            found = schema.check(fast.value, marks)
        except schema.UNCHECKABLE:
            pass
        else:
            if not found or nesting_depth(fast.value) <= MAX_DEPTH:
                return MarkedDocument(fast.value, marks), found
    marked = parse_marked(source.text, mapping=mapping, read=fast)
    if not mapping or marked.value is None:
        return marked, []
    return marked, schema.check(marked.value, marked.sourcemap)


def read_yaml(text: str, file: str, parser: Parser = "auto") -> tuple[Any, list[Problem]]:
    """What the loader makes of a YAML text before its schema: the root value (of any type), and
    every problem of YAML itself and of the format's rules on YAML (strict rules, characters).
    The conformance test holds it to the YAML test suite."""
    try:
        source = Source(file, text.encode("utf-8"))
    except InputError as exc:
        return None, list(exc.problems)
    fast = fast_yaml.parse_fast(source.data)
    marked, _ = _read(source, parser, fast, mapping=False)
    value, problems = marked.value, marked.problems
    if isinstance(value, dict) and not problems:
        problems = characters.check(value, fast.screen, marked.sourcemap)
    return value, problems


def _semantic_problems(
    documents: list[_Document], *, complete: bool, typed: semantic.TypedUsers | None = None
) -> list[Problem]:
    """`complete` is false when some file of the desired state could not be read or parsed: the
    roles it declares are unknown, so a reference to a role is not checked (the file's own
    problem is the one to fix; "unknown role" elsewhere would be a false alarm). `typed`: see
    semantic.TypedUsers (only for documents the schema passed)."""
    by_file = {d.source.file: d for d in documents}

    def at(file: str, path: Path, *, key: bool = False) -> tuple[int, int]:
        return by_file[file].marks.position(path, key=key)

    found = semantic.check(
        [(d.source.file, d.value) for d in documents if d.value is not None],
        at,
        roles_known=complete,
        typed=typed,
    )
    return [p for p in found if p.file is None or not by_file[p.file].is_tainted(p.path)]


def _build(documents: list[_Document], typed: semantic.TypedUsers) -> DesiredState:
    """The typed state of valid `documents`, whose users the semantic check built (`typed`)."""
    roles: dict[str, Role] = {}
    origins: dict[tuple[str, str], str] = {}
    policies: dict[PolicyKey, PolicyValue] = {}
    organization = ""
    for document in documents:
        value = document.value
        assert value is not None  # documents without a value were reported as problems
        file = document.source.file
        organization = value["organization"]
        if "policies" in value:
            policies.update(policies_of(value["policies"]))
            origins[("policies", "")] = file
        for name, role in value.get("roles", {}).items():
            roles[name] = Role(name, role.get("description", ""), frozenset(role["permissions"]))
            origins[("roles", name)] = file
    return DesiredState(
        organization=organization,
        roles=roles,
        users=typed.users,
        origins=semantic.Origins(origins, typed),
        policies=policies,
        files={document.source.file: document.source.digest for document in documents},
    )


def policies_of(section: dict[str, Any]) -> dict[PolicyKey, PolicyValue]:
    """A file's `policies:` section (schema-checked) as the rows it declares."""
    found: dict[PolicyKey, PolicyValue] = {}
    for rule in (rule for rule in POLICY_RULES if rule in section):
        value, listed = section[rule], rule in ("separation_of_duties", "require_two_factor")
        entries = value.items() if rule in KEYED_POLICY_RULES else [("", value)]
        for name, entry in entries:
            found[(rule, name)] = sorted(entry) if listed else entry
    return found


def _declaring_file(path: Path, desired: DesiredState, files: list[str]) -> str | None:
    if len(path) >= 2 and path[0] in ("roles", "users"):
        return desired.origins.get((str(path[0]), str(path[1])))
    if path and path[0] == "policies":
        return desired.origins.get(("policies", ""))
    # The organization (and version) are declared by every file: name the only one if so.
    if path and path[0] in ("organization", "version") and len(files) == 1:
        return files[0]
    return None


def _marks_of(file: str) -> Marks | None:
    try:
        source = read_source(file)
    except InputError:
        return None  # the file went away since it was loaded: name it, without a line
    fast = fast_yaml.parse_fast(source.data)  # no schema run, as _read would
    if fast.trusted:
        return lazy_marks(lambda: source.text, fast.value)
    return parse_marked(source.text, read=fast).sourcemap


def _place(problem: Problem) -> tuple[str, int, int, str, str]:
    return (
        problem.file or "",
        problem.line or 0,
        problem.col or 0,
        problem.dotted_path(),
        problem.message,
    )
