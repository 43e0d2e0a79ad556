"""Marks for a document yaml_rs read and the scan vouched for, computed piece by piece.

A 100,000-user file with one mistake should not cost a marked reading of all of it (seconds: two
million nodes). A problem needs marks only around its own entry, so the text is cut where a
block-style document can be cut: top-level keys start at column 0, and the entries of `roles` and
`users` start at one common indentation. Each piece is read with marks on its own, keeping its
original lines and columns, and used only if its nodes line up with the value yaml_rs read for
that part; anything else (flow style, document markers, odd indentation) falls back to marking
the whole file. Both ways give the same positions: the loader tests compare them on every fixture.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from userctl.desired.fast_yaml import Read
from userctl.desired.sourcemap import SourceMap, resolve_key
from userctl.desired.strict_yaml import parse_marked
from userctl.errors import Path

_TOP_LEVEL: Final = re.compile(r"\n(?=[^ \t\r\n#])")
_REST_OF_KEY_LINE: Final = re.compile(r"[ \t]*(?:#[^\n]*)?\r?\n")
_FIRST_INDENT: Final = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\r?\n)*( +)[^ \t\r\n#]")


class _Cut(Exception):
    """The text cannot be cut here with certainty: mark the whole document instead."""


class _Piece:
    """A run of whole lines of the text, parsed with marks on its own."""

    def __init__(
        self, text: str, start: int, end: int, first_line: int, expected: dict[str, Any]
    ) -> None:
        # Laid over the value read for that part: a piece cut wrong does not line up with it.
        marked = parse_marked(text[start:end], read=Read(expected, None, True))
        if marked.problems:
            raise _Cut()
        self.sourcemap = marked.sourcemap
        self.first_line = first_line

    def position(self, path: Path, key: bool) -> tuple[int, int]:
        line, col = self.sourcemap.position(path, key=key)
        return line + self.first_line - 1, col


class _Section:
    """One top-level key: its lines, and (for a mapping) where each of its entries starts."""

    def __init__(self, key: str, start: int, end: int, line: int) -> None:
        self.key, self.start, self.end, self.line = key, start, end, line
        self.entries: list[tuple[int, int]] | None = None  # (offset, line) of each entry
        self.index: dict[str, int] | None = None


class SlicedSourceMap:
    """The SourceMap interface (position, value, source_text) over a fast-parsed document."""

    def __init__(self, text: str | Callable[[], str], value: dict[str, Any]) -> None:
        self._get_text = text if callable(text) else (lambda: text)
        self.root = value
        self._whole: SourceMap | None = None
        self._pieces: dict[tuple[str, ...], _Piece] = {}
        self._folded: dict[int, dict[str, str]] = {}
        self._sections: list[_Section] | None = None
        self._uncuttable = False

    @property
    def _text(self) -> str:
        return self._get_text()

    # -- the SourceMap interface ------------------------------------------------------------------

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        try:
            return self._position(path, key)
        except _Cut:
            return self._marked_whole().position(path, key=key)

    def value(self, path: Path) -> Any:
        node: Any = self.root
        for step in path:
            if isinstance(node, dict) and isinstance(step, str):
                real = self._real_key(node, step)
                if real is None:
                    return None
                node = node[real]
            elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
                node = node[step]
            else:
                return None
        return node

    def source_text(self, path: Path) -> str | None:
        try:
            piece, inner = self._piece_for(path)
            return piece.sourcemap.source_text(inner)
        except _Cut:
            return self._marked_whole().source_text(path)

    # -- cutting ----------------------------------------------------------------------------------

    def _position(self, path: Path, key: bool) -> tuple[int, int]:
        if not path:
            first = self._top_sections()[0]
            return first.line, 1
        section = self._section(path[0])
        if len(path) == 1 and key:
            return section.line, 1
        piece, inner = self._piece_for(path)
        return piece.position(inner, key)

    def _piece_for(self, path: Path) -> tuple[_Piece, Path]:
        """The parsed piece holding `path`, and the path inside it."""
        if not path:
            raise _Cut()
        section = self._section(path[0])
        value = self.root[section.key]
        if len(path) >= 2 and isinstance(value, dict) and isinstance(path[1], str):
            entry = self._real_key(value, path[1])
            if entry is None:
                raise _Cut()
            piece = self._pieces.get((section.key, entry))
            if piece is None:
                start, end, line = self._entry(section, value, entry)
                piece = self._pieces[(section.key, entry)] = _Piece(
                    self._text, start, end, line, {entry: value[entry]}
                )
            return piece, (entry, *path[2:])
        piece = self._pieces.get((section.key,))
        if piece is None:
            piece = self._pieces[(section.key,)] = _Piece(
                self._text, section.start, section.end, section.line, {section.key: value}
            )
        return piece, (section.key, *path[1:])

    def _top_sections(self) -> list[_Section]:
        # Cut on first use: a valid document never needs it.
        if self._sections is None and not self._uncuttable:
            try:
                self._sections = self._cut_top_level()
            except _Cut:
                self._uncuttable = True
        if self._sections is None:
            raise _Cut()
        return self._sections

    def _section(self, key: str | int) -> _Section:
        for section in self._top_sections():
            if section.key == key:
                return section
        raise _Cut()

    def _cut_top_level(self) -> list[_Section]:
        text = self._text
        starts = [0] if text[:1] not in ("", " ", "\t", "\r", "\n", "#") else []
        starts += [m.start() + 1 for m in _TOP_LEVEL.finditer(text)]
        keys = list(self.root)
        if len(starts) != len(keys):
            raise _Cut()
        sections = []
        line = 1
        previous = 0
        for i, (start, key) in enumerate(zip(starts, keys)):
            line += text.count("\n", previous, start)
            previous = start
            end = starts[i + 1] if i + 1 < len(starts) else len(text)
            sections.append(_Section(key, start, end, line))
        return sections

    def _entry(self, section: _Section, value: dict[str, Any], entry: str) -> tuple[int, int, int]:
        """(start offset, end offset, first line) of one entry of a block mapping section."""
        if section.entries is None:
            entries = self._cut_entries(section)
            section.entries = entries if len(entries) == len(value) else []
        if len(section.entries) != len(value):
            raise _Cut()
        if section.index is None:
            section.index = {k: i for i, k in enumerate(value)}
        i = section.index[entry]
        start, line = section.entries[i]
        end = section.entries[i + 1][0] if i + 1 < len(section.entries) else section.end
        return start, end, line

    def _cut_entries(self, section: _Section) -> list[tuple[int, int]]:
        text = self._text
        colon = text.find(":", section.start, section.end)
        rest = _REST_OF_KEY_LINE.match(text, colon + 1, section.end) if colon >= 0 else None
        indent = _FIRST_INDENT.match(text, rest.end(), section.end) if rest else None
        if rest is None or indent is None:
            raise _Cut()  # a value on the key's line (flow style), or no indented block
        width = len(indent.group(1))
        starts = re.compile(rf"\n {{{width}}}(?=[^ \t\r\n#])")
        entries: list[tuple[int, int]] = []
        line = section.line
        previous = section.start
        for match in starts.finditer(text, rest.end() - 1, section.end):
            offset = match.start() + 1
            line += text.count("\n", previous, offset)
            previous = offset
            entries.append((offset, line))
        return entries

    def _real_key(self, node: dict[str, Any], step: str) -> str | None:
        return resolve_key(node, step, self._folded)

    def _marked_whole(self) -> SourceMap:
        if self._whole is None:
            self._whole = parse_marked(self._text, read=Read(self.root, None, True)).sourcemap
        return self._whole
