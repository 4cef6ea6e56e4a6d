"""The memo table: computes once per key, keeps the most recently used, forgets the rest."""

from __future__ import annotations

import pytest

from harness.memo import Memo


def test_a_key_is_computed_once_while_it_is_remembered() -> None:
    calls: list[str] = []
    memo: Memo[str] = Memo(2)
    for key in ("a", "a", "b", "a"):
        assert memo.get(key, lambda k=key: calls.append(k) or k.upper()) == key.upper()
    assert calls == ["a", "b"]


def test_the_least_recently_used_key_is_forgotten_first() -> None:
    calls: list[int] = []
    memo: Memo[int] = Memo(2)

    def get(k: int) -> int:
        return memo.get(k, lambda: calls.append(k) or k)

    get(1), get(2), get(1), get(3)  # 2 is now the least recently used: evicted
    get(1), get(2)
    assert calls == [1, 2, 3, 2] and len(memo) == 2


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="size=0"):
        Memo(0)


def test_a_value_put_is_what_get_returns_and_counts_toward_the_size() -> None:
    memo: Memo[int] = Memo(2)
    memo.put("a", 1)
    assert memo.get("a", lambda: 99) == 1
    memo.put("b", 2)
    memo.put("c", 3)  # "a" is the least recently used
    assert len(memo) == 2 and memo.get("a", lambda: 99) == 99
