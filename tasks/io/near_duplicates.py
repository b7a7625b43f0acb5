"""Near-duplicate detection: MinHash signatures of cleaned text and an LSH index over them.

A near-duplicate is kept as a row and flagged with `duplicate_of` (the doc_id of the earlier
document it resembles); nothing is dropped. Only originals are indexed, so `duplicate_of`
always names a document that is not itself flagged.

Determinism: documents are checked one at a time in input order, and among the indexed
documents whose estimated Jaccard similarity reaches the threshold the most similar wins
(ties: the smallest doc_id). The answer depends only on which documents are indexed, not on
the order they were loaded in, the task runner or the batch size.

Earlier runs: each run appends the signatures of the documents it writes to a hidden
`<output>/index/.minhash-<run_id>.parquet.tmp` as it goes, and renames it to
`minhash-<run_id>.parquet` after its shards are sealed (a failed run deletes it). The
index is a cache: a document in the output with no signature (a killed run, or dedup was
off) is signed again from its stored `text` when the index is loaded, so a SIGKILL and a
rerun leave the same index, each doc_id once.
"""


from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from datasketch import MinHashLSH

from tasks.io.atomic import publish_temporary
from tasks.io.write import DOCUMENTS_DIR
from tasks.record import DOCUMENT_SCHEMA, Document
from tasks.steps.minhash import NUM_PERM, PARAMS, SEED, no_words, signature

INDEX_DIR = "index"
INDEX_PREFIX = "minhash-"

INDEX_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string()),
        pa.field("signature", pa.list_(pa.uint32(), NUM_PERM), nullable=False),
    ],
    metadata={"textdigest.schema": "minhash-index/1", "textdigest.minhash": PARAMS},
)


class _Rows:
    """A growing 2-D numpy array (amortised doubling): a row per signature, no per-row object."""

    def __init__(self, width: int, dtype: type):
        self._data = np.zeros((1024, width), dtype=dtype)
        self.n = 0

    def append(self, row: np.ndarray) -> int:
        if self.n == len(self._data):  # zeros are mapped lazily: only the copy is resident
            grown = np.zeros((2 * len(self._data), self._data.shape[1]), self._data.dtype)
            grown[: self.n] = self._data
            self._data = grown
        self._data[self.n] = row
        self.n += 1
        return self.n - 1

    @property
    def array(self) -> np.ndarray:
        return self._data[: self.n]


class _BandIndex:
    """LSH buckets as arrays: per band, a sorted run of band keys plus a short unsorted tail.

    The same buckets as `datasketch.MinHashLSH` with the same (bands, rows) (two signatures
    share a bucket when one band's values are all equal), stored as one uint64 key per band
    and row (~170 bytes per document with the sorted copies, against ~4.8 KB in MinHashLSH's
    Python sets), so the index of 100,000 documents fits in a few tens of MB.
    """

    TAIL = 4096  # unsorted entries searched linearly before the sorted run is rebuilt

    def __init__(self, bands: int, rows: int):
        self.bands, self.rows = bands, rows
        mix = np.random.default_rng(SEED).integers(1, 2**63, size=rows, dtype=np.uint64)
        self._mix = mix | np.uint64(1)  # odd multipliers: a band's values -> one 64-bit key
        self._keys = _Rows(bands, np.uint64)
        self._rows = _Rows(1, np.int32)  # which signature row each entry points to
        self._sorted_keys = np.zeros((bands, 0), dtype=np.uint64)
        self._sorted_pos = np.zeros((bands, 0), dtype=np.int32)

    def keys(self, sig: np.ndarray) -> np.ndarray:
        values = sig[: self.bands * self.rows].reshape(self.bands, self.rows).astype(np.uint64)
        with np.errstate(over="ignore"):
            keys = (values * self._mix).sum(axis=1)
            return keys ^ (keys >> np.uint64(29))

    def insert(self, sig: np.ndarray, row: int) -> None:
        self._keys.append(self.keys(sig))
        self._rows.append(np.array([row]))
        if self._keys.n - self._sorted_keys.shape[1] > self.TAIL:
            keys = self._keys.array.T
            order = np.argsort(keys, axis=1, kind="stable")
            self._sorted_keys = np.take_along_axis(keys, order, axis=1)
            self._sorted_pos = order.astype(np.int32)

    def query(self, sig: np.ndarray) -> np.ndarray:
        """Signature rows sharing at least one band bucket with `sig`."""
        keys = self.keys(sig)
        found = []
        done = self._sorted_keys.shape[1]
        for band in range(self.bands):
            run = self._sorted_keys[band]
            lo, hi = np.searchsorted(run, keys[band], "left"), np.searchsorted(run, keys[band],
                                                                               "right")
            found.append(self._sorted_pos[band, lo:hi])
        tail = self._keys.array[done:]
        found.append(done + np.flatnonzero((tail == keys).any(axis=1)))
        entries = np.unique(np.concatenate(found))
        return self._rows.array[entries, 0]


@dataclass
class NearDupIndex:
    """Signatures of every document seen so far (originals bucketed for lookup), compactly.

    Memory is what a dataset of any size pays per document, so it is kept to arrays: the low
    16 bits of each signature value (256 bytes; two different 32-bit values agree there with
    probability 1/65,536, so the estimate is the 32-bit one to within ~0.0001), its band
    keys (built from the full values), and the doc_id string. The full signatures of this
    run's documents are not kept: they stream to a hidden Parquet file in `index/` (see
    `open_run`), which `save` seals under its final name.
    """

    threshold: float
    flagged: int = 0
    _ids: list[str] = field(default_factory=list, init=False, repr=False)
    _row_of: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _pending: list[tuple[str, str | None, np.ndarray]] = field(
        default_factory=list, init=False, repr=False)
    _sink: _IndexSink | None = field(default=None, init=False, repr=False)

    FLUSH_ROWS = 1024  # entries buffered before they are appended to the run's index file

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {self.threshold}")
        # datasketch picks the (bands, rows) split that balances false positives and negatives
        # at this threshold; the buckets themselves live in `_BandIndex`.
        params = MinHashLSH(threshold=self.threshold, num_perm=NUM_PERM)
        self._bands = _BandIndex(params.b, params.r)
        self._sigs = _Rows(NUM_PERM, np.uint16)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._row_of

    @property
    def originals(self) -> list[str]:
        """doc_ids in the lookup buckets (not flagged, with words to compare)."""
        rows = self._bands._rows.array[:, 0]
        return [self._ids[r] for r in rows]

    def match(self, doc_id: str, sig: np.ndarray) -> str | None:
        """The indexed original most similar to `sig` at or above the threshold, if any."""
        if no_words(sig):  # nothing to compare (no word characters at all)
            return None
        rows = self._bands.query(sig)
        if not len(rows):
            return None
        low = sig.astype(np.uint16)  # the low 16 bits, as stored
        scores = (self._sigs.array[rows] == low).sum(axis=1) / NUM_PERM
        best: tuple[float, str] | None = None
        for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
            key = self._ids[row]
            if key == doc_id or score < self.threshold:
                continue
            if best is None or (-score, key) < (-best[0], best[1]):
                best = (score, key)
        return best[1] if best else None

    def add(self, doc_id: str, sig: np.ndarray, duplicate_of: str | None,
            record: bool = True) -> None:
        """Index `doc_id` (originals only go into the buckets); `record` marks it for saving."""
        if doc_id in self._row_of:
            return
        row = self._sigs.append(sig.astype(np.uint16))
        self._row_of[doc_id] = row
        self._ids.append(doc_id)
        if duplicate_of is None and not no_words(sig):
            self._bands.insert(sig, row)
        if record:
            self._pending.append((doc_id, duplicate_of, sig))
            if self._sink is not None and len(self._pending) >= self.FLUSH_ROWS:
                self._flush()

    def assign(self, docs: Iterable[Document]) -> None:
        """Set `duplicate_of` on each document, in order, and index it.

        Uses the signature `sign_documents` left on the document (computed where the batch
        was cleaned, e.g. on a Dask worker), else signs it here.
        """
        for doc in docs:
            sig = doc.minhash if doc.minhash is not None else signature(doc.text)
            doc.minhash = None
            doc.duplicate_of = self.match(doc.doc_id, sig)
            self.flagged += doc.duplicate_of is not None
            self.add(doc.doc_id, sig, doc.duplicate_of)

    def open_run(self, output: Path, run_id: str) -> None:
        """Start this run's index file (hidden until `save`); recorded entries go there."""
        if self._sink is None:
            self._sink = _IndexSink(Path(output) / INDEX_DIR / f"{INDEX_PREFIX}{run_id}.parquet")
        self._flush()

    def _flush(self) -> None:
        if self._pending and self._sink is not None:
            self._sink.write(self._pending)
            self._pending = []

    def save(self, output: Path, run_id: str) -> Path | None:
        """Seal this run's entries as one index file (atomic); nothing when there are none."""
        self.open_run(output, run_id)
        assert self._sink is not None
        sink, self._sink = self._sink, None
        return sink.seal()

    def abort(self) -> None:
        """Drop this run's unsealed index file: its entries may name rows never written."""
        if self._sink is not None:
            self._sink.abort()
            self._sink = None
        self._pending = []


class _IndexSink:
    """One run's index entries, appended to a hidden Parquet file and renamed when sealed."""

    def __init__(self, final: Path):
        self.final = final
        self.tmp = final.with_name(f".{final.name}.tmp")
        self._writer: pq.ParquetWriter | None = None

    def write(self, entries: list[tuple[str, str | None, np.ndarray]]) -> None:
        if self._writer is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            # Random hash values: a dictionary never pays, and building one costs memory.
            self._writer = pq.ParquetWriter(self.tmp, INDEX_SCHEMA, compression="zstd",
                                            use_dictionary=False, write_statistics=False)
        ids, dups, sigs = zip(*entries, strict=True)
        flat = pa.array(np.stack(sigs).astype(np.uint32).reshape(-1), type=pa.uint32())
        self._writer.write_table(pa.Table.from_arrays(
            [pa.array(ids, type=pa.string()), pa.array(dups, type=pa.string()),
             pa.FixedSizeListArray.from_arrays(flat, NUM_PERM)], schema=INDEX_SCHEMA))

    def seal(self) -> Path | None:
        if self._writer is None:
            return None
        self._writer.close()
        self._writer = None
        publish_temporary(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.tmp.unlink(missing_ok=True)


def index_files(output: Path) -> list[Path]:
    return sorted((Path(output) / INDEX_DIR).glob(f"{INDEX_PREFIX}*.parquet"))


def load_index(output: Path, threshold: float, present_ids: set[str]) -> NearDupIndex:
    """The index over every document already in `output`.

    Entries for doc_ids no longer in the output (a run that failed before its shard was
    sealed) are ignored; documents without an entry are signed from their stored text and
    recorded, so that the next `save` completes the index.
    """
    index = NearDupIndex(threshold)
    for tmp in (Path(output) / INDEX_DIR).glob(".*.tmp"):  # a write cut short by a kill
        tmp.unlink(missing_ok=True)
    for path in index_files(output):
        meta = pq.read_schema(path).metadata or {}
        if meta.get(b"textdigest.minhash") != PARAMS.encode():
            continue  # other signature parameters: re-sign those documents below
        table = pq.read_table(path)
        sigs = (table.column("signature").combine_chunks().flatten().to_numpy()
                .reshape(-1, NUM_PERM).astype(np.uint32))
        ids, dups = table.column("doc_id").to_pylist(), table.column("duplicate_of").to_pylist()
        for doc_id, dup, sig in zip(ids, dups, sigs, strict=True):
            if doc_id in present_ids:
                index.add(doc_id, sig, dup, record=False)
    missing = {doc_id for doc_id in present_ids if doc_id not in index}
    if missing:
        files = sorted(str(f) for f in (Path(output) / DOCUMENTS_DIR).glob("*.parquet"))
        # The full schema fills `duplicate_of` with nulls in shards written before it existed.
        table = ds.dataset(files, format="parquet", schema=DOCUMENT_SCHEMA).to_table(
            columns=["doc_id", "duplicate_of", "text"],
            filter=ds.field("doc_id").isin(sorted(missing)))
        for row in sorted(table.to_pylist(), key=lambda r: r["doc_id"]):
            index.add(row["doc_id"], signature(row["text"]), row["duplicate_of"])
    return index
