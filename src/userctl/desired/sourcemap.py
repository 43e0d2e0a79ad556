"""Where each part of a parsed document came from: path -> (line, column).

Built by the marked reader over yaml_rs's value, and only when a problem has to be located. It is
kept compact because a 100,000-user file has over a million entries: each container's marks are
one array of offsets into the text in the order of the container (a Python dict keeps the order
in which the parser inserted the keys), turned into a line and column, and a key's index looked
up, only when a location is asked for.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from typing import Any

from userctl.errors import Path


def resolve_key(
    node: dict[str, Any], step: str, folded_by_node: dict[int, dict[str, str]]
) -> str | None:
    """The key of `node` that path step `step` names. Paths from the planner carry emails
    lower-cased; the file may spell them otherwise. `folded_by_node` caches each mapping's
    lower-cased keys for the map's lifetime (the document it maps is never changed)."""
    if step in node:
        return step
    folded = folded_by_node.get(id(node))
    if folded is None:
        folded = folded_by_node[id(node)] = {k.lower(): k for k in node if isinstance(k, str)}
    return folded.get(step.lower())


class SourceMap:
    """Marks of one document. Mappings store (key mark, value mark) per entry, sequences one mark
    per item; `raw` keeps the source text of plain scalars read as numbers or null, so that a
    message can quote what the author wrote (`0123456`, not 123456). `place` turns an offset
    into a line and column; `reveal`, when set, marks a container on first use (see
    strict_yaml.lazy_marks), and `pending` holds what it has yet to mark."""

    def __init__(self, root: Any, root_mark: int, place: Callable[[int], tuple[int, int]]) -> None:
        self.root, self.root_mark, self.place = root, root_mark, place
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
        mark = self.root_mark
        node = self.root
        for i, step in enumerate(path):
            found = self._child(node, step)
            if found is None:
                break
            index, child = found
            if self.reveal is not None and id(node) in self.pending:
                self.reveal(node)
            marks = self.marks.get(id(node))
            if marks is None:  # inside an alias's value, which has no marks of its own
                break
            if isinstance(node, dict):
                last = i == len(path) - 1
                mark = marks[2 * index] if key and last else marks[2 * index + 1]
            else:
                mark = marks[index]
            node = child
        return self.place(mark)

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
        parent = self.value(path[:-1])
        if not isinstance(parent, (dict, list)):
            return None
        step = path[-1]
        if isinstance(parent, dict) and isinstance(step, str):
            step = self._resolve_key(parent, step) or step
        return self.raw.get((id(parent), step))

    def _child(self, node: Any, step: str | int) -> tuple[int, Any] | None:
        if isinstance(node, dict) and isinstance(step, str):
            real = self._resolve_key(node, step)
            if real is None:
                return None
            return self._index(node)[real], node[real]
        if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            return step, node[step]
        return None

    def _resolve_key(self, node: dict[str, Any], step: str) -> str | None:
        return resolve_key(node, step, self._folded)

    def _index(self, node: dict[str, Any]) -> dict[str, int]:
        index = self._indexes.get(id(node))
        if index is None:
            index = self._indexes[id(node)] = {k: i for i, k in enumerate(node)}
        return index


def iter_prefixes(path: Path) -> Iterable[Path]:
    for i in range(len(path) + 1):
        yield path[:i]


Marks = SourceMap  # what locating a problem needs
