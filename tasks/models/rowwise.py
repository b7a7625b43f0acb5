"""Batch-invariant inference: each sentence runs alone, so its numbers are its own.

Batched runs mix rows. Dynamic int8 quantises a whole ORT input with one activation scale,
so a sentence's logits moved with its neighbours (by up to 1.4 on news leads), and padding
changes fp32 reductions in the last bits. A sentence run alone (no padding, int8 scales from
its own tokens) gives bit-identical outputs in any batch, order, thread count or process,
which also makes its result safe to reuse in a later batch (`RowCache`). To keep the cores
busy, rows run in parallel, one thread each (`RowPool`); bench/RESULTS.md has the cost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# The provenance's word for it (every built-in model path runs this way).
ROWS_ALONE = {"rows": "each sentence alone (batch-invariant)"}
# Rows kept per model (LRU): about 1.6 kB each for 3 logits and a 384-d vector, so ~80 MB.
CACHE_ROWS = 50_000


class RowPool:
    """Runs `fn(i)` for every row index on `workers` threads; ORT releases the GIL, so one
    single-threaded session per row keeps every core busy without batching rows together.

    One pool call at a time per process (`_lock`): the flow's task threads would otherwise
    run two batches' rows at once on the same cores.
    """

    _lock = threading.Lock()

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="textdigest-row") \
            if self.workers > 1 else None

    def map(self, fn: Callable[[int], None], n: int) -> None:
        with RowPool._lock:
            if self._pool is None:
                for i in range(n):
                    fn(i)
                return
            # Chunks keep the per-row hand-off cheap; list() re-raises a worker's error.
            list(self._pool.map(fn, range(n), chunksize=max(1, n // (8 * self.workers))))


class RowCache:
    """Per-model results by input text, reused across batches of a run (wire furniture,
    datelines, table rows). Safe only because a row is a function of its text alone.

    `hits` and `misses` count rows, for the benches.
    """

    def __init__(self, max_rows: int = CACHE_ROWS):
        self.max_rows = max_rows
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def rows(self, texts: Sequence[str], compute: Callable[[list[str]], np.ndarray],
             width: int) -> np.ndarray:
        """`compute(texts)` row for row, computing each distinct text not yet cached once."""
        out = np.zeros((len(texts), width), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            known = {t: self._rows[t] for t in dict.fromkeys(texts) if t in self._rows}
            for t in known:
                self._rows.move_to_end(t)
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        fresh = compute(todo) if todo else np.zeros((0, width), dtype=np.float32)
        found = {**known, **dict(zip(todo, fresh, strict=True))}
        for i, t in enumerate(texts):
            out[i] = found[t]
        with self._lock:
            self.hits += len(texts) - len(todo)
            self.misses += len(todo)
            for t, row in zip(todo, fresh, strict=True):
                self._rows[t] = row
            while len(self._rows) > self.max_rows:
                self._rows.popitem(last=False)
        return out

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self.hits = self.misses = 0
