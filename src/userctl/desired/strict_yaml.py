"""The marked reader: where each node of a document stands, how each scalar is written, and every
rule of the format about how the YAML is written rather than what it holds.

yaml_rs (fast_yaml) alone decides whether a text is YAML and what every value is; this module never
decides a value. A small scanner, restricted to what is needed (node starts, scalar styles, anchors,
tags, aliases, directives, document markers), reads the text, and its nodes are laid over yaml_rs's
value node for node. Where they do not line up, the scanner has misread valid YAML: the file is
refused as one userctl cannot mark (a known gap of the scanner, never a wrong value). It finds,
each at its line and column:
- duplicate keys at any depth, naming the first definition;
- anchors, aliases, tags (`!!str`, `!foo`), merge keys (`<<`), directives, several documents;
- plain booleans other than `true`/`false` (AMBIGUOUS_BOOLEANS), quoted ones being strings;
- characters YAML does not allow in a stream, and nesting deeper than MAX_DEPTH.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from userctl.desired import fast_yaml
from userctl.errors import Path, Problem

# Plain scalars that are errors (yaml_rs reads YAML 1.2's core schema): anything a YAML 1.1 or 1.2
# reader may take for a boolean, except the two canonical spellings. `NO` silently becoming false
# is the trap.
AMBIGUOUS_BOOLEANS: Final = frozenset(
    "y Y yes Yes YES n N no No NO on On ON off Off OFF True TRUE False FALSE".split()
)
# The format nests four levels deep (users > user > bank_accounts > item); far deeper input is a
# mistake or an attack (memory), and jsonschema-rs gives up past about 250 levels.
MAX_DEPTH = 64
_TOO_DEEP: Final = (
    f"nested more than {MAX_DEPTH} levels deep (the format needs 4); "
    "check the brackets and indentation"
)
_SAY: Final = {  # the format's rules on how YAML is written, as their problems say them
    "&": "anchors ({}) are not allowed; write values out in full",
    "!": "tags ({}) are not allowed; write the plain value, quoted if it is a string",
    "*": "aliases ({}) are not allowed; write the value out in full",
    "<<": "merge keys (<<) are not supported; write the keys out in full",
    "bad": "YAML syntax error: '{}' cannot start a value in flow style; quote the value",
    "%": "directives (%YAML, %TAG) are not supported; remove them",
    "---": "several YAML documents in one file: a file holds exactly one (remove this '---', or "
    "move what follows to a file of its own)",
    "": "the file is empty (it holds no YAML document); it must declare version and organization",
}
UNREADABLE: Final = (
    "valid YAML that userctl's marked reader cannot read; write it more plainly (no tabs, "
    "no empty keys, one key per line)"
)
# Blanks are spaces and tabs only: YAML takes U+00A0, U+2003... for text, Python's \s does not
# (re.A on every pattern that says \s).
_SKIP: Final = re.compile(r"(?:[ \t\r\n\ufeff]+|#[^\n]*)*")
_DOUBLE: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_SINGLE: Final = re.compile(r"'(?:[^']|'')*'")
_PROPERTY: Final = re.compile(r"![^\s<]*<[^>\s]*>|[&!][^\s,\[\]{}]*", re.A)
_ALIAS: Final = re.compile(r"\*[^\s,\[\]{}]*", re.A)
_HEADER: Final = re.compile(r"[|>]([1-9]?)[-+]?([1-9]?)[ \t]*(?:#[^\n]*)?")
_BLANKS: Final = re.compile(r"[ \t]*")

_FIRST_LINE: Final = re.compile(r"[^\n]*(?:\n[ ]*(?=\r?\n))*(?:\n([ ]*))?")


@functools.cache
def _less(indent: int) -> re.Pattern[str]:
    """The line break before a line less indented (at column 0, a document marker)."""
    less = rf" {{0,{indent - 1}}}+[^ \r\n]" if indent else r"(?:---|\.\.\.)(?:\s|\Z)"
    return re.compile(rf"\n(?={less})", re.A)


@functools.cache
def _next_entry(c: int) -> re.Pattern[str]:
    return re.compile(rf"\n(?= {{0,{c}}}+(?:[^\s#-]|-\S))", re.A)


def _plain(safe: str) -> re.Pattern[str]:
    """One line of a plain scalar: words of `safe` characters (a '#' inside a word is text, one
    after a blank starts a comment) separated by blanks."""
    word = rf"(?:{safe})(?:{safe}|#)*"
    return re.compile(rf"{word}(?:[ \t]+{word})*", re.A)


_PLAIN_BLOCK: Final = _plain(r"[^\s:#]|:(?=\S)")
_PLAIN_FLOW: Final = _plain(r"[^\s,\[\]{}:#]|:(?=[^\s,\[\]{}])")


_QUOTED_LINE: Final = r"\"(?:[^\"\\\n]|\\.)*+\"|'(?:[^'\n]|'')*+'"
_PLAIN_LINE: Final = rf"(?![-?:]\s|[\s#'\"&!*|>%@`,\[\]{{}}])(?:{_PLAIN_BLOCK.pattern})"
# A plain key without '#': its words read by possessive runs (faster than _PLAIN_LINE's).
_PLAIN_KEY: Final = r"[^\s#'\"&!*?|>%@`,\[\]{}:-][^:#\r\n]*+(?::(?=\S)[^:#\r\n]*+)*+(?<![ \t])"


@functools.cache
def _simple_entry(c: int) -> re.Pattern[str]:
    """Most lines of a file: a plain key and, on its line, a plain or quoted value, the next line
    no further right than `c` (so the value does not go on there), or nothing (the value is on the
    lines below). One match reads such an entry of a block mapping at column `c` (group 1: the
    key, group 2: the value if on the line; the match ends past the ':' if not)."""
    return re.compile(
        rf"({_PLAIN_KEY}):(?:[ ]+({_PLAIN_LINE}|{_QUOTED_LINE})"
        rf"[ \t]*+(?:(?<=[ \t])#[^\n]*+)?(?=\r?\n {{0,{c}}}\S|\s*\Z)|(?=[ \t]*\r?(?:\n|\Z)))",
        re.A,
    )


# All but YAML's c-printable, listed: the negated class cost 6 ms to compile at every start.
_NOT_PRINTABLE: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)


class _Misread(Exception):
    """The scanner's reading does not line up with yaml_rs's value: `at` is where it parts (or
    where the scanner stopped, nesting too deep: its depth then says so)."""

    def __init__(self, at: int) -> None:
        self.at = at


# Events: ("{" | "[", offset, properties), ("]", offset), ("*", offset, properties, "*name"),
# ("s", offset, properties, style, plain text or None, end), and ("~", offset, offset past the
# ':', column): a value a shallow reading leaves for later. Properties: ((offset, "&a"), ...).
Event = tuple[Any, ...]


class _Scanner:
    """The events of the first document of `text`, and where a second one or a directive is."""

    def __init__(self, text: str, shallow: bool = False) -> None:
        self.t, self.n, self.shallow = text, len(text), shallow
        self.events: list[Event] = []
        self.directive: int | None = None
        self.second: int | None = None  # where a second document starts
        self.depth = 0

    def col(self, i: int) -> int:
        return i - self.t.rfind("\n", 0, i) - 1

    def skip(self, i: int) -> int:
        return _SKIP.match(self.t, i).end()  # type: ignore[union-attr]

    def blank(self, i: int) -> bool:
        return i >= self.n or self.t[i] in " \t\r\n"

    def marker(self, i: int) -> bool:
        return self.t.startswith(("---", "..."), i) and self.col(i) == 0 and self.blank(i + 3)

    def stream(self) -> None:
        t, i = self.t, self.skip(0)
        while i < self.n:
            if t[i] == "%" and self.col(i) == 0:
                self.directive = i if self.directive is None else self.directive
                i = self.skip(t.find("\n", i) % (self.n + 1))
                continue
            if t.startswith("...", i) and self.marker(i):
                i = self.skip(i + 3)
                continue
            if self.events:  # a document is read already
                self.second = i
                return
            explicit = t.startswith("---", i) and self.marker(i)
            i = self.skip(self.node(-1, i + 3 if explicit else i))

    # -- block context ----------------------------------------------------------------------------

    def ends(self, j: int, parent: int, seq_ok: bool) -> bool:
        if j >= self.n or self.marker(j):
            return True
        c = self.col(j)
        return c <= parent and not (seq_ok and c == parent and self.is_entry(j))

    def is_entry(self, j: int) -> bool:
        return self.t[j] == "-" and self.blank(j + 1)

    def node(self, parent: int, i: int, seq_ok: bool = False) -> int:
        """A block node after offset `i`, its lines right of column `parent`; returns its end."""
        t, j = self.t, self.skip(i)
        if self.ends(j, parent, seq_ok):
            self.events.append(("s", i, (), "", "", i))
            return i
        own: tuple[tuple[int, str], ...] = ()  # properties on a line of their own
        props, j = self.properties(j)
        while props and (j >= self.n or t[j] in "#\r\n"):
            own, j = own + props, self.skip(j)
            if self.ends(j, parent, seq_ok):
                self.events.append(("s", own[0][0], own, "", "", j))
                return j
            props, j = self.properties(j)
        if t[j] in "-?:" and self.blank(j + 1):
            self.open("[" if t[j] == "-" else "{", own[0][0] if own else j, own)
            return self.block(self.col(j), j, t[j] == "-")
        index = len(self.events)
        end = self.inline(j, props, parent)
        colon = _BLANKS.match(t, end).end()  # type: ignore[union-attr]
        if t[colon : colon + 1] == ":" and self.blank(colon + 1) and t.find("\n", j, end) < 0:
            start = props[0][0] if props else j
            self.events.insert(index, ("{", own[0][0] if own else start, own))
            self.open(None, start, ())
            c = self.col(start)
            return self.block(c, self.value(c, colon + 1))
        kind, at, props, *rest = self.events[index]
        if own:
            at, props = own[0][0], own + props
        if rest[:1] == [""] and (more := self.go_on(end, parent)) != end:
            rest, end = ["", None, more], more  # a plain scalar's further lines
        self.events[index] = (kind, at, props, *rest)
        return end

    def properties(self, j: int) -> tuple[tuple[tuple[int, str], ...], int]:
        """The anchors and tags at `j`, and where what they decorate starts."""
        t, props = self.t, []
        while j < self.n and t[j] in "&!":
            end = _PROPERTY.match(t, j).end()  # type: ignore[union-attr]
            props.append((j, t[j:end]))
            j = _BLANKS.match(t, end).end()  # type: ignore[union-attr]
        return tuple(props), j

    def block(self, c: int, end: int, seq: bool = False) -> int:
        """A block sequence (`seq`) or mapping at column `c`, read up to `end`: where its first
        entry starts, or past the first entry of a mapping whose first key is read already."""
        simple, events = _simple_entry(c), self.events
        while True:
            j = self.skip(end)
            if j >= self.n or self.marker(j) or self.col(j) != c or self.is_entry(j) != seq:
                return self.close(end)
            line = None if seq else simple.match(self.t, j)
            if line is not None:
                events.append(("s", j, (), "", line.group(1), line.end(1)))
                end, v = line.end(2), line.start(2)
                if v < 0:  # the value on the lines below
                    end = self.value(c, line.end())
                else:
                    quote = self.t[v] if self.t[v] in "\"'" else ""
                    events.append(("s", v, (), quote, None if quote else line.group(2), end))
            else:
                end = self.node(c, j + 1) if seq else self.entry(c, j)

    def entry(self, c: int, j: int) -> int:
        t = self.t
        if t[j] in "?:" and self.blank(j + 1):  # an explicit key, or an empty one
            if t[j] == ":":
                self.events.append(("s", j, (), "", "", j))
            end = self.node(c, j + 1) if t[j] == "?" else j
            k = self.skip(end)
            if k < self.n and self.col(k) == c and t[k] == ":" and self.blank(k + 1):
                return self.node(c, k + 1, True)
            self.events.append(("s", end, (), "", "", end))
            return end
        props, j = self.properties(j)
        end = self.inline(j, props, c)
        colon = _BLANKS.match(t, end).end()  # type: ignore[union-attr]
        if colon >= self.n or t[colon] != ":":
            raise _Misread(j)
        return self.value(c, colon + 1)

    def value(self, c: int, i: int) -> int:
        """The value of an entry of a block mapping at column `c`, after its ':'. A shallow reading
        leaves a nested one on lines of its own for later: to the next line at most `c` columns
        in (a block node's lines all stand right of it), where the next entry starts."""
        j = self.skip(i)
        shallow = self.shallow and self.depth >= 2 and self.t.find("\n", i, j) >= 0
        if shallow and not self.ends(j, c, True):
            found = _next_entry(c).search(self.t, j)
            self.events.append(("~", j, i, c))
            return found.start() if found else self.n
        return self.node(c, i, True)

    def go_on(self, end: int, parent: int | None) -> int:
        """Where a plain scalar whose first line ends at `end` ends: flow style (`parent` None)
        or block style, its lines then on lines of their own right of `parent`."""
        t, plain = self.t, _PLAIN_FLOW if parent is None else _PLAIN_BLOCK
        while True:
            j = self.skip(end)
            if (
                t.find("#", end, j) >= 0
                or parent is not None
                and (j >= self.n or self.ends(j, parent, False) or t.find("\n", end, j) < 0)
            ):
                return end
            line = plain.match(t, j)
            if line is None or line.end() == j:
                return end
            end = line.end()

    # -- nodes written inline, and flow context ---------------------------------------------------

    def inline(self, j: int, props: tuple[tuple[int, str], ...], parent: int | None) -> int:
        """A node starting at `j` that is not a block collection: in flow style (`parent` None),
        or in block style (one line of a plain scalar)."""
        t = self.t
        at = props[0][0] if props else j
        if t[j] == "*":
            end = _ALIAS.match(t, j).end()  # type: ignore[union-attr]
            self.events.append(("*", at, props, t[j:end]))
            return end
        if t[j] in "[{":
            return self.flow(j, props)
        style, plain = t[j], None  # a scalar: its style, and its text if plain on one line
        if t[j] in "\"'":
            quoted = (_DOUBLE if t[j] == '"' else _SINGLE).match(t, j)
            if quoted is None:
                raise _Misread(j)
            end = quoted.end()
        elif t[j] in "|>" and parent is not None:
            # A block scalar: its lines stand `indent` columns in (said by its header, or by its
            # first line that holds anything), up to a line that holds something further left.
            header = _HEADER.match(t, j)
            assert header is not None
            digit, start = header.group(1) or header.group(2), header.end()
            first = len(_FIRST_LINE.match(t, start).group(1) or "")  # type: ignore[union-attr]
            indent = max(parent, 0) + int(digit) if digit else max(parent + 1, first)
            after = _less(indent).search(t, start)
            end = after.start() + 1 if after else self.n
        elif t[j] in "|>":  # in flow style, an indicator YAML forbids, which yaml_rs takes as text
            after = _PLAIN_FLOW.match(t, j + 1)
            style, end = "bad", after.end() if after else j + 1
        else:
            line = (_PLAIN_BLOCK if parent is not None else _PLAIN_FLOW).match(t, j)
            if line is None:
                raise _Misread(j)
            end = line.end() if parent is not None else self.go_on(line.end(), None)
            style, plain = "", line.group() if end == line.end() else None
        self.events.append(("s", at, props, style, plain, end))
        return end

    def flow(self, j: int, props: tuple[tuple[int, str], ...]) -> int:
        t = self.t
        is_map, close = t[j] == "{", "}" if t[j] == "{" else "]"
        self.open(t[j], props[0][0] if props else j, props)
        k = self.skip(j + 1)
        while k < self.n and t[k] != close:
            start, index = k, len(self.events)
            explicit = t[k] == "?" and self.blank(k + 1)
            k = self.skip(self.flow_node(self.skip(k + 1) if explicit else k))
            pair = not is_map and (explicit or t[k : k + 1] == ":")  # a one-pair mapping
            if pair:
                self.events.insert(index, ("{", start, ()))
            if k < self.n and t[k] == ":":
                k = self.skip(self.flow_node(self.skip(k + 1)))
            elif is_map or explicit:
                self.events.append(("s", k, (), "", "", k))
            if pair:
                self.events.append(("]", k))
            if k < self.n and t[k] == ",":
                k = self.skip(k + 1)
            elif k < self.n and t[k] != close:
                raise _Misread(k)
        if k >= self.n:
            raise _Misread(j)
        return self.close(k + 1)

    def flow_node(self, k: int) -> int:
        t = self.t
        props, k = self.properties(k)
        k = self.skip(k)
        # a ':' that is a value indicator (not the start of a scalar): an empty node
        if t[k] in ",]}" or t[k] == ":" and (self.blank(k + 1) or t[k + 1] in ",[]{}"):
            self.events.append(("s", props[0][0] if props else k, props, "", "", k))
            return k
        return self.inline(k, props, None)

    def open(self, kind: str | None, at: int, props: tuple[tuple[int, str], ...]) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Misread(at)
        if kind is not None:
            self.events.append((kind, at, props))

    def close(self, end: int) -> int:
        self.depth -= 1
        self.events.append(("]", end))
        return end


class SourceMap:
    """Where each part of a document came from: path -> (line, column), found only when a problem
    has to be located. Compact, as a 100,000-user file has over a million entries: each
    container's marks are one array of offsets in its order (a dict keeps the parser's), a key's
    index looked up when asked. Mappings store (key mark, value mark) per entry, sequences one
    mark per item; `raw` keeps the source text of plain scalars read as numbers or null, so that
    a message can quote what the author wrote (`0123456`, not 123456). `place` turns an offset
    into `text` into a line and column; `reveal`, when set, marks a container on first use (see
    lazy_marks), and `pending` holds what it has yet to mark."""

    def __init__(self, root: Any, text: str) -> None:
        self.root, self.root_mark, self.text, self._asked = root, 0, text, 0
        self._starts: list[int] | None = None  # of the lines, found once asked more than a few
        # id(container) -> offsets; ids stay valid while `root` lives
        self.marks: dict[int, array[int]] = {}
        self.raw: dict[tuple[int, str | int], str] = {}
        self.pending: dict[int, tuple[int, int]] = {}
        self.reveal: Callable[[Any], None] | None = None
        self._indexes: dict[int, dict[str, int]] = {}
        self._folded: dict[int, dict[str, str]] = {}

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """(line, col) of the value at `path`, or of its key with `key=True`. A path that goes
        beyond what exists (a missing field) gives the position of the deepest part that does."""
        if self.reveal is not None and not self.marks:
            self.reveal(self.root)
        mark, node = self.root_mark, self.root
        for i, step in enumerate(path):
            found = self._child(node, step)
            if found is None:
                break
            if self.reveal is not None and id(node) in self.pending:
                self.reveal(node)
            marks = self.marks.get(id(node), ())
            at_key = key and i == len(path) - 1
            slot = 2 * found[0] + (not at_key) if isinstance(node, dict) else found[0]
            # No marks: an alias's value has none of its own, and a reading that stopped short
            # (see lazy_marks) left some out.
            if slot >= len(marks):
                break
            mark, node = marks[slot], found[1]
        return self.place(mark)

    def place(self, offset: int) -> tuple[int, int]:
        """The 1-based (line, column) of an offset into `text`."""
        self._asked += 1
        if self._starts is None and self._asked <= 16:  # a few problems: no table of 1M lines
            return self.text.count("\n", 0, offset) + 1, offset - self.text.rfind("\n", 0, offset)
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1

    def value(self, path: Path) -> Any:
        node = self.root
        for step in path:
            found = self._child(node, step)
            if found is None:
                return None
            node = found[1]
        return node

    def source_text(self, path: Path) -> str | None:
        """The text as written of a plain scalar that was read as a number or null."""
        if not path:
            return None
        self.position(path)  # marks what leads there, which notes the text on the way
        parent, step = self.value(path[:-1]), path[-1]
        if isinstance(parent, dict) and isinstance(step, str):
            step = self._resolve_key(parent, step) or step
        return self.raw.get((id(parent), step))

    def _child(self, node: Any, step: str | int) -> tuple[int, Any] | None:
        if isinstance(node, dict) and isinstance(step, str):
            real = self._resolve_key(node, step)
            return None if real is None else (self._index(node)[real], node[real])
        if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            return step, node[step]
        return None

    def _resolve_key(self, node: dict[str, Any], step: str) -> str | None:
        """The key of `node` that `step` names. Paths from the planner carry emails lower-cased;
        the file may spell them otherwise (each mapping's folded keys cached: it never changes)."""
        if step in node:
            return step
        folded = self._folded.get(id(node))
        if folded is None:
            folded = self._folded[id(node)] = {k.lower(): k for k in node if isinstance(k, str)}
        return folded.get(step.lower())

    def _index(self, node: dict[str, Any]) -> dict[str, int]:
        index = self._indexes.get(id(node))
        if index is None:
            index = self._indexes[id(node)] = {k: i for i, k in enumerate(node)}
        return index


Marks = SourceMap  # what locating a problem needs


@dataclass
class MarkedDocument:
    """`value` is None when the file could not be read as one YAML document at all.
    `tainted` holds the paths whose value was replaced by a strict-rule problem: later checks
    (schema, semantic) stay silent about them rather than report the same mistake twice."""

    value: Any
    sourcemap: SourceMap
    problems: list[Problem] = field(default_factory=list)
    tainted: set[Path] = field(default_factory=set)


class _Aligner:
    """Lays the scanner's events over yaml_rs's value: the marks of every node, and the problems
    of the format's rules, each at its path. `duplicates`: yaml_rs found a repeated key and
    `value` keeps each first one; the repeats are found here, by each key's own reading."""

    def __init__(self, events: list[Event], text: str, duplicates: bool, into: SourceMap) -> None:
        self.events, self.text, self.duplicates, self.i = events, text, duplicates, 0
        self.marks, self.raw, self.place = into.marks, into.raw, into.place
        self.pending = into.pending  # left for later: see lazy_marks
        self.problems: list[Problem] = []
        self.tainted: set[Path] = set()
        self.path: Path = ()  # of the last container walked without yaml_rs's value

    def problem(self, message: str, at: int, path: Path, *, taint: bool = True) -> None:
        line, col = self.place(at)
        self.problems.append(Problem(message, path, line=line, col=col))
        if taint:
            self.tainted.add(path)

    def node(self, value: Any, path: Path, key: bool = False, slot: Any = None) -> int:
        """Marks `value`, at `path` (a key with `key`); `slot`: its (id(container), step)."""
        event = self.events[self.i]
        self.i += 1
        kind, props = event[0], event[2]
        at: int = event[1]
        if kind == "~":  # marked when a path enters it
            if isinstance(value, (dict, list)):
                self.pending[id(value)] = (event[2], event[3])
            return at
        for offset, text in props:
            self.problem(_SAY[text[0]].format(text), offset, path)
        if kind == "*":
            self.problem(_SAY["*"].format(event[3]), at, path)
            return at
        if kind == "s":
            if isinstance(value, (dict, list, tuple, frozenset)):
                raise _Misread(at)
            style, plain = event[3], event[4]
            if value is _UNKNOWN:
                value = plain or ""
            if style == "bad":
                self.problem(_SAY["bad"].format(self.text[at]), at, path)
            elif style == "" and plain is not None:
                if value.__class__ is str and plain != value:
                    raise _Misread(at)
                if plain in AMBIGUOUS_BOOLEANS and (value.__class__ is str or not key):
                    self.problem(_ambiguous(plain, path), at, path)
                elif plain == "<<" and key:
                    self.problem(_SAY["<<"], at, path)
                if slot and (value is None or value.__class__ in (int, float)):
                    self.raw[slot] = plain  # a number's or null's text, that messages quote
            return at
        if value is _UNKNOWN:  # a collection
            self.path = path
            for index in itertools.count():
                child = self.events[self.i]
                if child[0] == "]":
                    break
                step = index if kind == "[" else (child[0] == "s" and child[4]) or "?"
                if kind == "{" and child[0] in "{[":  # a key yaml_rs could not hold (unhashable)
                    what = "a mapping" if child[0] == "{" else "a list"
                    self.problem(f"keys must be plain strings, not {what}", child[1], (*path, "?"))
                if kind == "{":
                    self.node(_UNKNOWN, (*path, step), key=True)
                self.node(_UNKNOWN, (*path, step))
        elif kind == "{" and isinstance(value, (set, frozenset)):  # a !!set or a mapping as a key
            while self.events[self.i][0] != "]":  # (both refused): only the place matters
                self.skip()
        elif kind == "{" and isinstance(value, dict):
            self.mapping(value, path)
        elif kind == "[" and isinstance(value, (list, tuple)):
            marks = self.marks[id(value)] = array("q")
            for index, item in enumerate(value):
                if self.events[self.i][0] == "]":
                    raise _Misread(at)
                marks.append(self.node(item, (*path, index), slot=(id(value), index)))
        else:
            raise _Misread(at)
        if self.events[self.i][0] != "]":
            raise _Misread(self.events[self.i][1])
        self.i += 1
        return at

    def mapping(self, value: Any, path: Path) -> None:
        marks = self.marks[id(value)] = array("q")
        keys, seen, names = iter(value), dict[Any, int](), dict[str, None]()  # seen: key marks
        events, quick = self.events, not self.duplicates
        while events[self.i][0] != "]":
            event = events[self.i]
            name = _NO_KEY  # the key read on its own (only when looking for repeated keys)
            if self.duplicates and event[0] == "s":
                read = fast_yaml.read(self.text[event[1] : event[5]].encode("utf-8"))
                if read.accepted and not isinstance(read.value, (dict, list)):
                    name = read.value
            if name is not _NO_KEY and name in seen:
                line, shown = self.place(seen[name])[0], self.shown_key(event, name)
                message = f"duplicate key '{shown}' (first defined at line {line})"
                self.problem(message, event[1], (*path, shown), taint=False)
                self.skip(2)
                continue
            key = next(keys, _NO_KEY)
            if key is _NO_KEY and self.duplicates and event[0] == "*":
                self.node(None, (*path, event[3]))  # an alias repeating a key: refused as such
                self.skip()
                continue
            if key is _NO_KEY:
                raise _Misread(event[1])
            plain_key = quick and event[0] == "s" and key == event[4] and not event[2]
            if plain_key and key != "<<" and key not in AMBIGUOUS_BOOLEANS:
                self.i += 1  # a plain key no rule concerns (most keys): marked inline
                at, shown = event[1], key
            else:
                shown = self.shown_key(event, key)
                at = self.node(key, (*path, shown), key=True)
                seen[key if name is _NO_KEY else name] = at
            if not isinstance(key, str):  # shown: as written if plain, else <what it is>
                message = f"keys must be plain strings, not {shown[1:-1]}"
                if shown[0] != "<":
                    message = f'keys must be strings: write "{shown}" in quotes'
                self.problem(message, at, (*path, shown))
            marks.append(at)
            marks.append(self.node(value[key], (*path, shown), slot=(id(value), key)))
            names[shown if shown not in names else f"{shown} ({len(names) + 1})"] = None
        if next(keys, _NO_KEY) is not _NO_KEY:
            raise _Misread(self.events[self.i][1])
        if any(name is not key for name, key in zip(names, value)):
            # Each key as messages show it, so that the schema can judge the rest.
            values = list(value.values())
            value.clear()
            value.update(zip(names, values))

    def shown_key(self, event: Event, key: Any) -> str:
        if isinstance(key, str):
            return key
        if event[0] == "s" and event[3] == "" and event[4]:
            return str(event[4])
        if isinstance(key, (dict, frozenset)):
            return "<a mapping>"
        return "<a list>" if isinstance(key, (list, tuple)) else "<empty>"

    def skip(self, nodes: int = 1) -> None:
        """Past `nodes` nodes' events (a repeated key and its value: yaml_rs kept the first...)."""
        depth = 0
        while nodes:
            kind = self.events[self.i][0]
            self.i += 1
            depth += 1 if kind in "{[" else -1 if kind == "]" else 0
            nodes -= depth == 0


_NO_KEY: Any = object()
_UNKNOWN: Any = object()  # a value yaml_rs did not give


def parse_marked(
    text: str, *, mapping: bool = True, read: fast_yaml.Read | None = None
) -> MarkedDocument:
    """`text` with its marks and the format's rules on its YAML; `read`: yaml_rs's reading of it,
    when made already. `mapping`: refuse a top level that is not a mapping."""
    sourcemap = SourceMap(None, text)

    def refused(*problems: Problem) -> MarkedDocument:
        return MarkedDocument(None, sourcemap, list(problems))

    def at(offset: int, message: str, path: Path = ()) -> Problem:
        line, col = sourcemap.place(offset)
        return Problem(message, path, line=line, col=col)

    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        char, kind = f"U+{ord(bad.group()):04X}", "control" if bad.group() < "\xa0" else "special"
        message = f"character {char} is not allowed in YAML ({kind} characters are not allowed)"
        return refused(at(bad.start(), message + "; remove it"))
    scanner, misread = _Scanner(text), None

    def walked() -> _Aligner:
        """The events walked without yaml_rs's value: the problems of the format's rules in them,
        and the path of the last container entered."""
        walk = _Aligner(scanner.events, text, False, sourcemap)
        with contextlib.suppress(IndexError):  # the events may stop inside a container
            walk.node(_UNKNOWN, ())
        return walk

    try:
        scanner.stream()
    except (_Misread, IndexError, AssertionError) as exc:
        misread = exc.at if isinstance(exc, _Misread) else 0  # yaml_rs's verdict comes first
        if scanner.depth > MAX_DEPTH:  # where the scanner stopped, to the format's depth
            return refused(at(misread, _TOO_DEEP, walked().path[:4]))  # (deeper: only `[0]`s)
    if misread is None and not scanner.events:  # no document: directives and markers at most
        return refused(at(0, _SAY[""]))
    if read is None:
        if misread is not None:
            return refused(at(misread, UNREADABLE))
        read = fast_yaml.read(text.encode("utf-8"), guarded=False)  # no deeper than MAX_DEPTH
    if not read.accepted and not read.duplicates:
        if misread is None and (read.refusal is None or any(e[0] == "*" for e in scanner.events)):
            # yaml_rs refused an alias (to no anchor, or expanding too far), or gave no value and
            # no reason (a mapping or list as a key, which Python cannot hold): the format
            # refuses each, and says so where it is (else the syntax error below).
            if problems := walked().problems:
                return refused(*problems)
        return refused(read.refusal or at(misread or 0, "YAML syntax error"))
    if scanner.second is not None:
        return refused(at(scanner.second, _SAY["---"]))
    aligner = _Aligner(scanner.events, text, read.duplicates, sourcemap)
    try:
        if misread is not None:
            raise _Misread(misread)
        root_mark = aligner.node(read.value, ())
    except (_Misread, IndexError) as exc:
        return refused(at(exc.at if isinstance(exc, _Misread) else 0, UNREADABLE))
    problems = [] if scanner.directive is None else [at(scanner.directive, _SAY["%"])]
    problems += aligner.problems
    value = read.value
    if mapping and not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else "a single value"
        message = "the top level must be a mapping with version, organization, roles and users"
        problems.append(
            at(root_mark, f"{message}, not {'an empty document' if value is None else kind}")
        )
        value = None
    sourcemap.root, sourcemap.root_mark = value, root_mark
    return MarkedDocument(value, sourcemap, problems, aligner.tainted)


def lazy_marks(text: Callable[[], str], value: Any) -> SourceMap:
    """The marks of a document yaml_rs read and the scan vouched for, found when first asked (a
    valid file needs none). A shallow reading marks it down to the entries of `roles`, `users`
    and any other nested block mapping; each is read when a path enters it. A 100,000-user file
    with one mistake then costs a pass over its keys, not a reading of two million nodes."""
    sourcemap = SourceMap(value, "")

    def reveal(node: Any) -> None:
        source = text()
        scanner = _Scanner(source, shallow=node is value)
        # What the scanner misreads stays unmarked: positions fall back to the deepest place known.
        with contextlib.suppress(_Misread, IndexError, AssertionError):
            if node is value:
                sourcemap.text = source
                scanner.stream()
            else:  # an entry the shallow reading left for later (SourceMap.position asks no other)
                i, c = sourcemap.pending.pop(id(node))
                scanner.depth = 2
                scanner.node(c, i, True)
            mark = _Aligner(scanner.events, source, False, sourcemap).node(node, ())
            if node is value:
                sourcemap.root_mark = mark

    sourcemap.reveal = reveal
    return sourcemap


def nesting_depth(value: Any) -> int:
    """How many containers deep `value` goes (iteratively: it may be deep)."""
    deepest, pending = 0, [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _ambiguous(source: str, path: Path) -> str:
    """`off`, `yes`... written plain. The hint is what the field takes: for an enum field, its
    values (quoting `off` would only lead to a second error), else a boolean or a quoted string."""
    from userctl.desired.schema import enum_at

    values = enum_at(path)
    if values:
        takes = f"this field takes one of: {', '.join(values)}"
        return f"'{source}' is ambiguous in YAML (YAML 1.1 reads it as a boolean); {takes}"
    quoted = f'quote it ("{source}") if you meant a string'
    return f"'{source}' is ambiguous in YAML: use true or false; {quoted}"


def describe_kind(value: object) -> str:
    """What a non-string value was read as, for messages ("a number", "null"...)."""
    kinds = ((bool, "a boolean"), ((int, float), "a number"), (dict, "a mapping"), (list, "a list"))
    return (
        "null" if value is None else next((k for t, k in kinds if isinstance(value, t)), "a string")
    )
