"""Slices of a long list: batches for executemany, and IN (...) lists kept under every backend's
bound-parameter limit. Imports nothing, so the read path can use it without the ORM."""

from __future__ import annotations

from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
