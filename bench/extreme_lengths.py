"""Extreme inputs through the plain steps: seconds per step for documents that would make
pysbd slow (super-linear on long paragraphs) or the models choke on a giant "sentence".

    python -m bench.extreme_lengths [--models] [--cap N ...]

`--models` adds embed, summarise and sentiment (ONNX backend, as the product runs);
`--cap N` (repeatable, 0 = none) runs every case at each `max_model_chars`, side by side:
how the default cap (`tasks.steps.sentences.MAX_MODEL_CHARS`) was chosen.

Cases: 2 MB with no punctuation or newlines, one 200,000-character sentence, 225,000
characters of abbreviations ("Mr. Smith e.g. ", pysbd's worst case measured), 2 MB of
ordinary prose (50,000 sentences). Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CASES = {
    "2MB_no_punctuation": "word " * 400_000,
    "200k_char_sentence": "The rally went on " + "and on " * 28_570 + "until it ended.",
    "225k_abbreviations": "Mr. Smith e.g. " * 15_000,
    "2MB_prose": "The minister said the plan would work. " * 51_000,
    # the longest ordinary news articles run to 10,000-15,000 words (~60,000-90,000 chars)
    "90k_article": ("The council met on Tuesday to agree the budget for next year. "
                    "Several members asked for more time to read the figures.\n\n") * 700,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", action="store_true",
                        help="also run embed, summarise and sentiment")
    parser.add_argument("--cap", type=int, action="append",
                        help="max_model_chars to compare (0: none); default: the built-in")
    args = parser.parse_args()

    from tasks.pipeline import active_steps, run_step
    from tasks.record import Document
    from tasks.steps.base import Batch, StepSettings
    from tasks.steps.sentences import MAX_MODEL_CHARS

    for cap in args.cap or [MAX_MODEL_CHARS]:
        settings = StepSettings(max_model_chars=cap or None)  # the product's models (onnx)
        steps = active_steps(settings)
        if not args.models:
            steps = [s for s in steps if s.name in ("clean", "language", "minhash")]
        for name, text in CASES.items():
            batch = Batch(seq=0, docs=[Document(doc_id=name, source=name, raw_text=text)])
            t0 = time.perf_counter()
            row = {"case": name, "chars": len(text), "max_model_chars": cap or None}
            for step in steps:
                if batch.docs:
                    t = time.perf_counter()
                    batch = run_step(step, batch, settings)
                    row[f"{step.name}_s"] = round(time.perf_counter() - t, 2)
            row["total_s"] = round(time.perf_counter() - t0, 2)
            doc = batch.docs[0] if batch.docs else None
            row.update({"sentences": len(doc.sentences) if doc else None,
                        "longest": max(map(len, doc.sentences)) if doc else None,
                        "note": doc.meta.get("textdigest_note") if doc else None,
                        "rejects": [r.reason for r in batch.rejects]})
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
