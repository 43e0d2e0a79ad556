"""Reading a file a command takes: the one bounded reader of every user path (a desired-state
file, a CSV import, a saved plan, a review report), and the desired-state file's own checks, made
before any YAML parser sees its bytes.

Every read stops at its limit plus one byte, whatever the path is: a regular file over the limit
is refused from its size alone, and a device or a pipe (`/dev/zero`, a FIFO fed forever) from
what it gave. A FIFO nobody writes to is opened without waiting and reads as empty: a command
never hangs on the name of a path.

A desired-state file must also be UTF-8 (the message says where the first bad byte is) and hold
something other than whitespace and comments.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import stat
import sys
from typing import Any, Final, Iterator

from userctl.errors import InputError, Problem

_MIB: Final = 1024 * 1024
_FS_ENCODING: Final = sys.getfilesystemencoding()
# 100,000 users with their accounts make a 30 MB desired-state file (DESIGN §6); twice that
# leaves room for comments and long names. A CSV import is held to the same text limit: 100,000
# rows of its widest legal values stay under it.
MAX_FILE_BYTES: Final = 64 * _MIB
MAX_CSV_BYTES: Final = MAX_FILE_BYTES
DESIRED_ADVICE: Final = "split the users across several files in a directory"
# A saved plan or a review report is read whole into memory: a plan of 100,000 users' changes is
# about 150 MB of indented JSON, a review report of them is of the same order.
MAX_DOCUMENT_BYTES: Final = 512 * _MIB
_BOM_BYTES: Final = "\ufeff".encode("utf-8")
# Stops at the first line holding anything else, so it costs nothing on a real file. A byte order
# mark counts as blank: YAML skips one wherever a token may start, so a file of nothing but
# BOMs (the first one is already gone) is no document at all, not a document of nothing.
_BLANK: Final = rb"(?:[ \t\r]|\xef\xbb\xbf)*"
_ONLY_COMMENTS: Final = re.compile(rb"(?:%s(?:#[^\n]*)?\n)*%s(?:#[^\n]*)?" % (_BLANK, _BLANK))


class Source:
    """A file's bytes, checked. The text is decoded when first asked for: the fast parser reads
    the bytes, and a 30 MB file's text takes 60 MB more (two bytes per character as soon as one
    is not Latin-1)."""

    def __init__(self, file: str, read: bytes) -> None:
        self.file = file  # as shown in messages: the path the user gave, or DIR/NAME.yaml
        self.read = read  # as read, for its digest
        self.data = check(read, file)  # UTF-8, without a BOM

    @property
    def digest(self) -> str:
        """The SHA-256 of the very bytes parsed: a plan names the files it was made from so."""
        return "sha256:" + hashlib.sha256(self.read).hexdigest()

    @functools.cached_property
    def text(self) -> str:
        return self.data.decode("utf-8")


def read_source(path: str | os.PathLike[str]) -> Source:
    """The checked content of `path`; raises InputError naming it as given."""
    shown = os.fspath(path)
    try:
        shown.encode(_FS_ENCODING)
    except UnicodeEncodeError:
        # A name read from a directory, its undecodable bytes as lone surrogates: a saved plan
        # records the files it was made from, and could not store this one's name.
        rename = f"this file's name is not {_FS_ENCODING.upper()} text: rename it"
        raise InputError([at_start(shown, rename)]) from None
    data = read_bounded(path, MAX_FILE_BYTES, shown, advice=DESIRED_ADVICE, directory=DIRECTORY)
    return Source(shown, data)


def read_bounded(
    path: str | os.PathLike[str], limit: int, file: str | None = None, **how: Any
) -> bytes:
    """At most `limit` bytes of `path`, the one way a command reads a file it is given: the checks
    and messages of bounded_chunks, the file read at once."""
    with bounded_chunks(path, limit, file, chunk=limit + 1, **how) as chunks:
        return b"".join(chunks)


@contextlib.contextmanager
def bounded_chunks(
    path: str | os.PathLike[str],
    limit: int,
    file: str | None = None,
    *,
    what: str = "file",
    advice: str,
    directory: str = "this is a directory, not a file",
    chunk: int = 1 << 20,
) -> Iterator[Iterator[bytes]]:
    """The content of `path`, `chunk` bytes at a time (a reader need not hold it whole); raises
    InputError naming `file` (default: `path`) when there are more than `limit` bytes, or the path
    cannot be read. `what` names the kind of file in messages, `advice` what to do with one over
    the limit."""
    shown = file if file is not None else os.fspath(path)

    def refused(exc: OSError) -> InputError:
        if exc.errno == errno.ELOOP or exc.errno == errno.ENOENT and os.path.islink(path):
            return InputError([at_start(shown, broken_link(path))])
        unreadable = f"cannot read the {what}: {exc.strerror or exc}"
        return InputError([at_start(shown, directory if exc.errno == errno.EISDIR else unreadable)])

    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, for ever if none comes.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise refused(exc) from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError([at_start(shown, directory)])
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise InputError([too_big(shown, what, limit, advice, info.st_size)])
        # Reads wait for data again: a pipe's writer may be slower than this reader.
        os.set_blocking(fd, True)

        def chunks() -> Iterator[bytes]:
            total = 0
            while True:
                try:
                    # One byte more than allowed tells a file that grew, or a device that never
                    # ends.
                    data = fh.read(min(chunk, limit + 1 - total))
                except OSError as exc:
                    raise refused(exc) from None
                if not data:
                    return
                total += len(data)
                if total > limit:
                    raise InputError([too_big(shown, what, limit, advice)])
                yield data

        yield chunks()


DIRECTORY: Final = (
    "this is a directory, not a file: only the *.yaml files directly in the directory given are "
    "read; rename it so that its name does not end in .yaml, or move it out"
)


def broken_link(path: str | os.PathLike[str]) -> str:
    """Why `path`, a symbolic link, cannot be read: it points to nothing, or round in a loop (where
    "does not exist" would send the reader looking for a file that is there)."""
    try:
        target: str | None = os.readlink(path)
    except OSError:
        target = None  # not a link itself: a directory on the way to it is the loop, or it is gone
    try:
        os.stat(path)
        looped = False
    except OSError as exc:
        looped = exc.errno == errno.ELOOP
    fix = "; fix the link or remove it"
    if looped and target is not None:
        never = "and following the links never reaches a file"
        return f"this is a symbolic link loop: it points to {target}, {never}{fix}"
    if looped:
        return f"this path runs through a symbolic link loop{fix}"
    if target is not None:
        return f"this is a broken link: it points to {target}, which does not exist{fix}"
    return "this file went away while it was being read; run the command again"


def at_start(file: str, message: str) -> Problem:
    """A problem with the file as a whole, placed at its start so that FILE:LINE:COL still holds."""
    return Problem(message, file=file, line=1, col=1)


def check(data: bytes, file: str) -> bytes:
    """`data` less a BOM, once known to be UTF-8 and not empty."""
    if not data.isascii():
        try:
            data.decode("utf-8")  # the check only: yaml_rs would silently replace a bad byte
        except UnicodeDecodeError as exc:
            raise InputError([_not_utf8(data, exc.start, file)]) from None
    data = data.removeprefix(_BOM_BYTES)
    if _ONLY_COMMENTS.fullmatch(data):
        empty = "the file is empty (only whitespace or comments); it must declare version and "
        raise InputError([at_start(file, empty + "organization")])
    return data


def too_big(file: str, what: str, limit: int, advice: str, size: int | None = None) -> Problem:
    """The one sentence for a file over its limit (a desired-state text too, that `export` would
    write): a device or a pipe has no size to show."""
    shown = "" if size is None else f" {size / _MIB:.1f} MiB,"
    return at_start(file, f"the {what} is{shown} over the {limit // _MIB} MiB limit; {advice}")


def _not_utf8(data: bytes, start: int, file: str) -> Problem:
    line_start = data.rfind(b"\n", 0, start) + 1
    line = data.count(b"\n", 0, start) + 1
    col = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
    return Problem(
        f"the file is not UTF-8: byte 0x{data[start]:02x} at line {line}, column {col} cannot be "
        "decoded; save the file as UTF-8",
        file=file,
        line=line,
        col=col,
    )
