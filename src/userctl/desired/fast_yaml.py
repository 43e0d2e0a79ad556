"""yaml_rs (Rust), the one reading of every file: what is valid YAML and what each value is.
It reports no marks and no scalar styles, and it accepts what the format refuses (anchors,
aliases, tags, `True`/`yes`-style words, control characters). Rather than mark every file,
`scan` looks for anything that could introduce them; a hit sends the file to the marked
reader (strict_yaml), which lays its marks and styles over yaml_rs's value. False alarms only cost
time; a miss would be a bug, so the tests run both paths over every fixture and the YAML test
suite and require the same verdict. The same look tells what the strings leave to check for the
characters refused in them (characters.check).

The scan works on the raw bytes with C-speed primitives (one `translate` finds every watched
byte; regexes start with a literal so that they jump between candidates): a regex starting with
a character class crawls through a 30 MB file.
"""

from __future__ import annotations

import enum
import re
import threading
from typing import Any, Final, NamedTuple

# Imported here, on the thread importing the loader, never first on a parse thread: yaml_rs 0.1.6
# crashes (SIGSEGV) in any later call once the thread that first imported it has ended.
import yaml_rs

from userctl.errors import Problem
from userctl.gcpause import gc_paused

# Bytes worth a look: C0 controls and DEL (YAML refuses them, yaml_rs does not); the indicators
# & (anchor), * (alias), ! (tag), ? (complex key), < (merge key <<), tab, % (directive); lead bytes
# of multi-byte suspects: \xc2 (C1 controls, NEL), \xe2 (line/paragraph separators), \xef (BOM,
# U+FFFE/FFFF); | and > (see _ODD_BLOCK). `${` concerns the strings (the screen), not YAML.
_CONTROLS: Final = frozenset(bytes(range(0x09)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20)) + b"\x7f")
_INDICATORS: Final = frozenset(b"&*!?<\t")
_WATCHED: Final = _CONTROLS | _INDICATORS | frozenset(b"%\xc2\xe2\xef|>")
# Bytes that cannot bring a refused character into any value: printable ASCII and the line feed,
# less the backslash (a double-quoted escape can spell anything); a false alarm costs a walk.
_INERT: Final = frozenset(range(0x20, 0x7F)) - frozenset(b"\\") | frozenset(b"\n")
_PLAIN: Final = bytes(b for b in range(256) if b in _INERT and b not in _WATCHED)
# The UTF-8 of U+00C0..U+027F (the letters of Latin-1, Latin Extended-A and -B: every accented
# name of the languages this product serves): lead bytes 0xC3-0xC9 and continuation bytes. None of
# these characters is refused, each is NFC, and none composes with its neighbour, ASCII or not
# (test_loader_characters proves all three), so text made of them and ASCII is NFC.
LATIN_BYTES: Final = frozenset(range(0x80, 0xC0)) | frozenset(range(0xC3, 0xCA))
# Where a line holds nothing but spaces, a multi-line scalar folds the line break into a line feed
# (one alone folds into a space). One literal-led pattern finds such a line after an LF or a CRLF;
# a file breaking lines with a lone CR is walked instead (an alternation would make it crawl).
_BLANK_LINE: Final = re.compile(rb"\n *+[\r\n]")
_LONE_CR: Final = re.compile(rb"\r(?!\n)")
_SECOND_LOOK: Final = {
    ord("%"): re.compile(rb"(?:\A|\n)%"),  # a directive starts a line
    0xC2: re.compile(rb"\xc2[\x80-\x9f]"),
    0xE2: re.compile(rb"\xe2\x80[\xa8\xa9]"),
    0xEF: re.compile(rb"\xef(?:\xbb\xbf|\xbf[\xbe\xbf])"),
}
# `|` or `>` where a node starts is a block scalar's header, which ends its line: followed by text
# (`{first_name: >Bob}`) it is an indicator YAML forbids there, which yaml_rs takes as text.
_ODD_BLOCK: Final = re.compile(rb"[|>][-+0-9]*+[ \t]*+[^\s#]")
# Any `|` or `>` there is a block scalar's header: the block keeps its line breaks. Anywhere else
# (`a > b`, a comment's `userctl schema > file`) it is a character like any other.
_BLOCK_HEADER: Final = re.compile(rb"[|>]")
_NODE_START: Final = frozenset(b":,[{-?\n\r")
_LINE_BREAK: Final = re.compile(rb"[\r\n]")
_LONGEST_COMMENT: Final = 512
# An indicator matters only where a node starts: after a line's indentation, after ': ', '- ',
# '? ', or a flow bracket or comma. Inside a scalar ("R&D", "Ruiz & Co", "Admin!") it is text.
_TOKEN_START: Final = rb"[ ]*+(?:[&*!?\t]|<<)"
_INDICATOR_AT_NODE: Final = re.compile(rb"[:\-?,\[{\n]" + _TOKEN_START)
_INDICATOR_AT_START: Final = re.compile(_TOKEN_START)

# An ambiguous boolean (strict_yaml.AMBIGUOUS_BOOLEANS, spelt out for speed; a test compares) as
# a whole plain scalar: a mapping value, a block-sequence entry, a flow-collection entry, or
# anything starting a line (a key, or a value on a line of its own). Possessive quantifiers keep
# each attempt to one try.
_WORDS: Final = r"y(?:es)?|Y(?:es|ES)?|no?|N[oO]?|o(?:n|ff)|O(?:n|N|ff|FF)|True|TRUE|False|FALSE"
_END: Final = r"[ \t]*+(?:[\r\n#,\]}:]|\Z)"
_AMBIGUOUS: Final = tuple(
    re.compile(rf"{start}(?:{_WORDS}){_END}".encode())
    for start in (r":\s*+", r"-\s++", r"\[\s*+", r"\{\s*+", r",\s*+", r"\n[ ]*+", r"\r[ ]*+")
)
_AMBIGUOUS_AT_START: Final = re.compile(rf"[ ]*+(?:{_WORDS}){_END}".encode())
# Their first look, one pass over a shape: blanks, `,:[]{}` and line breaks read `:`, initials `!`.
_SHAPE: Final = bytes.maketrans(b"\t\n\v\f\r ,:[]{}yYnNoOTF", b":" * 12 + b"!" * 8)
_WORD_SHAPES: Final = re.compile(rb":!(?:!{0,2}|es|ES|ff|rue|RUE|alse|ALSE)(?=[:#]|\Z)")
_BLANKS: Final = re.compile(rb"[ \t]*+")  # from a word's end to where the seven would end it


class Screen(enum.Enum):  # what a document's strings leave to check for refused characters
    CLEAN = enum.auto()  # no string can hold a refused character
    EMAILS = enum.auto()  # only an email can: it holds a letter of LATIN_BYTES, fine anywhere else
    WALK = enum.auto()  # every string must be looked at


class Scan(NamedTuple):
    suspect: bool  # the precise parser must read the file: yaml_rs's value cannot be trusted
    screen: Screen


def scan(data: bytes) -> Scan:
    """What `data` (a document's UTF-8, already checked) tells before any parse of it.

    Without escapes and block scalars, a string holds the characters of the text it was read
    from, with single line breaks folded into spaces: when that text holds only ASCII and Latin
    letters, and no `${` nor blank line that would fold into a line feed, no string can be refused,
    except an email for being non-ASCII. One `translate` and a few searches over the bytes, instead
    of a walk over every string of the file."""
    found = set(data.translate(None, _PLAIN))
    blocks = ord("|") in found or ord(">") in found
    suspect = bool(
        found & _CONTROLS
        or any(look.search(data) for byte, look in _SECOND_LOOK.items() if byte in found)
        or (blocks and uncommented(data, _ODD_BLOCK, node_start=True))
        # an anchor, alias, tag, complex key, merge key or tab where a node starts
        or (found & _INDICATORS and _INDICATOR_AT_START.match(data))
        or (found & _INDICATORS and uncommented(data, _INDICATOR_AT_NODE))
        or _AMBIGUOUS_AT_START.match(data)  # a plain ambiguous boolean
        or any(  # a word's shape outside comments, then the seven, one by one
            not _in_comment(data, min((_BLANKS.match(data, hit.end()) or hit).end(), len(data) - 1))
            for hit in _WORD_SHAPES.finditer(data.translate(_SHAPE))
        )
        and any(uncommented(data, p) for p in _AMBIGUOUS)
    )
    rest = found - _INERT - {ord("\r")}  # what a string may hold beyond ASCII
    walk = (
        not rest <= LATIN_BYTES
        or _BLANK_LINE.search(data)
        or (b"{" in data and b"${" in data)  # one byte's search first: most files hold no {
        or (ord("\r") in found and _LONE_CR.search(data))
        or (blocks and uncommented(data, _BLOCK_HEADER, node_start=True))
    )
    return Scan(suspect, Screen.WALK if walk else Screen.EMAILS if rest else Screen.CLEAN)


def uncommented(data: bytes, pattern: re.Pattern[bytes], *, node_start: bool = False) -> bool:
    """Whether `pattern` matches outside comments; `node_start`: somewhere a node can start, at the
    start of the text or of a line's content, or after `:`, `,`, `[`, `{`, `-` or `?` and blanks.
    Elsewhere (inside a scalar) an indicator is text."""
    at = 0
    while (match := pattern.search(data, at)) is not None:
        i, last, at = match.start(), match.end() - 1, match.end()
        while node_start and i and data[i - 1] in b" \t":
            i -= 1
        if not node_start or not i or data[i - 1] in _NODE_START:
            if not _in_comment(data, last):
                return True
            # The rest of the line is comment too, unless a quote there could end a quoted
            # scalar that held the '#': then it is looked at hit by hit.
            line_break = _LINE_BREAK.search(data, last)
            end = line_break.start() if line_break is not None else len(data)
            if data.find(b'"', last, end) == data.find(b"'", last, end) == -1:
                at = end
    return False


def _in_comment(data: bytes, at: int) -> bool:
    """Whether the byte at `at` stands after a `#` that starts a comment on its line (at the
    line's start or after a blank), with no quote before it there: outside a quoted scalar that
    `#` is a comment's, and inside one (open since an earlier line) so is the byte, which is text
    either way. A comment never changes the data: `# owner: *team*` must not cost the marked
    reading of a valid file. A line longer than _LONGEST_COMMENT is not looked into (the marked
    reader judges it), so that no file makes the scan slow."""
    floor = max(0, at - _LONGEST_COMMENT)
    start = max(data.rfind(b"\n", floor, at), data.rfind(b"\r", floor, at)) + 1
    line = data[start:at]
    return (
        (start > 0 or floor == 0)
        and b'"' not in line
        and b"'" not in line
        and (line.startswith(b"#") or b" #" in line or b"\t#" in line)
    )


class Read(NamedTuple):
    """yaml_rs's reading of a document: `value`, its root (any type); `accepted` when it read the
    text as YAML; else `refusal` says where, if yaml_rs said so. `duplicates`: it refused a
    repeated key (without saying where), and `value` then keeps the first of each. `trusted`
    (parse_fast): nothing in the bytes concerns the format's rules on how YAML is written, so
    that the value needs no marked reading; `screen`: what its strings leave to check."""

    value: Any
    refusal: Problem | None
    accepted: bool
    duplicates: bool = False
    trusted: bool = False
    screen: Screen = Screen.WALK


def parse_fast(data: bytes, started: BackgroundParse | None = None) -> Read:
    """yaml_rs's reading of the document (UTF-8 already checked), and whether the scan trusts it.
    `started`: the parse of these very bytes, begun earlier (the loader's prefetch).

    yaml_rs releases the GIL while it parses (it holds it again to build the Python objects), so
    it parses on a second thread while the scan, pure-Python regexes, runs on this one."""
    assert started is None or started.data is data, "a prefetched parse is of the same bytes"
    with gc_paused():  # before the thread starts: see BackgroundParse
        parse = started if started is not None else BackgroundParse(data)
        suspect, screen = scan(data)
        read_ = parse.outcome()
    trusted = not suspect and read_.accepted and isinstance(read_.value, dict)
    return read_._replace(trusted=trusted, screen=screen)


class BackgroundParse(threading.Thread):
    """read(data) on a thread of its own; outcome() waits for it, and re-raises here
    whatever it raised there. Not a daemon thread: one left running when the process ends (an
    error before its result was wanted) is waited for, not stopped inside yaml_rs's Rust code.

    Start it with the collector paused (gcpause.gc_paused): read, finding it enabled,
    would switch it off and on again from the other thread, under the feet of this one."""

    def __init__(self, data: bytes) -> None:
        super().__init__(name="userctl-yaml-parse")
        self.data = data
        self.start()

    def run(self) -> None:
        try:
            self._outcome: Read | BaseException = read(self.data)
        except BaseException as exc:  # handed over to the waiting thread, which raises it
            self._outcome = exc

    def outcome(self) -> Read:
        self.join()
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome


# yaml_rs recurses once per level of block nesting, with no limit of its own: 20,000 levels
# ("- - - ...", or a key indented one column more on each line) crash the process (flow nesting
# it caps itself). A block node stands right of its parent, or at its column for a sequence under
# a key, so a document whose lines all start with fewer than this many columns of indentation
# and block indicators is under 2 * 256 + 2 levels deep: thousands fewer than yaml_rs survives.
# Deeper ones go to the marked reader, which refuses them past MAX_DEPTH.
_DEEP_BLOCK_COLUMNS: Final = 256
# What may stand before a block node on its line (indentation, `- `, `? `, `: `) becomes a space
# and a line break a newline: the test is then two searches for a fixed string, which need no
# regex engine.
_PREFIX_AS_SPACE: Final = bytes(
    32 if byte in b" \t?:-" else 10 if byte == 13 else byte for byte in range(256)
)
_DEEP_RUN: Final = b" " * _DEEP_BLOCK_COLUMNS


def maybe_too_deep(data: bytes) -> bool:
    """Whether a line of `data` starts far enough right to nest blocks deeper than yaml_rs can
    parse without crashing; false alarms only cost the marked reading."""
    shape = data.translate(_PREFIX_AS_SPACE)
    return shape.startswith(_DEEP_RUN) or shape.find(b"\n" + _DEEP_RUN) != -1


# yaml_rs's syntax errors: "YAML parse error at line 2, column 7", the text quoted, then the reason.
_AT: Final = re.compile(r"at line (\d+), column (\d+)")
_DUPLICATE: Final = "duplicate mapping key"


def read(data: bytes, *, guarded: bool = True) -> Read:
    """yaml_rs's reading of `data`. `guarded`: not run on a document that could nest deeper than
    yaml_rs survives (not accepted, no refusal: the marked reader measures the depth first)."""
    if guarded and isinstance(data, bytes) and maybe_too_deep(data):
        return Read(None, None, False)
    duplicates = False
    for policy in (yaml_rs.DuplicateKeyPolicy.Error, yaml_rs.DuplicateKeyPolicy.FirstWins):
        try:
            with gc_paused():  # a parse allocates millions of objects that all survive
                # load() takes bytes (a str would be a file name); it replaces bad UTF-8
                # silently, which is why the reader checks it first.
                value = yaml_rs.load(data, parse_datetime=False, duplicate_key_policy=policy)
            return Read(value, None, not duplicates, duplicates)
        except yaml_rs.YAMLDecodeError as exc:
            if duplicates or not str(exc).startswith(_DUPLICATE):
                return Read(None, _refusal(str(exc), data), False)
            duplicates = True  # read again keeping the first of each: the marked reader says where
        except (ValueError, RecursionError, TypeError):
            break
    return Read(None, None, False)


def _refusal(message: str, data: bytes) -> Problem | None:
    at = _AT.search(message)
    if at is None:
        return None
    line, col = int(at.group(1)), int(at.group(2))
    reason = message.rstrip().rpartition("\n")[2].strip()
    text = data.split(b"\n", line)[line - 1 : line]
    if text and text[0][col - 1 : col] == b"\t" or text and text[0].lstrip(b" ")[:1] == b"\t":
        reason += "; indent with spaces, not tabs"
    return Problem(f"YAML syntax error: {reason}", line=line, col=col)
