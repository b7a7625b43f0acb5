"""Near-duplicate detection: MinHash signatures of cleaned text and an LSH index over them.

A near-duplicate is kept as a row and flagged with `duplicate_of` (the doc_id of the earlier
document it resembles); nothing is dropped. Only originals are indexed, so `duplicate_of`
always names a document that is not itself flagged.

Determinism: documents are checked one at a time in input order, and among the indexed
documents whose estimated Jaccard similarity reaches the threshold the most similar wins
(ties: the smallest doc_id). The answer depends only on which documents are indexed, not on
the order they were loaded in, the task runner or the batch size.

Earlier runs: each run writes the signatures of the documents it wrote to
`<output>/index/minhash-<run_id>.parquet` (atomically, after its shards are sealed). The
index is a cache: a document in the output with no signature (a killed run, or dedup was
off) is signed again from its stored `text` when the index is loaded, so a SIGKILL and a
rerun leave the same index, each doc_id once.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from datasketch import MinHash, MinHashLSH

from tasks.record import DOCUMENT_SCHEMA, Document
from tasks.write import DOCUMENTS_DIR, atomic_write_bytes

NUM_PERM = 128
SHINGLE_WORDS = 5
SEED = 1
INDEX_DIR = "index"
INDEX_PREFIX = "minhash-"
PARAMS = f"num_perm={NUM_PERM};shingle_words={SHINGLE_WORDS};seed={SEED};tokens=lower\\w+"

INDEX_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string()),
        pa.field("signature", pa.list_(pa.uint32(), NUM_PERM), nullable=False),
    ],
    metadata={"textdigest.schema": "minhash-index/1", "textdigest.minhash": PARAMS},
)

_WORD = re.compile(r"\w+")
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=SEED)  # permutations computed once, shared


def shingles(text: str, k: int = SHINGLE_WORDS) -> set[bytes]:
    """Lower-cased word k-grams: robust to re-wrapping, punctuation and case edits."""
    words = _WORD.findall(text.lower())
    if len(words) <= k:
        return {" ".join(words).encode("utf-8")} if words else set()
    return {" ".join(words[i:i + k]).encode("utf-8") for i in range(len(words) - k + 1)}


def signature(text: str) -> np.ndarray:
    """MinHash signature (NUM_PERM uint32 values) of `text`'s shingles."""
    mh = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=_TEMPLATE.permutations)
    mh.update_batch(shingles(text))
    return mh.hashvalues.astype(np.uint32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.count_nonzero(a == b)) / len(a)


def sign_documents(docs: Iterable[Document]) -> None:
    """Attach each cleaned document's signature (the costly part, done in a batch task)."""
    for doc in docs:
        doc.minhash = signature(doc.text)


def _no_words(sig: np.ndarray) -> bool:
    """The signature of an empty shingle set (every value still at its maximum)."""
    return bool((sig == np.iinfo(np.uint32).max).all())


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
    and row (~220 bytes per document with the sorted copies, against ~4.8 KB in MinHashLSH's
    Python sets), so the index of 100,000 documents fits in a few tens of MB.
    """

    TAIL = 4096  # unsorted entries searched linearly before the sorted run is rebuilt

    def __init__(self, bands: int, rows: int):
        self.bands, self.rows = bands, rows
        mix = np.random.default_rng(SEED).integers(1, 2**63, size=rows, dtype=np.uint64)
        self._mix = mix | np.uint64(1)  # odd multipliers: a band's values -> one 64-bit key
        self._keys = _Rows(bands, np.uint64)
        self._rows = _Rows(1, np.int64)  # which signature row each entry points to
        self._sorted_keys = np.zeros((bands, 0), dtype=np.uint64)
        self._sorted_pos = np.zeros((bands, 0), dtype=np.int64)

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
            self._sorted_pos = np.argsort(keys, axis=1, kind="stable")
            self._sorted_keys = np.take_along_axis(keys, self._sorted_pos, axis=1)

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

    Memory is what a dataset of any size pays per document, so it is kept to arrays: a
    signature row (512 bytes), its band keys, and the doc_id string.
    """

    threshold: float
    flagged: int = 0
    _ids: list[str] = field(default_factory=list, init=False, repr=False)
    _dups: list[str | None] = field(default_factory=list, init=False, repr=False)
    _row_of: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _new: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {self.threshold}")
        # datasketch picks the (bands, rows) split that balances false positives and negatives
        # at this threshold; the buckets themselves live in `_BandIndex`.
        params = MinHashLSH(threshold=self.threshold, num_perm=NUM_PERM)
        self._bands = _BandIndex(params.b, params.r)
        self._sigs = _Rows(NUM_PERM, np.uint32)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._row_of

    @property
    def originals(self) -> list[str]:
        """doc_ids in the lookup buckets (not flagged, with words to compare)."""
        rows = self._bands._rows.array[:, 0]
        return [self._ids[r] for r in rows]

    def match(self, doc_id: str, sig: np.ndarray) -> str | None:
        """The indexed original most similar to `sig` at or above the threshold, if any."""
        if _no_words(sig):  # nothing to compare (no word characters at all)
            return None
        rows = self._bands.query(sig)
        if not len(rows):
            return None
        scores = (self._sigs.array[rows] == sig).sum(axis=1) / NUM_PERM
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
        row = self._sigs.append(sig)
        self._row_of[doc_id] = row
        self._ids.append(doc_id)
        self._dups.append(duplicate_of)
        if duplicate_of is None and not _no_words(sig):
            self._bands.insert(sig, row)
        if record:
            self._new.append(row)

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

    def save(self, output: Path, run_id: str) -> Path | None:
        """Write this run's entries as one index file (atomic); nothing when there are none."""
        if not self._new:
            return None
        rows = np.asarray(self._new, dtype=np.int64)
        flat = pa.array(self._sigs.array[rows].reshape(-1), type=pa.uint32())
        table = pa.Table.from_arrays(
            [pa.array([self._ids[r] for r in rows.tolist()], type=pa.string()),
             pa.array([self._dups[r] for r in rows.tolist()], type=pa.string()),
             pa.FixedSizeListArray.from_arrays(flat, NUM_PERM)],
            schema=INDEX_SCHEMA,
        )
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        path = Path(output) / INDEX_DIR / f"{INDEX_PREFIX}{run_id}.parquet"
        atomic_write_bytes(path, buf.getvalue())
        self._new = []
        return path


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
