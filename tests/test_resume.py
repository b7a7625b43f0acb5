"""A run killed with SIGKILL mid-way, then run again, ends with exactly the rows of an
uninterrupted run: no duplicates, no half-written files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tasks.io.near_duplicates import index_files

from .corpus import articles, light_edit

pytestmark = pytest.mark.slow  # subprocesses, servers or clusters

EXE = Path(sys.executable).with_name("textdigest")
N_EDITS = 3
N_DOCS = len(articles()) + N_EDITS  # 8 fixture articles + 3 edited copies: 4 shards of <= 3


def _articles(tmp_path: Path) -> Path:
    """A JSONL input of the fixture news articles (tests/data/fixtures/articles.jsonl), then
    lightly edited copies of the first N_EDITS of them (near-duplicates)."""
    path = tmp_path / "articles.jsonl"
    rows = [{"id": r["id"], "text": r["text"]} for r in articles()]
    rows += [{"id": f"{r['id']}-edit", "text": light_edit(r["text"], 2)} for r in rows[:N_EDITS]]
    assert len(rows) == N_DOCS
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cmd(inp: Path, out: Path) -> list[str]:
    return [str(EXE), "run", "--input", str(inp), "--output", str(out), "--batch-size", "3",
            "--shard-rows", "3", "--max-in-flight", "1", "--no-progress"]


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _rows(out: Path, complete: bool = True) -> dict[str, tuple]:
    table = pq.read_table(out / "documents",
                          columns=["doc_id", "summary", "sentiment_score", "duplicate_of"])
    rows = table.to_pylist()
    ids = [r["doc_id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate rows"
    if complete:  # the near-duplicate index holds each written document once, nothing else
        indexed = [i for f in index_files(out)
                   for i in pq.read_table(f).column("doc_id").to_pylist()]
        assert sorted(indexed) == sorted(ids)
    return {r["doc_id"]: (r["summary"], round(r["sentiment_score"], 4), r["duplicate_of"])
            for r in rows}


def test_sigkill_then_rerun_equals_a_clean_run(tmp_path):
    inp = _articles(tmp_path)
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"

    proc = subprocess.Popen(_cmd(inp, killed_out), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    shards = killed_out / "documents"
    while time.monotonic() < deadline and proc.poll() is None:
        if list(shards.glob("*.parquet")):  # one batch at a time: three more to come
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    partial = _rows(killed_out, complete=False)  # every visible shard is complete, readable
    assert 0 < len(partial) < N_DOCS
    assert not list(killed_out.glob("runs/*.json"))  # the killed run wrote no manifest

    resumed = subprocess.run(_cmd(inp, killed_out), env=ENV, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not list(killed_out.rglob(".*.tmp"))
    (manifest,) = [json.loads(p.read_text()) for p in (killed_out / "runs").glob("*.json")]
    assert manifest["counts"]["skipped_existing"] == len(partial)
    assert manifest["counts"]["written"] == N_DOCS - len(partial)

    clean = subprocess.run(_cmd(inp, clean_out), env=ENV, capture_output=True, text=True,
                           timeout=600)
    assert clean.returncode == 0, clean.stderr[-2000:]
    clean_rows = _rows(clean_out)
    assert sum(row[2] is not None for row in clean_rows.values()) == N_EDITS
    assert _rows(killed_out) == clean_rows
