"""Chunked map-reduce on long documents: chunk counts, reduce rounds and seconds per document.

No Hub here, so the model is the tests' tiny random-weight BART (128-token input, d_model 32):
the numbers measure the chunking and batching machinery, not a real model's speed or quality.

    python -m bench.hf_long_docs [--words 20000] [--docs 3] [--batch 128] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval" / "cnndm" / "dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=20_000)
    parser.add_argument("--docs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()

    import torch

    from tasks.models.summarizers import load_summarizer
    from tasks.record import Document
    from tasks.steps.sentences import split_sentences
    from tests import tiny_models as tiny

    corpus = [json.loads(line)["article"] for line in SHARED.open(encoding="utf-8")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny.build_bart(Path(tmp) / "bart", tiny.train_tokenizer(corpus, "<s> $A </s>"))
        model = load_summarizer(str(folder), max_new_tokens=args.max_new_tokens,
                                min_new_tokens=2, num_beams=1, batch_size=args.batch,
                                dtype=args.dtype)
        text = tiny.news_text(SHARED, args.words)
        n_tokens = sum(model.chunker.count([text]))
        seconds, chunks = [], []
        for i in range(args.docs):
            doc = Document(f"d{i}", "bench", text, text=text, sentences=split_sentences(text))
            started = time.perf_counter()
            model.summarize([doc])
            seconds.append(time.perf_counter() - started)
            chunks.append(doc.summary_chunks)
    print(json.dumps({
        "words": args.words, "tokens": n_tokens, "input_limit": model.limit,
        "chunk_budget": model.chunker.budget, "chunks": chunks,
        "tokens_per_chunk": round(n_tokens / chunks[0], 1), "batch": args.batch,
        "max_new_tokens": args.max_new_tokens, "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        "seconds_per_doc": [round(s, 2) for s in seconds],
        "median_s": round(statistics.median(seconds), 2),
    }, indent=2))


if __name__ == "__main__":
    main()
