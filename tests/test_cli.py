"""The `textdigest` console script, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from .conftest import REPO, SEEDS

EXE = Path(sys.executable).with_name("textdigest")


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "COLUMNS": "120"}
    return subprocess.run([str(EXE), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_help_reads_like_the_readme():
    top = _run("--help")
    assert top.returncode == 0
    assert "run" in top.stdout and "train" in top.stdout
    run = _run("run", "--help")
    assert run.returncode == 0
    for option in ("--input", "--output", "--summarizer", "--sentiment-model", "--batch-size",
                   "--limit", "--text-field", "--text-column"):
        assert option in run.stdout
    readme = (REPO / "README.md").read_text()
    assert "textdigest run" in readme and "pip install -e \".[dev]\"" in readme


def test_expected_errors_are_one_line_without_traceback(tmp_path):
    missing = _run("run", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o"))
    assert missing.returncode == 2
    assert "input not found" in missing.stderr and "Traceback" not in missing.stderr
    bad_model = _run("run", "--input", str(SEEDS), "--output", str(tmp_path / "o"),
                     "--sentiment-model", "no-such-model")
    assert bad_model.returncode == 2
    assert "no-such-model" in bad_model.stderr and "Traceback" not in bad_model.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was written
    bad_batch = _run("run", "--batch-size", "0", "--output", str(tmp_path / "o"))
    assert bad_batch.returncode == 2 and "batch" in bad_batch.stderr


def test_run_prints_the_closing_table_and_writes_the_dataset(tmp_path):
    out = tmp_path / "data"
    proc = _run("run", "--input", str(SEEDS), "--output", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "documents in" in proc.stdout and "docs/s" in proc.stdout
    manifests = list((out / "runs").glob("*.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["counts"]["written"] == 1
    assert pq.read_table(out / "documents").num_rows == 1
    again = _run("run", "--input", str(SEEDS), "--output", str(out), "--no-progress")
    assert again.returncode == 0
    assert pq.read_table(out / "documents").num_rows == 1  # nothing new, no duplicates
