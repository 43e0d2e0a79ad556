"""parse_fast runs yaml_rs on a second thread while the pre-scan runs: a suspicious file's value
is not trusted (the marked reader reads it too), and what the parse raises reaches the caller."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from userctl.desired import fast_yaml

ALIASED = b"a: &x b\nc: *x\n"


def test_a_suspicious_file_is_not_trusted_even_though_yaml_rs_reads_it() -> None:
    assert fast_yaml.read(ALIASED).value == {"a": "b", "c": "b"}  # yaml_rs alone would accept it
    assert fast_yaml.scan(ALIASED).suspect
    assert not fast_yaml.parse_fast(ALIASED).trusted


def test_a_clean_file_gives_the_value_of_yaml_rs() -> None:
    data = (
        b"version: 1\norganization: acme\nusers:\n"
        b"  a@x.co:\n    id_number: '0123'\n    status: active\n"
    )
    assert fast_yaml.parse_fast(data) == fast_yaml.Read(
        {
            "version": 1,
            "organization": "acme",
            "users": {"a@x.co": {"id_number": "0123", "status": "active"}},
        },
        None,
        accepted=True,
        trusted=True,
        screen=fast_yaml.Screen.CLEAN,
    )


def test_yaml_rs_says_where_it_refuses_the_text() -> None:
    read = fast_yaml.parse_fast(b'a: 1\nb: "x"#c\n')
    assert (read.value, read.trusted, read.accepted) == (None, False, False)
    assert read.refusal is not None and (read.refusal.line, read.refusal.col) == (2, 7)
    assert read.refusal.message == (
        "YAML syntax error: comments must be separated from other tokens by whitespace"
    )


def test_what_the_parse_raises_on_its_thread_is_raised_to_the_caller() -> None:
    # read turns yaml_rs's own errors into a refusal; anything else must not be lost on
    # the other thread. yaml_rs reads a file-like object: this one fails as it is read.
    class Broken(Exception):
        pass

    class Unreadable:
        def read(self, *args: object) -> bytes:
            raise Broken("read failed")

    with pytest.raises(Broken, match="read failed"):
        fast_yaml.BackgroundParse(Unreadable()).outcome()  # type: ignore[arg-type]


def test_no_parse_thread_outlives_the_call() -> None:
    fast_yaml.parse_fast(ALIASED)
    fast_yaml.parse_fast(b"a: 1\n")
    assert not [t for t in threading.enumerate() if t.name == "userctl-yaml-parse"]


def test_many_loads_each_on_a_new_parse_thread_in_a_fresh_process(tmp_path: Path) -> None:
    # yaml_rs 0.1.6 crashes once the thread that first imported it has ended; each load parses on
    # a thread of its own, so fast_yaml imports yaml_rs itself, on the importing thread.
    path = tmp_path / "users.yaml"
    path.write_text("version: 1\norganization: acme\nroles: {}\nusers: {}\n", encoding="utf-8")
    script = (
        "import sys\n"
        "from userctl.desired.loader import load_desired\n"
        "assert 'yaml_rs' in sys.modules\n"
        "for _ in range(40):\n"
        "    assert load_desired(sys.argv[1]).organization == 'acme'\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr[-2000:]
