"""Length-sorted batching, shared by every model pass.

Sorting inputs by length before cutting batches keeps padding (wasted compute) small; the
caller writes each batch's results back by index, so output stays in input order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Index lists of at most `batch_size`, shortest inputs first (stable for equal lengths)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
