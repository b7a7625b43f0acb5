"""Real `digest` flow runs (Prefect's temporary API, real models, real Parquet)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from flows.config import DigestConfig
from tasks.record import DOCUMENT_SCHEMA
from tasks.steps.sentences import split_sentences

from .conftest import SEEDS


@pytest.fixture(scope="module")
def seed_run(prefect_harness, tmp_path_factory):
    from flows.digest import digest

    out = tmp_path_factory.mktemp("seed-out")
    summary = digest(DigestConfig(input=SEEDS, output=out, show_progress=False))
    return out, summary


def test_seed_article_is_parsed_summarised_and_scored(seed_run):
    out, summary = seed_run
    table = pq.read_table(out / "documents")
    assert table.schema.equals(DOCUMENT_SCHEMA, check_metadata=False)
    assert table.num_rows == len(list(SEEDS.glob("*.txt")))
    row = next(r for r in table.to_pylist() if r["source"].startswith("000_"))
    assert row["published_date"] == dt.date(2022, 2, 23)
    assert row["dateline"] == "WASHINGTON"
    assert row["agency"] == "TASS"
    assert row["text"].startswith("Ukraine will never recognize")
    assert "/TASS/" not in row["text"] and "date 2022" not in row["text"]
    assert 2 <= len(row["summary_sentences"]) <= 4
    assert row["summary_sentences"] == sorted(row["summary_sentences"])
    # every summary sentence is drawn from the cleaned body
    sentences = split_sentences(row["text"])
    assert len(sentences) == row["n_sentences"]
    assert row["summary"] == " ".join(sentences[i] for i in row["summary_sentences"])
    assert row["sentiment"] in ("negative", "neutral")
    assert row["sentiment_score"] == pytest.approx(row["prob_positive"] - row["prob_negative"],
                                                   abs=1e-5)
    assert abs(row["prob_negative"] + row["prob_neutral"] + row["prob_positive"] - 1) < 1e-4
    prov = row["provenance"]
    assert prov["run_id"] == summary["run_id"]
    for model in ("encoder", "summarizer", "sentiment_model"):
        assert prov[model]["name"] and prov[model]["revision"]
        json.loads(prov[model]["params"])


def test_seed_output_reads_in_duckdb_and_manifest_accounts_for_all(seed_run):
    out, summary = seed_run
    n, agency = duckdb.connect().execute(
        f"SELECT count(*), any_value(agency) FROM read_parquet('{out}/documents/*.parquet')"
    ).fetchone()
    assert (n, agency) == (1, "TASS")
    manifest = json.loads((out / "runs" / f"{summary['run_id']}.json").read_text())
    assert manifest["status"] == "completed" and manifest["accounted"]
    assert manifest["counts"] == {"read": 1, "written": 1, "rejected": 0, "skipped_existing": 0}
    assert [s["rows"] for s in manifest["outputs"]["documents"]] == [1]
    assert manifest["models"]["summarizer"]["name"]


def test_every_input_is_accounted_for_and_a_repeat_adds_nothing(prefect_harness, tmp_path):
    from flows.digest import digest

    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(next(SEEDS.glob("*.txt")), inp / "seed.txt")
    (inp / "z-copy.txt").write_text((inp / "seed.txt").read_text())  # same text, same doc_id
    (inp / "empty.txt").write_text("\n\n")
    (inp / "markup.txt").write_text("<div><script>var x = 1;</script></div>")
    (inp / "notes.md").write_text("# not an input format")
    (inp / "feed.jsonl").write_text(
        json.dumps({"id": "a1", "text": "Shares rose sharply. Investors cheered the results."})
        + "\n{broken\n"
    )
    out = tmp_path / "out"
    cfg = DigestConfig(input=inp, output=out, batch_size=2, show_progress=False)
    first = digest(cfg)
    c = first["counts"]
    assert c["read"] == 7
    assert c["written"] + c["rejected"] == 7 and c["written"] == 2
    assert first["rejects_by_reason"] == {"duplicate_doc_id": 1, "empty_after_cleaning": 1,
                                          "empty_text": 1, "malformed_json": 1,
                                          "unsupported_format": 1}
    rejects = pq.read_table(out / "rejects").to_pylist()
    assert {r["source"] for r in rejects} == {"z-copy.txt", "empty.txt", "markup.txt",
                                              "notes.md", "feed.jsonl:2"}
    assert all(r["reason"] and r["run_id"] == first["run_id"] for r in rejects)

    second = digest(cfg)
    assert second["counts"] == {"read": 7, "written": 0, "rejected": 0, "skipped_existing": 7}
    ids = pq.read_table(out / "documents").column("doc_id").to_pylist()
    assert len(ids) == len(set(ids)) == 2


def test_output_loads_unchanged_in_pandas_polars_and_datasets(seed_run):
    import pandas as pd
    import polars as pl
    from datasets import load_dataset

    out, _ = seed_run
    arrow = pq.read_table(out / "documents").to_pylist()
    pdf = pd.read_parquet(out / "documents")
    assert list(pdf.columns) == DOCUMENT_SCHEMA.names
    assert pdf["doc_id"].tolist() == [r["doc_id"] for r in arrow]
    assert pdf["published_date"].iloc[0] == dt.date(2022, 2, 23)
    pldf = pl.read_parquet(str(out / "documents" / "*.parquet"))
    assert pldf.columns == DOCUMENT_SCHEMA.names
    assert pldf["provenance"].struct.field("run_id").to_list() == [
        r["provenance"]["run_id"] for r in arrow]
    ds = load_dataset("parquet", data_files=str(out / "documents" / "*.parquet"), split="train",
                      cache_dir=str(out.parent / "hf-cache"))
    assert ds.column_names == DOCUMENT_SCHEMA.names
    assert ds[0]["summary"] == arrow[0]["summary"]
    assert ds[0]["summary_sentences"] == arrow[0]["summary_sentences"]
    assert ds[0]["provenance"]["summarizer"]["name"] == arrow[0]["provenance"]["summarizer"]["name"]


def test_reject_ratio_fails_the_run_but_keeps_what_was_written(prefect_harness, tmp_path):
    from flows.digest import RunCheckError, digest

    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(next(SEEDS.glob("*.txt")), inp / "seed.txt")
    for n in range(3):
        (inp / f"empty{n}.txt").write_text(" ")
    out = tmp_path / "out"
    with pytest.raises(RunCheckError, match="max-reject-ratio"):
        digest(DigestConfig(input=inp, output=out, max_reject_ratio=0.5, show_progress=False))
    (manifest,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert manifest["status"] == "failed" and manifest["counts"]["rejected"] == 3
    assert pq.read_table(out / "documents").num_rows == 1


def test_torch_threads_option_sets_the_flow_process_threads(prefect_harness, tmp_path):
    import torch

    from flows.digest import digest

    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    try:
        summary = digest(DigestConfig(input=SEEDS, output=tmp_path / "out", show_progress=False,
                                      torch_threads=wanted))
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
    assert summary["counts"]["written"] == len(list(SEEDS.glob("*.txt")))
    with pytest.raises(ValueError, match="torch_threads"):
        DigestConfig(torch_threads=0)


def test_a_feed_that_gains_lines_at_the_top_adds_only_the_new_record(prefect_harness, tmp_path):
    """Line numbers shift in `source`; documents are known by doc_id, so nothing is redone."""
    from flows.digest import digest

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    lines = [json.dumps({"text": t}) for t in (
        "Shares rose sharply on Monday. Investors cheered the quarterly results.",
        "The central bank held rates steady. Analysts had expected no change.")]
    (inp / "feed.jsonl").write_text("\n".join(lines) + "\n")
    cfg = DigestConfig(input=inp, output=out, show_progress=False)
    assert digest(cfg)["counts"]["written"] == 2
    fresh = json.dumps({"text": "Oil prices fell for a third day. Supplies grew faster."})
    (inp / "feed.jsonl").write_text("\n".join([fresh, *lines]) + "\n")
    assert digest(cfg)["counts"] == {"read": 3, "written": 1, "rejected": 0,
                                     "skipped_existing": 2}
    assert pq.read_table(out / "documents").num_rows == 3


def test_input_is_counted_only_for_a_progress_bar(prefect_harness, tmp_path, monkeypatch):
    """Counting reads the whole input a second time: a run without a bar must not do it."""
    from flows.digest import digest
    from tasks.io import ingest

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "c1", "text": "Shares rose. Investors cheered."}) + "\n")
    counted: list[object] = []
    real = ingest.count_items
    monkeypatch.setattr(ingest, "count_items",
                        lambda *a, **k: counted.append(a) or real(*a, **k))
    quiet = DigestConfig(input=inp, output=tmp_path / "quiet", show_progress=False)
    assert digest(quiet)["counts"]["written"] == 1
    assert counted == []
    digest(quiet.updated(output=tmp_path / "bar", show_progress=True))
    assert len(counted) == 1
