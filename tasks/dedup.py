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


def _minhash(sig: np.ndarray) -> MinHash:
    return MinHash(seed=SEED, hashvalues=sig.astype(np.uint64),
                   permutations=_TEMPLATE.permutations)


@dataclass
class NearDupIndex:
    """Signatures of the originals seen so far, and the entries this run adds."""

    threshold: float
    lsh: MinHashLSH = field(init=False)
    originals: dict[str, np.ndarray] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    new_entries: list[tuple[str, str | None, np.ndarray]] = field(default_factory=list)
    flagged: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {self.threshold}")
        self.lsh = MinHashLSH(threshold=self.threshold, num_perm=NUM_PERM)

    def match(self, doc_id: str, sig: np.ndarray) -> str | None:
        """The indexed original most similar to `sig` at or above the threshold, if any."""
        if _no_words(sig):  # nothing to compare (no word characters at all)
            return None
        best: tuple[float, str] | None = None
        for key in self.lsh.query(_minhash(sig)):
            if key == doc_id:
                continue
            score = similarity(sig, self.originals[key])
            if score >= self.threshold and (best is None or (-score, key) < (-best[0], best[1])):
                best = (score, key)
        return best[1] if best else None

    def add(self, doc_id: str, sig: np.ndarray, duplicate_of: str | None,
            record: bool = True) -> None:
        """Index `doc_id` (originals only go into the LSH); `record` marks it for saving."""
        if doc_id in self.known:
            return
        self.known.add(doc_id)
        if duplicate_of is None and not _no_words(sig):
            self.originals[doc_id] = sig
            self.lsh.insert(doc_id, _minhash(sig), check_duplication=False)
        if record:
            self.new_entries.append((doc_id, duplicate_of, sig))

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
        if not self.new_entries:
            return None
        table = pa.Table.from_pydict(
            {"doc_id": [e[0] for e in self.new_entries],
             "duplicate_of": [e[1] for e in self.new_entries],
             "signature": [e[2].tolist() for e in self.new_entries]},
            schema=INDEX_SCHEMA,
        )
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        path = Path(output) / INDEX_DIR / f"{INDEX_PREFIX}{run_id}.parquet"
        atomic_write_bytes(path, buf.getvalue())
        self.new_entries = []
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
        for row in pq.read_table(path).to_pylist():
            if row["doc_id"] in present_ids:
                index.add(row["doc_id"], np.asarray(row["signature"], dtype=np.uint32),
                          row["duplicate_of"], record=False)
    missing = present_ids - index.known
    if missing:
        files = sorted(str(f) for f in (Path(output) / DOCUMENTS_DIR).glob("*.parquet"))
        # The full schema fills `duplicate_of` with nulls in shards written before it existed.
        table = ds.dataset(files, format="parquet", schema=DOCUMENT_SCHEMA).to_table(
            columns=["doc_id", "duplicate_of", "text"],
            filter=ds.field("doc_id").isin(sorted(missing)))
        for row in sorted(table.to_pylist(), key=lambda r: r["doc_id"]):
            index.add(row["doc_id"], signature(row["text"]), row["duplicate_of"])
    return index
