"""Near-duplicates: flagged in `duplicate_of` (never dropped), within a run and across runs."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from flows.config import DigestConfig
from tasks.io import near_duplicates
from tasks.record import Document
from tasks.steps import minhash

from .corpus import light_edit, short_articles, write_jsonl


@pytest.fixture(scope="module")
def arts() -> list[dict[str, str]]:
    return short_articles(3)


def test_edited_copy_scores_above_threshold_and_unrelated_below(arts):
    a, b = arts[0]["text"], arts[1]["text"]
    sig_a = minhash.signature(a)
    assert (minhash.signature(a) == sig_a).all()  # deterministic: no per-process seed
    assert minhash.similarity(sig_a, minhash.signature(light_edit(a, 2))) >= 0.8
    assert minhash.similarity(sig_a, minhash.signature(a.upper().replace(".", " ."))) == 1.0
    assert minhash.similarity(sig_a, minhash.signature(b)) < 0.2
    assert minhash.similarity(sig_a, minhash.signature(light_edit(a, 80))) < 0.2  # rewritten


def test_index_flags_the_most_similar_original_and_indexes_originals_only(arts):
    a = arts[0]["text"]

    def doc(doc_id: str, text: str) -> Document:
        return Document(doc_id=doc_id, source=doc_id, raw_text=text, text=text)

    docs = [doc("a", a), doc("b", arts[1]["text"]), doc("a-near", light_edit(a, 2)),
            doc("a-nearer", light_edit(a, 1)), doc("a-again", light_edit(a, 2, "y"))]
    index = near_duplicates.NearDupIndex(0.8)
    index.assign(docs)
    assert [d.duplicate_of for d in docs] == [None, None, "a", "a", "a"]
    assert sorted(index.originals) == ["a", "b"] and index.flagged == 3
    # the most similar original wins, whatever order the originals were indexed in
    sigs = {"y-far": minhash.signature(light_edit(a, 12, "y")),
            "x-mid": minhash.signature(light_edit(a, 4))}
    close = minhash.signature(light_edit(a, 1, "q"))
    for order in (["y-far", "x-mid"], ["x-mid", "y-far"]):
        index = near_duplicates.NearDupIndex(0.5)
        for key in order:
            index.add(key, sigs[key], None)
        assert index.match("z-close", close) == "x-mid"
    strict = near_duplicates.NearDupIndex(0.95)
    strict.add("x-mid", sigs["x-mid"], None)
    assert strict.match("z-close", close) is None
    # text with no word characters is never anyone's duplicate
    symbols = [doc("s1", "!!! ??? ..."), doc("s2", "*** ---")]
    index.assign(symbols)
    assert [d.duplicate_of for d in symbols] == [None, None]
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates.NearDupIndex(0.0)


def test_run_index_streams_to_a_hidden_file_that_save_seals_and_abort_removes(tmp_path, arts):
    def docs(prefix: str) -> list[Document]:
        texts = [a["text"] for a in arts] + [light_edit(arts[0]["text"], 2)]
        return [Document(doc_id=f"{prefix}{i}", source="s", raw_text=t, text=t)
                for i, t in enumerate(texts)]

    index = near_duplicates.NearDupIndex(0.8)
    index.FLUSH_ROWS = 2  # entries reach the file while the run goes on, not only at save
    index.open_run(tmp_path, "r1")
    first = docs("a")
    index.assign(first)
    hidden = tmp_path / "index" / ".minhash-r1.parquet.tmp"
    assert hidden.stat().st_size > 0 and near_duplicates.index_files(tmp_path) == []
    path = index.save(tmp_path, "r1")
    assert not hidden.exists() and near_duplicates.index_files(tmp_path) == [path]
    table = pq.read_table(path)
    assert table.column("doc_id").to_pylist() == [d.doc_id for d in first]
    assert table.column("duplicate_of").to_pylist() == [None, None, None, "a0"]
    # the file keeps the full 32-bit values (memory keeps 16 of them)
    assert table.column("signature").to_pylist()[3] == minhash.signature(first[3].text).tolist()
    loaded = near_duplicates.load_index(tmp_path, 0.8, {d.doc_id for d in first})
    assert sorted(loaded.originals) == ["a0", "a1", "a2"]
    assert loaded.match("z", minhash.signature(light_edit(arts[1]["text"], 1))) == "a1"

    failed = near_duplicates.NearDupIndex(0.8)
    failed.FLUSH_ROWS = 1
    failed.open_run(tmp_path, "r2")
    failed.assign(docs("b"))
    assert (tmp_path / "index" / ".minhash-r2.parquet.tmp").exists()
    failed.abort()  # a failed run: its entries may name rows that were never written
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [path.name]
    assert near_duplicates.NearDupIndex(0.8).save(tmp_path, "r3") is None  # nothing recorded


def _docs(out) -> dict[str, str | None]:
    table = pq.read_table(out / "documents", columns=["doc_id", "duplicate_of"])
    ids = table.column("doc_id").to_pylist()
    assert len(ids) == len(set(ids))
    return dict(zip(ids, table.column("duplicate_of").to_pylist(), strict=True))


def _index_ids(out) -> list[str]:
    files = near_duplicates.index_files(out)
    return [i for f in files for i in pq.read_table(f).column("doc_id").to_pylist()]


def test_near_duplicates_within_a_run_across_runs_and_after_a_lost_index(prefect_harness,
                                                                          tmp_path, arts):
    from flows.digest import digest

    a, b = arts[0], arts[1]
    inp, out = tmp_path / "in", tmp_path / "out"
    write_jsonl(inp / "1.jsonl", [a, {"id": "a-edit", "text": light_edit(a["text"], 2)}, b])
    cfg = DigestConfig(input=inp, output=out, batch_size=2, show_progress=False)

    first = digest(cfg)
    assert first["counts"]["written"] == 3 and first["near_duplicates"] == 1
    assert _docs(out) == {a["id"]: None, "a-edit": a["id"], b["id"]: None}

    # a later run: a new edit of an article written before is flagged against it, and an
    # exact copy (same doc_id) from another file is already written: skipped, not redone
    write_jsonl(inp / "2.jsonl", [{"id": "a-later", "text": light_edit(a["text"], 3, "z")}, b])
    second = digest(cfg)
    assert second["counts"] == {"read": 5, "written": 1, "rejected": 0, "skipped_existing": 4}
    assert _docs(out)["a-later"] == a["id"]
    assert not (out / "rejects").exists() or pq.read_table(out / "rejects").num_rows == 0

    # a rerun writes nothing new, flags nothing, adds no index file
    files_before = near_duplicates.index_files(out)
    third = digest(cfg)
    assert third["counts"] == {"read": 5, "written": 0, "rejected": 0, "skipped_existing": 5}
    assert third["near_duplicates"] == 0
    assert near_duplicates.index_files(out) == files_before
    assert sorted(_index_ids(out)) == sorted(_docs(out))

    # a run killed after sealing its shards but before its index file: the next run signs
    # the missing rows from their stored text; each doc_id is indexed once
    files_before[-1].unlink()
    write_jsonl(inp / "3.jsonl", [{"id": "b-edit", "text": light_edit(b["text"], 2)}])
    fourth = digest(cfg)
    assert fourth["counts"]["written"] == 1
    docs = _docs(out)
    assert docs["b-edit"] == b["id"] and docs["a-later"] == a["id"]
    assert sorted(_index_ids(out)) == sorted(docs)

    # turned off: nothing flagged, no index written
    off = tmp_path / "off"
    digest(cfg.updated(input=inp / "1.jsonl", output=off, limit=2, near_dup_threshold=None))
    assert _docs(off) == {a["id"]: None, "a-edit": None} and not (off / "index").exists()


def test_zero_threshold_turns_the_check_off_as_on_the_command_line():
    assert DigestConfig(near_dup_threshold=0).output.near_dup_threshold is None
    assert DigestConfig().output.near_dup_threshold == 0.8
    with pytest.raises(ValueError):
        DigestConfig(near_dup_threshold=1.5)


def test_band_index_finds_the_candidates_datasketch_finds():
    """The array-backed buckets are MinHashLSH's buckets (same bands and rows), stored compactly."""
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**32 - 1, size=(300, minhash.NUM_PERM), dtype=np.uint32)
    near = base[rng.integers(0, 300, size=300)].copy()  # copies with 0-60 values changed
    for row, k in zip(near, rng.integers(0, 60, size=300), strict=True):
        row[rng.choice(minhash.NUM_PERM, size=k, replace=False)] = rng.integers(0, 2**32 - 1, k)
    sigs = np.concatenate([base, near])
    reference = MinHashLSH(threshold=0.8, num_perm=minhash.NUM_PERM)
    ours = near_duplicates._BandIndex(reference.b, reference.r)
    ours.TAIL = 64  # exercise both the sorted run and the unsorted tail
    perms = MinHash(num_perm=minhash.NUM_PERM, seed=minhash.SEED).permutations
    for i, sig in enumerate(sigs):
        mh = MinHash(seed=minhash.SEED, hashvalues=sig.astype(np.uint64), permutations=perms)
        assert sorted(ours.query(sig).tolist()) == sorted(reference.query(mh)), i
        reference.insert(i, mh)
        ours.insert(sig, i)
    assert sum(len(ours.query(s)) > 1 for s in near) > 100  # many planted copies were found
