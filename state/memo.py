"""A bounded memo: values computed once per key, the least recently used dropped when full."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedMemo(Generic[V]):
    """At most ``size`` values by string key (a content digest), least recently used dropped.

    Callers that hand out mutable values copy what :meth:`get` returns."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a memo holds at least one value, not {size}")
        self.size = size
        self._values: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str, compute: Callable[[], V]) -> V:
        """The value remembered for ``key``, else ``compute()`` (then remembered)."""
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        value = compute()
        self._values[key] = value
        if len(self._values) > self.size:
            self._values.popitem(last=False)
        return value
