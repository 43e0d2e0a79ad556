"""How the console script ends (cli/leave.py): what shutdown is for is done — atexit handlers run,
stdout and stderr written out, the command's exit code — and the freeing of every object is not;
a thread still running gets the interpreter's shutdown, which waits for it. Run as the console
script runs, in a fresh interpreter, with Python's own buffering (no PYTHONUNBUFFERED)."""

from __future__ import annotations

import os
import subprocess
import sys

from userctl import __version__
from userctl.errors import ExitCode

# `torn down` is printed by an object's finalizer when shutdown frees the script's globals.
PROBE = """
import atexit, sys, threading, time
class Finalized:
    def __del__(self):
        sys.stderr.write("torn down\\n")
sentinel = Finalized()
atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
if sys.argv[1] == "--with-thread":
    del sys.argv[1]
    def late():
        time.sleep(0.5)
        sys.stdout.write("thread finished\\n")
    threading.Thread(target=late).start()
sys.argv = ["userctl", *sys.argv[1:]]
from userctl.cli.main import main
main()
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "USERCTL_DEBUG")}
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_output_is_written_and_the_handlers_run_without_freeing_every_object() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout == f"userctl, version {__version__}\n"  # buffered, then flushed
    assert done.stderr == "atexit ran\n"  # no "torn down": shutdown's freeing was skipped


def test_help_is_written_whole() -> None:
    done = _run("--help")
    assert done.returncode == 0 and done.stderr == "atexit ran\n"
    assert done.stdout.startswith("Usage: userctl") and done.stdout.endswith("\n")
    assert "Environment" in done.stdout or "USERCTL_DATABASE_URL" in done.stdout


def test_the_exit_code_and_the_message_are_the_commands() -> None:
    done = _run("no-such-command")
    assert done.returncode == ExitCode.ERROR
    assert "No such command 'no-such-command'" in done.stderr
    assert done.stderr.endswith("atexit ran\n") and "torn down" not in done.stderr


def test_a_thread_still_running_gets_the_interpreters_shutdown() -> None:
    done = _run("--with-thread", "--version")
    assert done.returncode == 0
    # Shutdown waited for the thread, and freed the objects as it always did.
    assert done.stdout == f"userctl, version {__version__}\nthread finished\n"
    assert done.stderr == "atexit ran\ntorn down\n"
