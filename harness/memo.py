"""A small bounded memo table: results of one case that several consumers share.

A case is judged by several engines, in several dtypes, at the same points; the truth,
the rounding model's partials and the point labels are the same for all of them. Each
module keeps a :class:`Memo` of the last few such results, keyed by what decides them
(the tree, the points' bytes, ...), and evicts the least recently used.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["Memo", "clear_all"]

V = TypeVar("V")


class Memo(Generic[V]):
    """At most ``size`` results, least recently used evicted first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size={size!r} must be >= 1")
        self.size = size
        self._table: OrderedDict[Hashable, V] = OrderedDict()
        _ALL.add(self)

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The result remembered for ``key``, or ``compute()``'s, remembered from now on."""
        if key in self._table:
            self._table.move_to_end(key)
            return self._table[key]
        value = compute()
        self._table[key] = value
        if len(self._table) > self.size:
            self._table.popitem(last=False)
        return value

    def put(self, key: Hashable, value: V) -> None:
        """Remember ``value`` for ``key`` (a result computed elsewhere that a later
        :meth:`get` may reuse)."""
        self._table[key] = value
        self._table.move_to_end(key)
        if len(self._table) > self.size:
            self._table.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self._table.clear()

    def __len__(self) -> int:
        return len(self._table)


_ALL: weakref.WeakSet[Memo[Any]] = weakref.WeakSet()


def clear_all() -> None:
    """Forget every memo's results: for timing cold work (benchmarks) and for tests."""
    for memo in list(_ALL):
        memo.clear()
