"""Runs killed with SIGKILL at random points (several seeds): what a reader can see is only
complete files, and the next run completes the rest with no duplicates and ends equal to a
run that was never interrupted (the approach of test_resume, at random kill points)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.config import DigestConfig

from .corpus import articles

pytestmark = pytest.mark.slow  # subprocesses, servers or clusters

EXE = Path(sys.executable).with_name("textdigest")
SEEDS = (1, 2, 3)
N_ARTICLES = 8  # the committed fixture articles


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Eight short articles (their first sentences) and two bad lines, as JSONL."""
    path = tmp_path_factory.mktemp("kill-in") / "articles.jsonl"
    lines = []
    for row in articles()[:N_ARTICLES]:
        lines.append(json.dumps({"id": row["id"], "text": row["text"][:500]}))
    lines[3:3] = ["{not json", json.dumps({"id": "x", "text": 7})]
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(inp: Path, out: Path) -> DigestConfig:
    return DigestConfig(input=inp, output=out, batch_size=2, shard_rows=2, show_progress=False)


def _state(out: Path) -> tuple[dict[str, tuple], set[tuple[str, str]]]:
    """Documents (doc_id -> what the models made) and rejects, failing on duplicates."""
    docs = pq.read_table(out / "documents").to_pylist()
    ids = [r["doc_id"] for r in docs]
    assert len(ids) == len(set(ids)), "duplicate documents"
    rejects = [(r["source"], r["reason"]) for r in pq.read_table(out / "rejects").to_pylist()]
    assert len(rejects) == len(set(rejects)), "duplicate rejects"
    return ({r["doc_id"]: (r["summary"], round(r["sentiment_score"], 4), r["language"])
             for r in docs}, set(rejects))


def _visible_files_are_complete(out: Path) -> None:
    for path in out.rglob("*"):
        if path.is_dir() or path.name.startswith("."):
            continue  # hidden temporaries are invisible to readers (and removed next run)
        if path.suffix == ".parquet":
            meta = pq.read_metadata(path)  # a half-written file has no footer: this raises
            assert pq.read_table(path).num_rows == meta.num_rows > 0
        else:
            assert path.suffix == ".json", path
            json.loads(path.read_text())


def _kill_at_random_points(inp: Path, outs: dict[int, Path], env: dict[str, str]) -> int:
    """Start one run per seed (at once: the start-up dominates) and SIGKILL each after a
    random number of output files plus a random delay. Returns how many were killed."""
    plan, procs = {}, {}
    for seed, out in outs.items():
        rng = random.Random(seed)
        plan[seed] = (rng.randint(1, 5), rng.uniform(0.0, 0.4))
        cmd = [str(EXE), "run", "--input", str(inp), "--output", str(out), "--batch-size", "2",
               "--shard-rows", "2", "--no-progress"]
        procs[seed] = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
    killed, fire_at = 0, {}
    deadline = time.monotonic() + 300
    while procs and time.monotonic() < deadline:
        for seed, proc in list(procs.items()):
            out, (files_before_kill, delay) = outs[seed], plan[seed]
            if seed not in fire_at and out.is_dir() and sum(
                    1 for p in out.rglob("*") if p.is_file()) >= files_before_kill:
                fire_at[seed] = time.monotonic() + delay
            if proc.poll() is not None:
                del procs[seed]
            elif seed in fire_at and time.monotonic() >= fire_at[seed]:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                killed += 1
                del procs[seed]
        time.sleep(0.01)
    for proc in procs.values():  # past the deadline: never leave a run behind
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return killed


def test_sigkill_at_random_points_then_rerun_equals_a_clean_run(inputs, tmp_path,
                                                                 prefect_harness):
    from prefect.settings import PREFECT_API_URL

    from flows.digest import digest

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_API_URL": PREFECT_API_URL.value()}
    clean_out = tmp_path / "clean"
    digest(_config(inputs, clean_out))
    expected = _state(clean_out)
    assert len(expected[0]) == N_ARTICLES and len(expected[1]) == 2

    outs = {seed: tmp_path / f"killed-{seed}" for seed in SEEDS}
    killed = _kill_at_random_points(inputs, outs, env)
    assert killed >= 1, "no seed killed a run before it finished"
    for seed, out in outs.items():
        _visible_files_are_complete(out)
        summary = digest(_config(inputs, out))  # the next run
        counts = summary["counts"]
        assert counts["read"] == counts["written"] + counts["rejected"] + \
            counts["skipped_existing"] == N_ARTICLES + 2
        assert not list(out.rglob("*.tmp")), "temporaries left after the next run"
        assert _state(out) == expected, f"seed {seed}"
