"""`userctl.hexdigest.matches`, the question `audit verify` asks of every event, answered in C
(`userctl._sha256`, built where a compiler and OpenSSL's headers are) exactly as the definition
answers it with hashlib; and the package installs without the extension where it cannot be
built (tests/core/test_chain.py runs the chain's scan with each)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import in_ci
from userctl import hexdigest

ROOT = Path(__file__).resolve().parents[2]


def accelerated() -> Callable[[bytes, object], bool]:
    if not hexdigest.ACCELERATED:
        if in_ci():
            pytest.fail("userctl._sha256 was not built (CI installs gcc and libssl-dev)")
        pytest.skip("userctl._sha256 was not built here (no C compiler or OpenSSL headers)")
    from userctl._sha256 import matches

    return matches


def test_ci_builds_the_extension() -> None:
    """Where CI runs, the benchmark and every chain test use the C answer: a build that lost it
    (a missing header, a renamed module) fails here instead of going quietly slower."""
    assert accelerated() is hexdigest.matches


def _stored_forms(digest: str) -> st.SearchStrategy[Any]:
    """What a stored hash column may hold, given the payload's real digest: the digest itself,
    and every way of being nearly it."""
    return st.one_of(
        st.just(digest),
        st.integers(0, 63).map(
            lambda i: digest[:i] + ("0" if digest[i] != "0" else "1") + digest[i + 1 :]
        ),
        st.just(digest.upper()),
        st.just(digest[:-1]),
        st.just(digest + "0"),
        st.just(digest[:-1] + "é"),  # 64 characters, not ASCII
        st.just(digest.encode()),
        st.just(bytes.fromhex(digest)),
        st.none(),
        st.just(int(digest, 16)),
        st.text(max_size=70),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    )


# Payloads of any length, and the lengths where SHA-256's padding takes a block of its own.
_payloads = st.one_of(
    st.binary(max_size=2000), st.sampled_from([b"", b"x" * 55, b"x" * 56, b"x" * 64])
)


@settings(max_examples=500, deadline=None)
@given(_payloads, st.data())
def test_the_c_answer_is_the_definitions(payload: bytes, data: st.DataObject) -> None:
    """For any payload and anything a hash column may hold, the C answer is hashlib's; the real
    digest matches, and the digest differing in one place, in case, in length or as bytes does
    not."""
    matches = accelerated()
    digest = hashlib.sha256(payload).hexdigest()
    stored = data.draw(_stored_forms(digest))
    assert matches(payload, stored) is hexdigest.matches_by_hashlib(payload, stored)
    assert matches(payload, stored) is (stored == digest)
    assert matches(payload, digest) is True


def test_the_c_answer_refuses_what_hashlib_refuses() -> None:
    """A payload that is not bytes is a caller's mistake, raised as hashlib raises it."""
    matches = accelerated()
    for wrong in ("text", None, 5):
        with pytest.raises(TypeError):
            matches(wrong, "0" * 64)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            hexdigest.matches_by_hashlib(wrong, "0" * 64)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        matches(b"x")  # type: ignore[call-arg]


def test_the_package_installs_without_a_compiler(tmp_path: Path) -> None:
    """No C compiler (CC names a command that fails): the wheel still builds, without the
    extension, and its `hexdigest` answers by hashlib. (From a copy of the sources: the editable
    install left its extension built in place in src/.)"""
    source = tmp_path / "source"
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("*.so", "*.egg-info", "__pycache__"),
    )
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env = {**os.environ, "CC": "false", "LDSHARED": "false"}
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(source),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("userctl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "userctl/hexdigest.py" in names and "userctl/_sha256.pyi" in names
    assert not [n for n in names if n.endswith(".so")], names
    # That wheel's modules, without the extension: the definition answers.
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import hashlib, userctl.hexdigest as h; p = b'x';"
        "print(h.ACCELERATED, h.matches(p, hashlib.sha256(p).hexdigest()), h.matches(p, 'no'))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert ran.stdout.split() == ["False", "True", "False"]
