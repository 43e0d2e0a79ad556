"""Every file a command takes is read by one bounded reader (desired/reader.read_bounded), and
every instant by one parser (clock.parse_utc) — issue 19, part 6.

An attacker (or an unlucky pipeline) gives a path that never ends (/dev/zero, a FIFO fed
forever), a FIFO nobody writes to, a file one byte over the limit, or an instant at the end of the
calendar; each is one sentence naming the file or the option, exit 1, nothing written, never a
MemoryError, a hang or "unexpected OverflowError"."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, allow_imports, build_org, drop_gone, save_plan, tables
from tests.cli.test_fuzz import SIGNED
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl import clock
from userctl.apply.signing import KEY_FILE_LIMIT
from userctl.desired.reader import MAX_CSV_BYTES, MAX_DOCUMENT_BYTES, MAX_FILE_BYTES
from userctl.plan import compute_digest

MIB = 1024 * 1024

# Every command that takes a file, with the limit its file is held to. `{}` is the path.
FILE_COMMANDS: list[tuple[str, tuple[str, ...], int]] = [
    ("validate", ("validate", "-f", "{}"), MAX_FILE_BYTES),
    ("plan", ("plan", "-f", "{}"), MAX_FILE_BYTES),
    ("apply -f", ("apply", "-f", "{}", "--operator", "root@acme.co", "--yes"), MAX_FILE_BYTES),
    ("apply", ("apply", "{}", "--operator", "root@acme.co", "--yes"), MAX_DOCUMENT_BYTES),
    ("show", ("show", "{}"), MAX_DOCUMENT_BYTES),
    (
        "approve",
        ("approve", "{}", "--operator", "root@acme.co", "--otp-code", "123456", "--yes"),
        MAX_DOCUMENT_BYTES,
    ),
    (
        "review attest",
        ("review", "attest", "{}", "--reviewer", "root@acme.co", "--otp-code", "123456"),
        MAX_DOCUMENT_BYTES,
    ),
    ("review --from", ("review", "--from", "{}"), MAX_DOCUMENT_BYTES),
    ("activity import", ("activity", "import", "{}", "--operator", "root@acme.co"), MAX_CSV_BYTES),
    ("accounts import", ("accounts", "import", "{}", "--operator", "root@acme.co"), MAX_CSV_BYTES),
    ("audit verify --public-key", ("audit", "verify", "--public-key", "{}"), KEY_FILE_LIMIT),
]
IDS = [name for name, _, _ in FILE_COMMANDS]


def args_for(template: tuple[str, ...], path: str) -> list[str]:
    return [path if a == "{}" else a for a in template]


@pytest.fixture
def org(factory: Factory, engine: Engine) -> Org:
    """build_org's organization, its Admin allowed to run both imports: the file is what is
    judged here, not the operator."""
    built = build_org(factory)
    allow_imports(engine, built)
    return built


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Reading a file happens before any database is asked: one backend says it."""
    return str(request.param)


@pytest.mark.parametrize(("name", "template", "limit"), FILE_COMMANDS, ids=IDS)
def test_a_path_that_never_ends_is_refused_at_the_limit(
    engine: Engine, org: Org, runner: Runner, name: str, template: tuple[str, ...], limit: int
) -> None:
    before = tables(engine)
    result = runner(*args_for(template, "/dev/zero"))
    assert result.exit_code == 1, result.output
    assert "/dev/zero:1:1: (document): the " in result.stderr
    assert f"over the {limit // MIB} MiB limit" in result.stderr, result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.output
    assert tables(engine) == before


@pytest.mark.parametrize(("name", "template", "limit"), FILE_COMMANDS, ids=IDS)
def test_a_file_one_byte_over_the_limit_is_refused_from_its_size(
    engine: Engine,
    org: Org,
    runner: Runner,
    tmp_path: Path,
    name: str,
    template: tuple[str, ...],
    limit: int,
) -> None:
    path = tmp_path / "big"
    with path.open("wb") as fh:  # sparse: nothing is written, nothing need be read
        fh.truncate(limit + 1)
    before = tables(engine)
    result = runner(*args_for(template, str(path)))
    assert result.exit_code == 1, result.output
    assert f"{path}:1:1: (document): the " in result.stderr
    assert f"over the {limit // MIB} MiB limit" in result.stderr, result.stderr
    assert tables(engine) == before


@pytest.mark.parametrize("name", ["activity import", "accounts import", "validate"])
def test_a_file_of_exactly_the_limit_is_read(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, name: str
) -> None:
    _, template, limit = next(c for c in FILE_COMMANDS if c[0] == name)
    path = tmp_path / "full"
    with path.open("wb") as fh:
        fh.truncate(limit)
    result = runner(*args_for(template, str(path)))
    # Read, then refused for what it holds (NUL bytes), not for its size.
    assert result.exit_code == 1, result.output
    assert "MiB limit" not in result.stderr and result.stderr.strip()
    assert "unexpected" not in result.stderr and "Traceback" not in result.output


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    yield path


def _userctl(db_url: str, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A separate process: a reader that hangs fails the test by its timeout, not the suite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "userctl", "--database-url", db_url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "template", "limit"),
    [c for c in FILE_COMMANDS if c[0] in ("validate", "activity import", "show", "review --from")],
    ids=["validate", "show", "review --from", "activity import"],
)
def test_a_fifo_nobody_writes_to_does_not_hang(
    db_url: str, org: Org, fifo: Path, name: str, template: tuple[str, ...], limit: int
) -> None:
    result = _userctl(db_url, args_for(template, str(fifo)))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() and "unexpected" not in result.stderr
    assert "Traceback" not in result.stderr


def _feed_forever(path: Path, stop: threading.Event) -> None:
    chunk = b"a" * MIB
    try:
        with path.open("wb") as fh:
            while not stop.is_set():
                fh.write(chunk)
    except (BrokenPipeError, OSError):
        pass  # the reader closed its end: what it should do at its limit


def test_a_fifo_fed_forever_is_refused_at_the_limit(db_url: str, org: Org, fifo: Path) -> None:
    stop = threading.Event()
    writer = threading.Thread(target=_feed_forever, args=(fifo, stop), daemon=True)
    writer.start()
    try:
        result = _userctl(db_url, ["accounts", "import", str(fifo), "--operator", "root@acme.co"])
    finally:
        stop.set()
        # Unblock a writer still waiting to open: open the read end once, then close it.
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        writer.join(timeout=10)
    assert result.returncode == 1, result.stderr
    assert f"{fifo}:1:1: (document): the CSV file is over the {MAX_CSV_BYTES // MIB} MiB limit" in (
        result.stderr
    )


SRC = Path(__file__).resolve().parents[2] / "src" / "userctl"
# What opens or reads a file: outside the bounded reader, only the package's own files (its JSON
# Schemas), a pack's manifest and files that cli/outputs/ checks before it reads them (bounded,
# streamed), and the writers. The next command that takes a file gets the bound instead of
# forgetting it (`--public-key /dev/zero` once filled the memory).
FILE_READS = re.compile(r"\.read_(text|bytes)\(|(?<![\w.])(?<!def )open\(|os\.open\(|fdopen\(")
NOT_A_GIVEN_FILE = re.compile(
    r"SCHEMA_PATH\.read_text|os\.O_WRONLY|[\"']w[\"']|cls\(path, os\.open"
)


def test_only_the_bounded_reader_reads_the_files_a_command_is_given() -> None:
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "desired" / "reader.py"
        and path != SRC / "cli" / "outputs" / "manifests.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FILE_READS.search(line) and not NOT_A_GIVEN_FILE.search(line)
    ]
    assert found == []


# --- instants -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "day_end", "why"),
    [
        ("9999-12-31", True, "outside the calendar"),
        ("0001-01-01T00:00:00+01:00", False, "outside the calendar"),
        ("9999-12-31T23:59:59-00:01", False, "outside the calendar"),
        ("10000-01-01", False, "not an ISO 8601"),
        ("0000-01-01", False, "not an ISO 8601"),
        ("-0001-01-01", False, "not an ISO 8601"),
        ("2026-12-31T23:59:60Z", False, "second must be in 0..59"),
        ("2026-01-01T00:00:00+24:00", False, "not an ISO 8601"),
        ("2026-02-30", False, "day is out of range"),
        ("", False, "not an ISO 8601"),
        ("\x00", False, "not an ISO 8601"),
    ],
)
def test_the_one_parser_says_why_an_instant_cannot_be_read(
    text: str, day_end: bool, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        clock.parse_utc(text, day_end=day_end)


@pytest.mark.parametrize(
    ("text", "day_end", "expected"),
    [
        ("9999-12-30", True, dt.datetime(9999, 12, 31)),
        ("9999-12-31T23:59:59", True, dt.datetime(9999, 12, 31, 23, 59, 59)),
        ("0001-01-01T00:00:00-01:00", False, dt.datetime(1, 1, 1, 1)),
        ("2026-03-01T12:00:00+23:59", False, dt.datetime(2026, 2, 28, 12, 1)),
        ("2026-03-01T12:00:00.999999Z", False, dt.datetime(2026, 3, 1, 12, 0, 0, 999999)),
        ("2026-W09-7", True, dt.datetime(2026, 3, 2)),
    ],
)
def test_the_calendar_ends_that_fit_are_read(
    text: str, day_end: bool, expected: dt.datetime
) -> None:
    assert clock.parse_utc(text, day_end=day_end) == expected


@pytest.mark.parametrize(
    "args",
    [
        ("evidence", "--since", "2026-01-01", "--until", "9999-12-31", "-o", "{out}"),
        (
            "evidence",
            "--since",
            "0001-01-01T00:00:00+01:00",
            "--until",
            "2026-01-01",
            "-o",
            "{out}",
        ),
        ("evidence", "--since", "2026-01-01", "--until", "10000-01-01", "-o", "{out}"),
        ("audit", "log", "--since", "0001-01-01T00:00:00+01:00"),
        ("audit", "log", "--since", "2026-12-31T23:59:60"),
    ],
    ids=["until-9999", "since-underflow", "until-10000", "log-underflow", "log-leap-second"],
)
def test_an_instant_option_out_of_the_calendar_is_an_option_error(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, args: tuple[str, ...]
) -> None:
    out = tmp_path / "pack"
    before = tables(engine)
    result = runner(*(a.replace("{out}", str(out)) for a in args))
    assert result.exit_code == 1, result.output
    option = next(a for a in args if a.startswith("--") and a != "-o" and _bad(args, a))
    assert result.stderr.startswith(f"Error: {option} '"), result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.output
    assert not out.exists() and tables(engine) == before


def _bad(args: tuple[str, ...], option: str) -> bool:
    value = args[args.index(option) + 1]
    return value not in ("2026-01-01",)


def test_an_activity_row_out_of_the_calendar_is_a_problem_at_its_place(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "logins.csv"
    path.write_text(
        "email,last_login_at\n"
        "upd@acme.co,0001-01-01T00:00:00+01:00\n"
        "mover@acme.co,9999-12-31T23:59:59-01:00\n"
        "calm@acme.co,2026-12-31T23:59:60Z\n",
        encoding="utf-8",
    )
    before = tables(engine)
    result = runner("activity", "import", str(path), "--operator", "root@acme.co")
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:2:13: last_login_at: '0001-01-01T00:00:00+01:00' lies ")
    assert lines[1].startswith(f"{path}:3:15: last_login_at: '9999-12-31T23:59:59-01:00' lies ")
    assert lines[2].startswith(f"{path}:4:14: last_login_at: '2026-12-31T23:59:60Z' is not")
    assert tables(engine) == before


def test_a_saved_plan_stamped_outside_the_calendar_is_malformed(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    plan = json.loads(save_plan(engine, drop_gone(engine), tmp_path).read_text(encoding="utf-8"))
    plan["provenance"]["created_at"] = "2026-02-30T00:00:00Z"  # the schema's pattern, no such day
    plan["digest"] = compute_digest({k: plan[k] for k in SIGNED})
    path = tmp_path / "stamped.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    for args in (("show", str(path)), ("apply", str(path), "--operator", "root@acme.co", "--yes")):
        result = runner(*args)
        assert result.exit_code == 1, result.output
        assert "saved plan is malformed" in result.stderr and "day is out of range" in result.stderr


def test_a_desired_state_file_given_as_a_fifo_fed_a_real_file_is_planned(
    engine: Engine, org: Org, db_url: str, tmp_path: Path, fifo: Path
) -> None:
    """A pipe is still a file a command may take (`plan -f <(generate)`): bounded, not refused."""
    data = write_desired(tmp_path / "users.yaml", drop_gone(engine)).read_bytes()

    def feed() -> None:
        with fifo.open("wb") as fh:
            fh.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    result = _userctl(db_url, ["validate", "-f", str(fifo)])
    writer.join(timeout=10)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "data",
    [
        b"- " * 20_000,
        b"users:\n" + b"-\t" * 20_000,
        b"".join(b" " * i + b"a:\r" for i in range(3_000)),
        b"? " * 20_000,
    ],
    ids=["compact-sequences", "tab-separated", "staircase-cr", "complex-keys"],
)
def test_block_nesting_deeper_than_the_fast_parser_survives_is_a_problem(
    db_url: str, tmp_path: Path, data: bytes
) -> None:
    """yaml_rs recursed until the process died (SIGSEGV) on 20,000 levels of block nesting: found
    by tests/cli/test_fuzz_inputs.py. Run in a process of its own, so a crash fails this test."""
    path = tmp_path / "deep.yaml"
    path.write_bytes(data)
    result = _userctl(db_url, ["validate", "-f", str(path)])
    assert result.returncode == 1, (result.returncode, result.stderr[-500:])
    assert result.stderr.startswith(f"{path}:") and "unexpected" not in result.stderr
