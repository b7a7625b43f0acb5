"""Rows run alone: the cache computes each distinct text once and keeps a bounded number, and
the pool runs every row exactly once, whatever its size."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.models.rowwise import RowCache, RowPool


def _counting(calls: list[list[str]]):
    def compute(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)
    return compute


def test_cache_runs_each_distinct_text_once_and_keeps_input_order():
    calls: list[list[str]] = []
    cache = RowCache()
    rows = cache.rows(["bb", "a", "bb", "ccc"], _counting(calls), width=2)
    assert calls == [["bb", "a", "ccc"]]  # the repeat inside the call ran once
    assert rows.tolist() == [[2, 98], [1, 97], [2, 98], [3, 99]]
    again = cache.rows(["ccc", "dddd", "a"], _counting(calls), width=2)
    assert calls[-1] == ["dddd"]  # a later call reuses what an earlier one computed
    assert again.tolist() == [[3, 99], [4, 100], [1, 97]]
    assert (cache.hits, cache.misses) == (3, 4)


def test_cache_is_bounded_and_forgets_the_least_recently_used():
    calls: list[list[str]] = []
    cache = RowCache(max_rows=2)
    cache.rows(["a", "b"], _counting(calls), width=2)
    cache.rows(["a"], _counting(calls), width=2)  # "a" is now the most recent
    cache.rows(["c"], _counting(calls), width=2)  # evicts "b"
    cache.rows(["a", "b"], _counting(calls), width=2)
    assert calls[-1] == ["b"]


def test_empty_input_gives_an_empty_block_without_computing():
    calls: list[list[str]] = []
    assert RowCache().rows([], _counting(calls), width=5).shape == (0, 5)
    assert calls == []


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_pool_runs_every_row_once(workers):
    seen = np.zeros(103, dtype=int)

    def one(i: int) -> None:
        seen[i] += 1

    RowPool(workers).map(one, len(seen))
    assert seen.tolist() == [1] * len(seen)


def test_pool_raises_a_row_error():
    def one(i: int) -> None:
        if i == 7:
            raise ValueError("row 7")

    with pytest.raises(ValueError, match="row 7"):
        RowPool(2).map(one, 20)
