"""The third-party programs the tests drive (zbarimg, pdftotext, shellcheck, zizmor, node tools):
found on the machine, or the test skips locally and fails under CI, where .ci/run installs them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[1]
# npm packages the tests drive, installed by .ci/run from .ci/node/package-lock.json.
NODE_MODULES = ROOT / ".ci" / "node" / "node_modules"


def missing(what: str, how: str) -> None:
    message = f"{what} is not installed ({how})"
    if in_ci():
        pytest.fail(message + "; CI is set: .ci/run must install it", pytrace=False)
    pytest.skip(message)


def program(name: str, how: str) -> str:
    """The path of the program `name`: this virtualenv's (pip-installed tools), else on PATH."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        missing(name, how)
        raise AssertionError("unreachable")  # missing() always raises
    return path


def node_package(relative: str) -> Path:
    """A file of an npm package under .ci/node/node_modules, and node to run it with."""
    program("node", "apt-get install nodejs")
    path = NODE_MODULES / relative
    if not path.exists():
        missing(str(path), "npm ci --prefix .ci/node")
    return path
