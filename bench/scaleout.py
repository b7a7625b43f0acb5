"""Costs of near-duplicate detection and of the Dask task runner.

    python -m bench.scaleout [--docs 12] [--workers 2]

Prints the MinHash signature and LSH cost per document (CNN/DailyMail dev articles, read from
../shared/eval), then the same digest on the thread pool and on a Dask LocalCluster: cold
(cluster start and model loading included) and warm (a second run on the same cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"


def _articles() -> list[dict[str, str]]:
    with (SHARED / "cnndm" / "dev.jsonl").open() as fh:
        return [{"id": r["id"], "text": r["article"]} for r in map(json.loads, fh)]


def minhash_cost(arts: list[dict[str, str]]) -> dict[str, float]:
    from tasks.io import near_duplicates
    from tasks.steps import minhash

    start = time.perf_counter()
    sigs = [minhash.signature(a["text"]) for a in arts]
    sign_s = time.perf_counter() - start
    index = near_duplicates.NearDupIndex(0.8)
    start = time.perf_counter()
    for art, sig in zip(arts, sigs, strict=True):
        index.add(art["id"], sig, index.match(art["id"], sig))
    lsh_s = time.perf_counter() - start
    words = sum(len(a["text"].split()) for a in arts) / len(arts)
    return {"docs": len(arts), "mean_words": round(words),
            "signature_ms_per_doc": round(1000 * sign_s / len(arts), 3),
            "lsh_match_and_insert_ms_per_doc": round(1000 * lsh_s / len(arts), 3)}


def runner_times(arts: list[dict[str, str]], workers: int) -> list[tuple[str, float, float]]:
    from distributed import LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    from flows.config import DigestConfig
    from flows.digest import digest_for
    from flows.runners import local_cluster_kwargs

    tmp = Path(tempfile.mkdtemp(prefix="scaleout-"))
    inp = tmp / "in.jsonl"
    inp.write_text("".join(json.dumps(a) + "\n" for a in arts))
    base = DigestConfig(input=inp, output=tmp / "x", batch_size=4, show_progress=False)
    rows: list[tuple[str, float, float]] = []

    def timed(label: str, config: DigestConfig) -> None:
        start = time.perf_counter()
        summary = digest_for(config)(config)
        rows.append((label, time.perf_counter() - start, summary["timings_s"]["processing_wall"]))

    with prefect_test_harness():
        timed("threads, cold (models loaded)", base.updated(**{"output": tmp / "t1"}))
        timed("threads, warm", base.updated(**{"output": tmp / "t2"}))
        start = time.perf_counter()
        with LocalCluster(**local_cluster_kwargs(base.updated(
                task_runner="dask", dask_workers=workers)),
                dashboard_address=None) as cluster:
            rows.append((f"LocalCluster start ({workers} workers)",
                         time.perf_counter() - start, 0.0))
            on = {"task_runner": "dask", "dask_address": cluster.scheduler_address}
            timed("dask, cold (workers load models)",
                  base.updated(**{**on, "output": tmp / "d1"}))
            timed("dask, warm", base.updated(**{**on, "output": tmp / "d2"}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    arts = _articles()
    print(json.dumps(minhash_cost(arts), indent=2))
    print(f"\n{'runner':40s} {'wall s':>8s} {'processing s':>13s}  ({args.docs} docs)")
    for label, wall, proc in runner_times(arts[: args.docs], args.workers):
        print(f"{label:40s} {wall:8.2f} {proc:13.2f}")


if __name__ == "__main__":
    main()
