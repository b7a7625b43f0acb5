"""Peak memory of the digest flow as the input grows: is it flat from 10,000 to 100,000 docs?

Documents are short news-like texts (1 to 4 sentences drawn, seeded, from the Financial
PhraseBank and SST-2 train sentences, so nearly every text is distinct and the near-duplicate
index sees real traffic). Each size runs in its own child process, so each peak RSS is its own;
a sampler thread also records RSS along the run, so growth shows even when the peak is set by
model loading.

    python -m bench.memory                          # 10,000 and 100,000 documents
    python -m bench.memory --docs 2000 --docs 20000 --no-near-dup
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.speed import EVAL_DIR, load_avg, machine, peak_rss_mib

FPB = EVAL_DIR / "fpb_lowagree.tsv"
SST2_TRAIN = EVAL_DIR / "sst2" / "train.tsv"


def sentence_pool() -> list[str]:
    from tasks.training.train_head import read_tsv

    pool = [t for t, _ in read_tsv(FPB)]
    pool += [t for t, _ in read_tsv(SST2_TRAIN) if len(t.split()) >= 6]
    return pool


def write_input(path: Path, n: int, seed: int = 7) -> Path:
    """`n` JSONL documents of 1-4 pool sentences each (seeded: the same input every time)."""
    rng = random.Random(seed)
    pool = sentence_pool()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            picked = rng.sample(pool, rng.randint(1, 4))
            text = " ".join(s.strip().rstrip(".") + "." for s in picked)
            fh.write(json.dumps({"id": f"m{i:07d}", "text": text}) + "\n")
    return path


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    """RSS every `interval` seconds while the flow runs."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval, self.samples, self._stop_event = interval, [], threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while not self._stop_event.wait(self.interval):
            self.samples.append((time.perf_counter() - start, _rss_mib()))

    def stop(self) -> list[tuple[float, float]]:
        self._stop_event.set()
        self.join()
        return self.samples


def child(input_path: Path, near_dup: bool, batch_size: int | None, result: Path) -> None:
    from flows.config import DigestConfig
    from flows.digest import digest

    work = Path(tempfile.mkdtemp(prefix="textdigest-memory-"))
    options = {"batch_size": batch_size} if batch_size else {}
    config = DigestConfig(input=input_path, output=work / "out", show_progress=False,
                          near_dup_threshold=0.8 if near_dup else None, **options)
    models = config.model_names()
    models.load_encoder(), models.load_sentiment(), models.load_summarizer()
    after_load = _rss_mib()
    sampler = RssSampler()
    sampler.start()
    manifest = digest(config)
    samples = sampler.stop()
    rss = [r for _, r in samples] or [after_load]
    # RSS over the second half of the run against the first: growth that scales with input.
    half = len(rss) // 2
    result.write_text(json.dumps({
        "docs": manifest["counts"]["read"], "batch_size": config.runtime.batch_size,
        "written": manifest["counts"]["written"],
        "wall_s": manifest["timings_s"]["processing_wall"], "after_load_mib": after_load,
        "peak_rss_mib": peak_rss_mib(), "rss_first_half_max": max(rss[:half] or rss),
        "rss_second_half_max": max(rss[half:]), "rss_end": rss[-1],
        "near_duplicates": manifest["near_duplicates"], "loadavg": load_avg(),
    }), encoding="utf-8")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, action="append",
                        help="input sizes (repeatable; default 10,000 and 100,000)")
    parser.add_argument("--no-near-dup", action="store_true",
                        help="turn the near-duplicate index off (it grows with the dataset)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="documents per batch task (default: the flow's default)")
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.result:
        child(args.input, not args.no_near_dup, args.batch_size, args.result)
        return []

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    sizes = args.docs or [10_000, 100_000]
    print(f"machine: {machine()}; load average {load_avg()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="textdigest-memory-") as tmp:
        for n in sizes:
            input_path = write_input(Path(tmp) / f"docs-{n}.jsonl", n)
            out = Path(tmp) / f"{n}.json"
            cmd = [sys.executable, "-m", "bench.memory", "--input", str(input_path),
                   "--result", str(out)] + (["--no-near-dup"] if args.no_near_dup else [])
            cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
            print(f"running the flow on {n:,} documents ...", flush=True)
            env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
            subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1],
                           stdout=subprocess.DEVNULL, env=env)
            results.append(json.loads(out.read_text(encoding="utf-8")))
    base = results[0]["peak_rss_mib"]
    head = (f"{'docs':>8}{'docs/s':>9}{'after load':>12}{'1st half':>10}{'2nd half':>10}"
            f"{'peak RSS':>10}{'x first':>9}{'near-dups':>10}{'loadavg':>16}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['docs']:>8,}{r['docs'] / r['wall_s']:>9.1f}{r['after_load_mib']:>9.0f}MiB"
              f"{r['rss_first_half_max']:>7.0f}MiB{r['rss_second_half_max']:>7.0f}MiB"
              f"{r['peak_rss_mib']:>7.0f}MiB{r['peak_rss_mib'] / base:>8.2f}x"
              f"{str(r['near_duplicates']):>10}{r['loadavg'].split()[0]:>16}")
    print(f"near-duplicate index: {'off' if args.no_near_dup else 'on (threshold 0.8)'}; "
          f"batch size {results[0]['batch_size']}")
    return results


if __name__ == "__main__":
    main()
