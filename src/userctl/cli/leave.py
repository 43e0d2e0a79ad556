"""How the `userctl` process ends: what interpreter shutdown is for, done, then nothing else.

Shutdown frees every object the command built one by one (at 10k users, a tenth of a `plan`'s CPU;
about 0.2 s at 100k), and userctl leaves nothing to it: files are closed where they are written,
temporary ones removed by the code that made them, connections closed by the command's context
(AppContext.close) or db/thin.py. What can be seen from outside is done first: the
atexit handlers run, stdout and stderr are flushed, and the process ends with the command's exit
code. Where any of that is not certain — a flush that fails (a closed pipe), a thread still
running, an exit that is not a plain code — the interpreter's own shutdown does it all as before.
Only the console script ends this way: in-process callers (tests, `cli.main`) keep `sys.exit`."""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any, Callable, NoReturn


def run(command: Callable[[], Any]) -> NoReturn:
    """Run `command`, which ends by raising SystemExit (click's `main` does), and end the process
    with its code."""
    try:
        command()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
        sys.exit(code)
    atexit._run_exitfuncs()  # once: they are unregistered as they run
    if not _alone() or not _flushed():
        sys.exit(code)
    os._exit(code)


def _alone() -> bool:
    """No other thread left for shutdown to wait for (a non-daemon one would be joined)."""
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _flushed() -> bool:
    """stdout and stderr written out; False when that failed, so that shutdown reports it as it
    always did (a closed pipe is then exit 120 and "Exception ignored", as without this module)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - any failure: the interpreter's shutdown handles it
            return False
    return True
