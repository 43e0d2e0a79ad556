"""The precise parser: libyaml's C parser, event by event, building the document's value together
with its source map and refusing everything the desired-state format does not allow.

It is the authority on what a file means. It runs whenever the fast parser cannot vouch for a
file (see fast_yaml) or a problem has to be located, so it must find *every* strict-rule problem in
one pass, with its line and column:
- duplicate keys at any depth, naming the first definition;
- anchors, aliases, tags (`!!str`, `!foo`), merge keys (`<<`), directives, several documents;
- plain booleans other than `true`/`false` (see scalars);
- `${...}`: substitution is not supported, a plan must be reproducible from git alone.
Plain scalars are read with YAML 1.2 core rules, exactly as the fast parser reads them.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from userctl.desired.scalars import (
    AMBIGUOUS_BOOLEANS,
    NOT_STRINGS,
    NUMBER_START,
    resolve_plain,
)
from userctl.desired.sourcemap import SourceMap, unpack
from userctl.errors import Path, Problem

_NO_KEY: Any = object()  # a mapping frame waiting for its next key
# The format nests four levels deep (users > user > bank_accounts > item); far deeper input is a
# mistake or an attack (memory), and jsonschema-rs gives up past about 250 levels.
MAX_DEPTH = 64
# Marks are packed as line << 32 | column (0-based), inline in the event loop: see sourcemap.


@dataclass
class MarkedDocument:
    """`value` is None when the file could not be read as one YAML document at all.
    `tainted` holds the paths whose value was replaced by a strict-rule problem: later checks
    (schema, semantic) stay silent about them rather than report the same mistake twice."""

    value: Any
    sourcemap: SourceMap
    problems: list[Problem] = field(default_factory=list)
    tainted: set[Path] = field(default_factory=set)


class _Frame:
    __slots__ = ("container", "is_map", "key", "key_mark", "mark", "marks", "skip", "step")

    def __init__(self, container: Any, is_map: bool, step: str | int | None, mark: int) -> None:
        self.container = container
        self.marks: array[int] = array("q")
        self.is_map = is_map
        self.key: Any = _NO_KEY
        self.key_mark = 0
        self.skip = False  # the current entry repeats a key: its value is dropped
        self.step = step  # this container's key or index in its parent
        self.mark = mark


class _Builder:
    """Receives parsed nodes and puts them in place; records problems with their paths."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = []
        self.marks: dict[int, array[int]] = {}
        self.raw: dict[tuple[int, str | int], str] = {}
        self.problems: list[Problem] = []
        self.tainted: set[Path] = set()
        self.root: Any = None
        self.root_mark = 0
        self.done = False  # the root node has been read

    def path(self, extra: tuple[str | int, ...] = ()) -> Path:
        steps = tuple(f.step for f in self.stack[1:] if f.step is not None)
        return steps + extra

    def next_step(self) -> str | int | None:
        """The key or index the next node will take in the current container."""
        if not self.stack:
            return None
        top = self.stack[-1]
        if not top.is_map:
            return len(top.container)
        return None if top.key is _NO_KEY else top.key

    def problem(self, message: str, mark: int, path: Path, *, taint: bool = False) -> None:
        line, col = unpack(mark)
        self.problems.append(Problem(message, path, line=line, col=col))
        if taint:
            self.tainted.add(path)

    def awaits_key(self) -> bool:
        return bool(self.stack) and self.stack[-1].is_map and self.stack[-1].key is _NO_KEY

    def here(self, source: str | None) -> Path:
        """The path of the node being parsed: for a key, the key itself."""
        if self.awaits_key():
            return self.path((source if source is not None else "?",))
        step = self.next_step()
        return self.path(() if step is None else (step,))

    def node(self, value: Any, mark: int, source: str | None = None) -> None:
        """Place a parsed node. `source` is a scalar's text as written: kept for numbers and
        nulls so that messages can quote it, and used to name a key that is not a string."""
        raw = (
            source
            if source is not None and value.__class__ is not str and value.__class__ is not bool
            else None
        )
        if not self.stack:
            self.root, self.root_mark, self.done = value, mark, True
            return
        top = self.stack[-1]
        if not top.is_map:
            if raw is not None:
                self.raw[(id(top.container), len(top.container))] = raw
            top.container.append(value)
            top.marks.append(mark)
            return
        if top.key is _NO_KEY:
            self._key(top, value, mark, source)
            return
        if not top.skip:
            if raw is not None:
                self.raw[(id(top.container), top.key)] = raw
            top.container[top.key] = value
            top.marks.append(top.key_mark)
            top.marks.append(mark)
        top.key = _NO_KEY
        top.skip = False

    def _key(self, top: _Frame, key: Any, mark: int, source: str | None) -> None:
        if not isinstance(key, str):
            if source:
                message = f'keys must be strings: write "{source}" in quotes'
            else:
                message = f"keys must be plain strings, not {_describe_complex(key)}"
            key = source or f"<{_describe_complex(key)}>"
            self.problem(message, mark, self.path((key,)), taint=True)
        if key in top.container:
            first_line, _ = unpack(top.marks[2 * list(top.container).index(key)])
            self.problem(
                f"duplicate key '{key}' (first defined at line {first_line})",
                mark,
                self.path((key,)),
            )
            top.skip = True
        top.key = key
        top.key_mark = mark

    def push(self, container: Any, is_map: bool, mark: int) -> None:
        frame = _Frame(container, is_map, self.next_step(), mark)
        self.marks[id(container)] = frame.marks
        self.stack.append(frame)

    def pop(self) -> None:
        frame = self.stack.pop()
        self.node(frame.container, frame.mark)


def _describe_complex(key: Any) -> str:
    return "a mapping" if isinstance(key, dict) else "a list" if isinstance(key, list) else "empty"


def parse_marked(text: str, *, mapping: bool = True) -> MarkedDocument:
    """`text` read with marks; `mapping`: refuse a top level that is not a mapping."""
    import yaml  # imported when first needed: a valid file has no use for it before its scan

    b = _Builder()
    try:
        _run(yaml, text, b)
    except yaml.MarkedYAMLError as exc:
        b.problems.append(_syntax_problem(text, exc))
        b.root, b.done = None, False
    except yaml.reader.ReaderError as exc:
        b.problems.append(_reader_problem(text, exc))
        b.root, b.done = None, False
    if mapping and b.done and not isinstance(b.root, dict):
        b.problem(
            "the top level must be a mapping with version, organization, roles and users, "
            f"not {_kind(b.root)}",
            b.root_mark,
            (),
        )
        b.root = None
    return MarkedDocument(
        b.root, SourceMap(b.root, b.root_mark, b.marks, b.raw), b.problems, b.tainted
    )


def _run(yaml: Any, text: str, b: _Builder) -> None:
    from yaml._yaml import CParser

    scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
    mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    mapping_end, sequence_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    document_start, stream_end = yaml.DocumentStartEvent, yaml.StreamEndEvent
    ambiguous = AMBIGUOUS_BOOLEANS
    number_start, not_strings = NUMBER_START, NOT_STRINGS | AMBIGUOUS_BOOLEANS | {"<<"}
    stack, no_key = b.stack, _NO_KEY

    get_event = CParser(text).get_event
    documents = 0
    while True:
        event: Any = get_event()
        kind = type(event)
        if kind is scalar_event:
            m = event.start_mark
            mark = (m.line << 32) | m.column
            source = event.value
            if (
                stack
                and event.anchor is None
                and event.tag is None
                and (
                    event.style != ""
                    or (source and source[0] not in number_start and source not in not_strings)
                )
                and "${" not in source
            ):
                # The common case, inlined (a million times per 100,000 users): a string that
                # breaks no rule, as a new key, a value, or a list item.
                top = stack[-1]
                if not top.is_map:
                    top.container.append(source)
                    top.marks.append(mark)
                    continue
                if top.key is no_key:
                    if source not in top.container:
                        top.key, top.key_mark = source, mark
                        continue
                elif not top.skip:
                    top.container[top.key] = source
                    top.marks.append(top.key_mark)
                    top.marks.append(mark)
                    top.key = no_key
                    continue
            value: Any = source
            if event.anchor is not None or event.tag is not None:
                _decorations(b, event, mark, source)
            elif event.style == "":
                value = resolve_plain(source)
                if source in ambiguous and (value.__class__ is str or not b.awaits_key()):
                    _refuse(b, mark, source, _ambiguous(source, b.here(source)))
                elif source == "<<" and b.awaits_key():
                    _refuse(
                        b,
                        mark,
                        source,
                        "merge keys (<<) are not supported; write the keys out in full",
                    )
            if "${" in source:
                _refuse(
                    b,
                    mark,
                    source,
                    "${...} substitution is not supported: a plan must be reproducible from git "
                    "alone; write the value itself",
                )
            b.node(value, mark, source)
        elif kind is mapping_end or kind is sequence_end:
            b.pop()
        elif kind is mapping_start or kind is sequence_start:
            m = event.start_mark
            mark = (m.line << 32) | m.column
            if len(stack) >= MAX_DEPTH:
                b.problem(_TOO_DEEP, mark, b.path()[:2])
                b.root, b.done = None, False
                return
            if event.anchor is not None or event.tag is not None:
                _decorations(b, event, mark)
            b.push({} if kind is mapping_start else [], kind is mapping_start, mark)
        elif kind is alias_event:
            m = event.start_mark
            mark = (m.line << 32) | m.column
            _refuse(
                b,
                mark,
                None,
                f"aliases (*{event.anchor}) are not allowed; write the value out in full",
            )
            b.node(None, mark, None)
        elif kind is document_start:
            documents += 1
            m = event.start_mark
            mark = (m.line << 32) | m.column
            if documents > 1:
                # Refused before anything else: what the first document holds is moot, so the
                # problems found in it so far are dropped.
                b.problems.clear()
                b.tainted.clear()
                b.problem(
                    "several YAML documents in one file: a file holds exactly one "
                    "(remove this '---', or move what follows to a file of its own)",
                    mark,
                    (),
                )
                b.root, b.done = None, False
                return
            if event.version is not None or event.tags:
                b.problem("directives (%YAML, %TAG) are not supported; remove them", mark, ())
        elif kind is stream_end:
            return


def libyaml_reads(data: bytes) -> bool:
    """Whether libyaml parses `data` without an error: in C, no event reaching Python (about 0.4 s
    at 100,000 users, against several for parse_marked). A file yaml_rs reads alone must be one
    libyaml reads too, or a comment that sends it to libyaml would change its verdict."""
    import yaml
    from yaml._yaml import CParser

    try:
        CParser(data).raw_parse()
    except yaml.YAMLError:
        return False
    return True


def nesting_depth(value: Any) -> int:
    """How many containers deep `value` goes (iteratively: it may be deep)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _ambiguous(source: str, path: Path) -> str:
    """`off`, `yes`... written plain. The hint is what the field takes: for an enum field, its
    values (quoting `off` would only lead to a second error), else a boolean or a quoted string."""
    from userctl.desired.schema import enum_at

    values = enum_at(path)
    if values:
        return (
            f"'{source}' is ambiguous in YAML (YAML 1.1 reads it as a boolean); this field takes "
            f"one of: {', '.join(values)}"
        )
    return (
        f"'{source}' is ambiguous in YAML: use true or false; quote it "
        f'("{source}") if you meant a string'
    )


def _refuse(b: _Builder, mark: int, source: str | None, message: str) -> None:
    """A strict-rule problem about the node being parsed (a key when a mapping awaits one)."""
    b.problem(message, mark, b.here(source), taint=True)


def _decorations(b: _Builder, event: Any, mark: int, source: str | None = None) -> None:
    if event.anchor is not None:
        _refuse(
            b, mark, source, f"anchors (&{event.anchor}) are not allowed; write values out in full"
        )
    if event.tag is not None:
        tag = str(event.tag).replace("tag:yaml.org,2002:", "!!")
        _refuse(
            b,
            mark,
            source,
            f"tags ({tag}) are not allowed; write the plain value, quoted if it is a string",
        )


_TOO_DEEP = (
    f"nested more than {MAX_DEPTH} levels deep (the format needs 4); "
    "check the brackets and indentation"
)


_REFUSED_ANYWAY = {
    "while scanning a directive": "directives (%YAML, %TAG) are not supported; remove them",
    "found incompatible YAML document": "directives (%YAML, %TAG) are not supported; remove them",
    "while scanning an anchor": "anchors (&) are not allowed; write values out in full",
    "while scanning an alias": "aliases (*) are not allowed; write the value out in full",
}


def _syntax_problem(text: str, exc: Any) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    if "maximum nesting depth" in str(exc.problem):
        # libyaml >= 0.2.6 scans flow brackets ahead of its events and stops at 1000 levels before
        # our own limit is reached: the same mistake, reported in the same words, at libyaml's mark.
        return Problem(_TOO_DEEP, line=mark.line + 1, col=mark.column + 1)
    refused = _REFUSED_ANYWAY.get(exc.context) or _REFUSED_ANYWAY.get(exc.problem)
    if mark is not None and refused is not None:
        # libyaml stops at a directive or an anchor it cannot read: the format refuses them all
        # the same, and saying so is the fix (not a syntax lesson).
        return Problem(refused, line=mark.line + 1, col=mark.column + 1)
    message = f"YAML syntax error: {exc.problem or exc.context}"
    if exc.context and exc.problem and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if mark is None:
        return Problem(message)
    lines = text.splitlines()
    if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        message += "; indent with spaces, not tabs"
    return Problem(message, line=mark.line + 1, col=mark.column + 1)


def _reader_problem(text: str, exc: Any) -> Problem:
    # libyaml reports a byte offset into the UTF-8 encoding of the text.
    before = text.encode("utf-8")[: exc.position].decode("utf-8", errors="ignore")
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    char = exc.character
    shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
    return Problem(
        f"character {shown} is not allowed in YAML ({exc.reason}); remove it", line=line, col=col
    )


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty document"
    return "a single value"
