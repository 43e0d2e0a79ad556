"""Every file and directory a command writes goes through here (DESIGN §8 invariant 9: no write
deletes what userctl did not write).

A path is resolved once (symlinks followed) and only the resolved path is used after that, so a
link cannot be swapped between the check and the write, and what is replaced is the link's
target, never the link (which used to leave a stray `.userctl-evidence-old-*` behind).
A link another user made in a shared directory (sticky and world-writable, as /tmp is) is not
followed (`places.resolved`): it would replace whatever file of ours they pointed it at.

- `write_file` replaces one file (a saved plan, an export) atomically. It refuses a directory, a
  device or anything but a regular file, and the files the command itself reads: the SQLite
  database with the files SQLite keeps beside it (journal, write-ahead log), and the desired-state
  files. `SecretFile` refuses the same.
- `write_pack` writes a directory of files (the evidence pack) into a new or empty directory, or
  replaces an earlier pack that userctl recognises by its own manifest: a SHA256SUMS whose first
  line is PACK_HEADER, listing every other file of the directory with its right sum. Anything
  else (the working directory or one above it, a directory holding the database or a
  desired-state file, a directory with any other file, an edited pack) is refused, untouched.
"""

from userctl.cli.outputs.files import SecretFile, write_file
from userctl.cli.outputs.manifests import (
    MANIFEST,
    PACK_HEADER,
    SIGNATURE,
    manifest,
    pack_problem,
)
from userctl.cli.outputs.packs import write_pack
from userctl.cli.outputs.places import desired_files

__all__ = [
    "MANIFEST",
    "PACK_HEADER",
    "SIGNATURE",
    "SecretFile",
    "desired_files",
    "manifest",
    "pack_problem",
    "write_file",
    "write_pack",
]
