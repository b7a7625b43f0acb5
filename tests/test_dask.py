"""`--task-runner dask`: a real LocalCluster (two worker processes) gives the same rows as the
default thread pool, and each worker loads the models once, not once per task."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from flows.config import DigestConfig
from flows.digest import digest_for
from flows.runners import local_cluster_kwargs, task_runner_for

from .corpus import light_edit, short_articles, write_jsonl

pytestmark = pytest.mark.slow  # subprocesses, servers or clusters


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(**local_cluster_kwargs(DigestConfig(task_runner="dask", dask_workers=2)),
                      dashboard_address=None) as local:
        yield local


def _rows(out) -> list[dict]:
    """Every column, sorted by doc_id, without what differs between runs by design."""
    table = pq.read_table(out / "documents").sort_by("doc_id")
    rows = table.to_pylist()
    for row in rows:
        del row["provenance"]["run_id"], row["provenance"]["processed_at"]
    return rows


def test_runner_choice_follows_the_config():
    from prefect_dask import DaskTaskRunner

    assert task_runner_for(DigestConfig()) is None
    # more batches in flight need more pool threads: each waiting task holds one
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.digest import digest
    from flows.runners import thread_workers

    assert digest.task_runner._max_workers == thread_workers(2)
    wide = task_runner_for(DigestConfig(max_in_flight=6))
    assert isinstance(wide, ThreadPoolTaskRunner)
    assert wide._max_workers == thread_workers(6) > thread_workers(2)
    local = task_runner_for(DigestConfig(task_runner="dask", dask_workers=3))
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert local.cluster_kwargs == {"processes": True, "threads_per_worker": 1, "n_workers": 3}
    remote = task_runner_for(DigestConfig(task_runner="dask", dask_address="tcp://h:8786"))
    assert remote.address == "tcp://h:8786" and not remote.cluster_kwargs
    with pytest.raises(ValueError, match="need task_runner 'dask'"):
        DigestConfig(dask_address="tcp://h:8786")


def test_local_cluster_gives_the_rows_of_the_thread_pool(prefect_harness, cluster, tmp_path):
    from distributed import Client

    arts = short_articles(3)
    inp = write_jsonl(tmp_path / "in.jsonl",
                      [*arts, {"id": "copy", "text": light_edit(arts[0]["text"], 2)}])
    threads = DigestConfig(input=inp, output=tmp_path / "threads", batch_size=1,
                           show_progress=False)
    on_dask = threads.updated(output=tmp_path / "dask", task_runner="dask",
                              dask_address=cluster.scheduler_address)
    from flows.digest import digest

    assert digest_for(threads) is digest
    digest(threads)
    # the plain flow (as a deployment loads it) reruns itself on the Dask cluster
    summary = digest(on_dask)
    assert summary["counts"]["written"] == 4 and summary["near_duplicates"] == 1

    expected, got = _rows(tmp_path / "threads"), _rows(tmp_path / "dask")
    assert [r["duplicate_of"] for r in got if r["doc_id"] == "copy"] == [arts[0]["id"]]
    assert [r["doc_id"] for r in got] == [r["doc_id"] for r in expected]
    # Every sentence runs alone on one ORT thread: the same bits in a worker process as in
    # the flow's own threads (tasks.models.rowwise)
    assert got == expected

    def load_counts() -> dict[str, tuple[int, int]]:
        """(loads, reuses) of each model loader's per-process cache in this worker."""
        from tasks.models import encoder, onnx_backend, sentiment
        from tasks.models import summarizers as summarize

        return {f"{f.__module__}.{f.__name__}": (f.cache_info().misses, f.cache_info().hits)
                for f in (encoder._load_encoder, sentiment._load_sentiment, summarize._load,
                          onnx_backend._load_encoder, onnx_backend._load_sentiment)}

    with Client(cluster.scheduler_address) as client:
        per_worker = client.run(load_counts)
    assert len(per_worker) == 2
    # 4 batches x 3 model steps ran on 2 workers (so one ran two batches and reused its
    # models); no worker loaded a model twice
    assert all(loads <= 1 for counts in per_worker.values() for loads, _ in counts.values())
    assert sum(loads + reuses for counts in per_worker.values()
               for loads, reuses in counts.values()) > 3 * len(per_worker)
    assert any(reuses > 0 for counts in per_worker.values() for _, reuses in counts.values())


def test_dask_options_without_the_dask_runner_are_refused_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("textdigest")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for args, says in ((["--dask-address", "tcp://127.0.0.1:1"], "need task-runner 'dask'"),
                       (["--task-runner", "spark"], "'threads' or 'dask'")):
        done = subprocess.run([str(exe), "run", "--output", str(tmp_path / "o"), *args],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
