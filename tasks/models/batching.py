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


def token_batches(lengths: Sequence[int], max_tokens: int,
                  max_rows: int = 256) -> Iterator[list[int]]:
    """Index lists whose padded size (rows x longest row) stays within `max_tokens`, shortest
    inputs first: many short sentences per batch, few long ones. A row longer than the budget
    gets a batch of its own. News sentences run as fast as in 64-row batches (bench/RESULTS.md,
    "Token budget"), while a batch of long sentences no longer holds 64 x 256 tokens of
    activations at once."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batch: list[int] = []
    for i in order:
        width = max(lengths[i], 1)  # sorted: the newest row is the longest
        if batch and (len(batch) + 1) * width > max_tokens or len(batch) >= max_rows:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
