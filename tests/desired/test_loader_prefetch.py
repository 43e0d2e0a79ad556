"""loader.prefetching: `userctl plan` reads and starts parsing its file before importing the
database layer. Within the block load_desired(path) uses what was read there, once; outside it,
on another thread, for another path or when the file cannot be read, nothing changes."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

from userctl.desired.loader import load_desired, prefetching
from userctl.errors import InputError, NotFound
from userctl.state import DesiredState

DOC = """version: 1
organization: prefetch-co
roles:
  Ops:
    permissions: [payouts.view]
users:
  ana@prefetch.example:
    first_name: {name}
    last_name: Perez
    id_type: CC
    id_number: "1020304050"
    phone: "+573001112233"
    role: Ops
"""


def _write(path: Path, name: str) -> None:
    path.write_text(DOC.format(name=name), encoding="utf-8")


def _first_name(desired: DesiredState) -> str:
    return desired.users["ana@prefetch.example"].first_name


def test_the_load_in_the_block_uses_the_file_as_read_when_the_block_began(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, "Before")
    with prefetching(path):
        _write(path, "After")  # the prefetch already holds the file's bytes
        assert _first_name(load_desired(path)) == "Before"
        assert _first_name(load_desired(path)) == "After"  # used once: a second load reads again
    assert _first_name(load_desired(path)) == "After"


def test_the_prefetched_load_equals_a_plain_one(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, "Ana")
    plain = load_desired(path)
    with prefetching(path):
        assert load_desired(path) == plain
    with prefetching(str(path)):
        assert load_desired(str(path)) == plain


def test_another_path_in_the_block_is_read_as_always(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    _write(first, "First")
    _write(second, "Second")
    with prefetching(first):
        assert _first_name(load_desired(second)) == "Second"
        assert _first_name(load_desired(first)) == "First"


def test_a_load_on_another_thread_does_not_take_this_threads_prefetch(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, "Before")
    seen: list[str] = []
    with prefetching(path):
        _write(path, "After")
        other = threading.Thread(target=lambda: seen.append(_first_name(load_desired(path))))
        other.start()
        other.join()
        assert _first_name(load_desired(path)) == "Before"
    assert seen == ["After"]


def test_problems_are_reported_as_without_the_block(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(
        DOC.format(name="Ana").replace("role: Ops", "role: Ops\n    role: SuperAdmin"),
        encoding="utf-8",
    )
    with pytest.raises(InputError) as plain:
        load_desired(path)
    with prefetching(path), pytest.raises(InputError) as prefetched:
        load_desired(path)
    assert [str(p) for p in prefetched.value.problems] == [str(p) for p in plain.value.problems]
    assert "role" in str(plain.value.problems[0])


def test_a_file_that_cannot_be_read_is_left_to_the_load(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with prefetching(missing), pytest.raises(NotFound):
        load_desired(missing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError) as plain:
        load_desired(empty)
    with prefetching(empty), pytest.raises(InputError) as prefetched:
        load_desired(empty)
    assert [str(p) for p in prefetched.value.problems] == [str(p) for p in plain.value.problems]


def test_a_directory_is_loaded_as_always(tmp_path: Path) -> None:
    _write(tmp_path / "users.yaml", "Dir")
    with prefetching(tmp_path):
        assert _first_name(load_desired(tmp_path)) == "Dir"


def test_the_collector_is_paused_in_the_block_and_as_before_after_it(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, "Ana")
    assert gc.isenabled()
    with prefetching(path):
        assert not gc.isenabled()
        load_desired(path)
        assert not gc.isenabled()  # the parse thread did not switch it back on
    assert gc.isenabled()
