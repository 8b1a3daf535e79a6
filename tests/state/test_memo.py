"""The bounded memo behind the parsed-structure and PDM caches."""

from __future__ import annotations

import pytest

from amloop.state.memo import BoundedMemo


def test_values_are_computed_once_and_the_least_recently_used_is_dropped() -> None:
    calls: list[str] = []

    def compute(key: str) -> str:
        calls.append(key)
        return key.upper()

    memo: BoundedMemo[str] = BoundedMemo(2)
    assert [memo.get(k, lambda k=k: compute(k)) for k in "aba"] == ["A", "B", "A"]
    assert calls == ["a", "b"]  # "a" the second time came from the memo
    memo.get("c", lambda: compute("c"))  # full: "b", used least recently, goes
    assert len(memo) == 2
    memo.get("a", lambda: compute("a"))
    memo.get("b", lambda: compute("b"))
    assert calls == ["a", "b", "c", "b"]


def test_a_memo_must_hold_something() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BoundedMemo(0)
