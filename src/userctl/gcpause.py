"""Pausing Python's cyclic garbage collector around bulk work (DESIGN §6)."""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Reading or planning a large organization allocates millions of objects that form no
    cycles: the collector would only re-scan them over and over (bench/ measures it).

    On the way out, what was allocated meanwhile joins the oldest generation directly
    (freeze, then unfreeze: two list splices, no traversal). Re-enabled as they are, the first
    young-generation collection would traverse all of them at once, for objects that will live
    until the command ends; in the oldest generation they wait for the next full collection,
    which a long-lived process (the tests) still runs, so nothing leaks."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()
