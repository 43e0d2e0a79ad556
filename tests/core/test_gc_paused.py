"""gc_paused (DESIGN §6): no collections inside; on the way out the survivors skip the young
generations, yet cyclic garbage made inside is still collected."""

from __future__ import annotations

import gc
import weakref

from userctl.gcpause import gc_paused


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_paused_inside_and_restored_after_even_when_nested() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause leaves the outer one alone
    assert gc.isenabled()


def test_what_was_allocated_inside_does_not_wait_in_the_young_generation() -> None:
    with gc_paused():
        kept = [[i] for i in range(50_000)]
        assert gc.get_count()[0] >= 50_000
    # Left young, the next allocation would start a collection that traverses them all (and a
    # later one again, on the way to the oldest generation); they are already there.
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert id(kept[0]) in oldest and id(kept[-1]) in oldest


def test_cycles_made_inside_are_still_collected() -> None:
    with gc_paused():
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
    assert alive() is not None  # a cycle: only the collector frees it
    gc.collect()
    assert alive() is None
