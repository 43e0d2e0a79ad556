"""Pausing Python's cyclic garbage collector around bulk work (DESIGN §6)."""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Reading or planning 100k users allocates millions of objects that form no cycles: the
    collector would only re-scan them over and over (about 40% of the snapshot read)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
