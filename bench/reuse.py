"""Cross-batch reuse: encoder rows computed when sentence results are kept for the whole run,
against keeping them for one batch only (all a batch-dependent model allowed).

Inputs: the Reuters-21578 stories of ../shared/eval/messy (wire text: datelines, repeated
furniture and table rows) and the distinct documents of `bench.speed` (300, no sentence
repeated). Each arm runs the flow's steps as plain functions (`process_batch`) over the
same batches, with the model caches emptied first (and, per batch, before every batch).

    python -m bench.reuse [--batch-size N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

MESSY = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "messy"
REUTERS_SGM = MESSY / "reuters21578_reut2-000.sgm"


def reuters_input(path: Path) -> Path:
    """The SGML stories with a body, as JSONL (`id`, `title`, `text`)."""
    sgml = REUTERS_SGM.read_text(encoding="latin-1")
    rows = []
    for k, record in enumerate(re.findall(r"<REUTERS\b.*?</REUTERS>", sgml, re.DOTALL)):
        body = re.search(r"<BODY>(.*?)</BODY>", record, re.DOTALL)
        title = re.search(r"<TITLE>(.*?)</TITLE>", record, re.DOTALL)
        if body:
            rows.append({"id": f"reut-{k}", "title": title.group(1) if title else None,
                         "text": body.group(1)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(input_path: Path, batch_size: int, per_batch: bool) -> dict[str, float]:
    from flows.config import DigestConfig
    from tasks.io import ingest
    from tasks.pipeline import Batch, process_batch

    config = DigestConfig(input=input_path, batch_size=batch_size)
    settings = config.step_settings()
    models = settings.models
    caches = list({id(m.cache): m.cache for m in (models.load_encoder(),
                                                  models.load_sentiment())}.values())
    for cache in caches:
        cache.clear()
    computed = hits = docs = 0
    start = time.perf_counter()
    items = ingest.iter_items(input_path, config.ingest_options())
    for seq, raw in enumerate(ingest.batched(items, batch_size, None,
                                             config.runtime.batch_chars)):
        if per_batch:
            for cache in caches:
                computed, hits = computed + cache.misses, hits + cache.hits
                cache.clear()
        batch = process_batch(Batch(seq=seq, docs=[d for d in raw if hasattr(d, "raw_text")]),
                              settings)
        docs += len(batch.docs)
    wall = time.perf_counter() - start
    computed += sum(c.misses for c in caches)
    hits += sum(c.hits for c in caches)
    return {"docs": docs, "computed": computed, "reused": hits, "wall_s": wall}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="documents per batch (default: the flow's)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bench.speed import write_input
    from flows.config import DigestConfig

    batch_size = args.batch_size or DigestConfig().runtime.batch_size
    work = Path(tempfile.mkdtemp(prefix="textdigest-reuse-"))
    inputs = {"reuters-21578 (messy)": reuters_input(work / "reuters.jsonl"),
              "bench.speed, 300 distinct": write_input(work / "distinct.jsonl", 300)}
    run(inputs["bench.speed, 300 distinct"], batch_size, False)  # load and warm the models
    print(f"batch size {batch_size}; rows = sentences through the encoder (lead and titles)\n")
    print(f"{'input':28s} {'docs':>5s} {'rows, per batch':>16s} {'rows, per run':>14s} "
          f"{'saved':>6s} {'s, per batch':>13s} {'s, per run':>11s} {'speed-up':>9s}")
    for name, path in inputs.items():
        batch = run(path, batch_size, per_batch=True)
        whole = run(path, batch_size, per_batch=False)
        saved = 1 - whole["computed"] / batch["computed"]
        print(f"{name:28s} {whole['docs']:5d} {batch['computed']:16d} {whole['computed']:14d} "
              f"{saved:6.1%} {batch['wall_s']:13.1f} {whole['wall_s']:11.1f} "
              f"{batch['wall_s'] / whole['wall_s']:8.2f}x")


if __name__ == "__main__":
    main()
