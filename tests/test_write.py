"""Shards, rejects and manifests: schema, atomic writes, readback in pyarrow and DuckDB."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from tasks.io.atomic import atomic_write_json
from tasks.io.write import (
    DatasetWriter,
    ShardWriter,
    existing_doc_ids,
    existing_reject_keys,
    remove_stale_temporaries,
)
from tasks.record import (
    DOCUMENT_SCHEMA,
    REJECT_SCHEMA,
    Document,
    Reject,
    documents_to_table,
    rejects_to_table,
)

PROV = {
    "run_id": "r1", "textdigest_version": "0", "processed_at": dt.datetime(2026, 1, 1,
                                                                            tzinfo=dt.UTC),
    "encoder": {"name": "e", "revision": "1", "params": "{}"},
    "summarizer": {"name": "s", "revision": "2", "params": "{}"},
    "sentiment_model": {"name": "m", "revision": "3", "params": "{}"},
    "cleaner": "{}",
}


def _doc(i: int) -> Document:
    d = Document(doc_id=f"d{i}", source=f"f.jsonl:{i}", raw_text="x", meta={"k": i})
    d.text = f"Body {i}."
    d.sentences = [d.text]
    d.published_date = dt.date(2022, 2, 23)
    d.summary = d.text
    d.summary_sentence_ids = [0]
    d.sentiment, d.sentiment_score, d.sentiment_probs = "neutral", 0.1, (0.2, 0.5, 0.3)
    return d


def test_shards_are_bounded_named_by_run_and_leave_no_temporaries(tmp_path):
    w = ShardWriter(tmp_path / "documents", DOCUMENT_SCHEMA, "run1", max_rows=4)
    w.write(documents_to_table([_doc(i) for i in range(6)], PROV))
    w.write(documents_to_table([_doc(i) for i in range(6, 9)], PROV))
    shards = w.close()
    assert [s.rows for s in shards] == [4, 4, 1]
    assert [s.path for s in shards] == [f"documents/part-run1-{n:05d}.parquet" for n in range(3)]
    assert not list((tmp_path / "documents").glob(".*"))
    table = pq.read_table(tmp_path / "documents")
    assert table.schema.equals(DOCUMENT_SCHEMA, check_metadata=False)
    assert table.column("doc_id").to_pylist() == [f"d{i}" for i in range(9)]


def test_open_shard_is_invisible_until_sealed_and_abort_removes_it(tmp_path):
    folder = tmp_path / "documents"
    w = ShardWriter(folder, DOCUMENT_SCHEMA, "run1", max_rows=100)
    w.write(documents_to_table([_doc(1)], PROV))
    assert list(folder.glob("*.parquet")) == []  # only a hidden temporary exists
    assert len(list(folder.glob(".*.tmp"))) == 1
    w.abort()
    assert list(folder.iterdir()) == []


def test_readback_in_duckdb_types_and_provenance(tmp_path):
    writer = DatasetWriter(tmp_path, "run1")
    writer.documents.write(documents_to_table([_doc(1), _doc(2)], PROV))
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    writer.rejects.write(rejects_to_table([Reject("bad.txt", "empty_text", "d", "e")], "run1", at))
    writer.close()
    con = duckdb.connect()
    row = con.execute(
        f"SELECT doc_id, published_date, sentiment_score, provenance.summarizer.name, meta "
        f"FROM read_parquet('{tmp_path}/documents/*.parquet') ORDER BY doc_id").fetchone()
    assert row[0] == "d1" and row[1] == dt.date(2022, 2, 23)
    assert row[2] == pytest.approx(0.1) and row[3] == "s" and json.loads(row[4]) == {"k": 1}
    rej = pq.read_table(tmp_path / "rejects")
    assert rej.schema.equals(REJECT_SCHEMA, check_metadata=False)
    assert existing_doc_ids(tmp_path) == {"d1", "d2"}
    assert existing_reject_keys(tmp_path) == {("bad.txt", None)}


def test_atomic_json_and_stale_temporaries(tmp_path):
    path = tmp_path / "runs" / "r.json"
    atomic_write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    stale = tmp_path / "documents" / ".part-x-00000.parquet.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists()
