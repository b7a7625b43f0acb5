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
        for i, row in enumerate(self.items(texts, lambda todo: list(compute(todo)))):
            out[i] = row
        return out

    def items(self, keys: Sequence[str], compute: Callable[[list[str]], list[np.ndarray]]
              ) -> list[np.ndarray]:
        """`compute(keys)` item for item (any shape), each distinct key not yet cached once."""
        if not keys:
            return []
        with self._lock:
            known = {k: self._rows[k] for k in dict.fromkeys(keys) if k in self._rows}
            for k in known:
                self._rows.move_to_end(k)
        todo = [k for k in dict.fromkeys(keys) if k not in known]
        fresh = compute(todo) if todo else []
        found = {**known, **dict(zip(todo, fresh, strict=True))}
        with self._lock:
            self.hits += len(keys) - len(todo)
            self.misses += len(todo)
            for k, row in zip(todo, fresh, strict=True):
                self._rows[k] = row
            while len(self._rows) > self.max_rows:
                self._rows.popitem(last=False)
        return [found[k] for k in keys]

    def put(self, key: str, row: np.ndarray) -> None:
        """Keep a result computed elsewhere (a pass that also yields this cache's items)."""
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.max_rows:
                self._rows.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self.hits = self.misses = 0
