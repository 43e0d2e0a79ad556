"""The pre-commit hook (`.pre-commit-hooks.yaml`, id `userctl-validate`): `userctl validate` for
the files pre-commit passes.

pre-commit appends the changed files to the hook's entry as arguments, but `validate -f` takes
one desired state: a file, or a directory whose files together are one state (roles in one
file, users split by team — a team file alone would name roles it does not declare). So this
validates each file on its own, except those inside a `users/` directory (the hook's default
layout) or a directory given with `--dir`, each validated once as a whole. Each validation is the
real `userctl validate`, run in this process.

    python -m userctl.precommit [--dir DIR]... FILE...
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

# The directory name the hook's `files` pattern selects whole: `users/*.yaml` is one desired state.
STATE_DIRECTORY = "users"


def targets(files: Sequence[str], directories: Sequence[str]) -> list[str]:
    """What to validate, in order, each once: the directory holding one of `files` when it is a
    `users/` directory or one of `directories`, and every other file."""
    roots = [os.path.normpath(d) for d in directories]
    chosen: list[str] = []
    for path in files:
        parent = os.path.dirname(os.path.normpath(path))
        declared = next(
            (root for root in roots if os.path.abspath(parent) == os.path.abspath(root)), None
        )
        target = declared or (parent if os.path.basename(parent) == STATE_DIRECTORY else path)
        if target not in chosen:
            chosen.append(target)
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    from userctl.cli.main import cli

    parser = argparse.ArgumentParser(
        prog="python -m userctl.precommit",
        description="userctl validate for the files pre-commit passes.",
    )
    parser.add_argument(
        "--dir",
        dest="directories",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory whose *.yaml files form one desired state (repeatable)",
    )
    parser.add_argument("files", nargs="*", metavar="FILE")
    args = parser.parse_args(argv)
    worst = 0
    for target in targets(args.files, args.directories):
        try:
            cli.main(args=["validate", "-f", target], prog_name="userctl")
        except SystemExit as done:  # the CLI always ends with sys.exit(code)
            code = done.code if isinstance(done.code, int) else 1
            worst = max(worst, code)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
