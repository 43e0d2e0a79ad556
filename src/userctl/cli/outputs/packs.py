"""`write_pack`: a directory of files (the evidence pack), built beside its place and renamed
into it; an earlier pack is replaced only when its manifest vouches for every file in it."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterable, Mapping

from userctl.cli.outputs.manifests import pack_problem
from userctl.cli.outputs.places import never_replaced, resolved
from userctl.errors import UsageError

_STAGING = ".userctl-evidence-"


def write_pack(
    option: str,
    path: str,
    files: Mapping[str, str],
    *,
    force: bool,
    reads: Iterable[str] = (),
) -> None:
    """Write `files` (name -> text, MANIFEST included) as the directory `path`: built beside it
    and renamed into place, so a reader never sees half a pack. An earlier pack there is replaced
    only with `force`; anything else userctl did not write is refused (see the module doc)."""
    real = resolved(option, path)
    _refuse_above(option, path, real, [os.getcwd(), *never_replaced(reads)])
    if os.path.lexists(real) and not os.path.isdir(real):
        raise UsageError(f"{option} {path} exists and is not a directory")
    earlier = os.path.isdir(real) and bool(os.listdir(real))
    if earlier:
        why = pack_problem(real)
        if why is not None:
            raise UsageError(
                f"{option} {path} holds {why}, so it is not an evidence pack userctl wrote: "
                "choose a new or empty directory. Nothing was written"
            )
        if not force:
            raise UsageError(
                f"{option} {path} is not empty (an earlier evidence pack): choose a new "
                "directory, or add --force to replace that pack"
            )
    parent = os.path.dirname(real)
    try:
        staging = tempfile.mkdtemp(dir=parent, prefix=_STAGING)
    except OSError as exc:
        raise UsageError(f"cannot write into {parent}: {exc.strerror or exc}") from None
    old = None
    try:
        for name, text in files.items():
            with open(os.path.join(staging, name), "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        os.chmod(staging, 0o755)
        if earlier:
            old = tempfile.mkdtemp(dir=parent, prefix=_STAGING + "old-")
            os.rename(real, os.path.join(old, "pack"))
            # Checked again once out of the way: a file added since the first check is not ours.
            why = pack_problem(os.path.join(old, "pack"))
            if why is not None:
                raise UsageError(
                    f"{option} {path} changed while the pack was written (it now holds {why}); "
                    "nothing was replaced"
                )
        elif os.path.isdir(real):
            os.rmdir(real)  # empty: fails, leaving it alone, if a file appeared since
        os.rename(staging, real)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            if not os.path.lexists(real):
                os.rename(os.path.join(old, "pack"), real)  # put the earlier pack back
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    if old is not None:
        try:
            shutil.rmtree(old)
        except OSError as exc:
            raise UsageError(
                f"the pack is in {path}, but the earlier one, moved to {old}, could not be "
                f"removed: {exc.strerror or exc}"
            ) from None


def _refuse_above(option: str, path: str, real: str, keep: Iterable[str]) -> None:
    """A pack replaces its whole directory: never one that is, or holds, the working directory,
    the database file or a desired-state file."""
    for place in keep:
        resolved = os.path.realpath(place)
        if resolved == real or resolved.startswith(real.rstrip(os.sep) + os.sep):
            what = "the working directory" if place == os.getcwd() else place
            raise UsageError(
                f"{option} {path} would replace {what}: choose a new or empty directory "
                "elsewhere. Nothing was written"
            )
