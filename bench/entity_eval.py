"""Score target mentions with the built-in entity model as the pipeline does; print accuracy
and macro-F1.

    python -m bench.entity_eval --input ../shared/train/newsmtsc_dev_rw.jsonl \\
        [--predictions preds.jsonl] [--backend onnx|torch]
    python -m bench.entity_eval --sentfin ../shared/train/sentfin.tsv   # its held-out entities

Input: the NewsMTSC format, one JSON object a line with `sentence`, `from`, `to`, `mention`
and `polarity` (-1, 0, 1). Each mention runs alone through the entity model (ONNX int8 by
default, as `textdigest run`); its label follows the model's neutral band, as the
`entities` column's. `--predictions` writes one line per input row: `pred` (-1/0/1) and
`score` (p(positive) - p(negative)), with the row's `id` when it has one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def read_rows(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        sentence, a, b = row["sentence"], int(row["from"]), int(row["to"])
        if "mention" in row and sentence[a:b] != row["mention"]:
            raise SystemExit(f"{path}:{number}: sentence[from:to] is {sentence[a:b]!r}, "
                             f"not the mention {row['mention']!r}")
        rows.append(row)
    return rows


def sentfin_rows(path: Path) -> list[dict]:
    """SEntFiN's held-out entities as NewsMTSC rows (`mixed` headlines included)."""
    from tasks.training.entity_data import read_sentfin

    heldout = read_sentfin(path)[0]["heldout"]
    return [{"id": f"sentfin-{i}", "sentence": m.text, "from": m.start, "to": m.end,
             "mention": m.text[m.start:m.end], "polarity": m.label - 1}
            for i, m in enumerate(heldout)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="NewsMTSC-format JSONL")
    source.add_argument("--sentfin", type=Path,
                        help="SEntFiN TSV: score its held-out entities (hash split, "
                             "tasks.training.entity_data), each entity's first mention")
    p.add_argument("--predictions", type=Path, default=None)
    p.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    args = p.parse_args(argv)

    from tasks.models.names import ModelNames
    from tasks.models.sentiment_base import label_indices
    from tasks.training.train_head import three_class_metrics

    rows = read_rows(args.input) if args.input else sentfin_rows(args.sentfin)
    model = ModelNames(backend=args.backend).load_entity_model()
    probs = model.probs([(r["sentence"], ((int(r["from"]), int(r["to"])),)) for r in rows])
    probs = np.concatenate(probs) if probs else np.zeros((0, 3), dtype=np.float32)
    pred = (probs.argmax(axis=1) if model.band is None
            else label_indices(probs, model.band)) - 1  # 0/1/2 -> -1/0/1
    out = {"rows": len(rows), "backend": args.backend, "neutral_band": model.band}
    if rows and all("polarity" in r for r in rows):
        y = np.array([int(r["polarity"]) + 1 for r in rows])
        ruled = three_class_metrics(probs, y, model.band)  # the column's label rule
        out |= {"accuracy": ruled["accuracy"], "macro_f1": ruled["macro_f1"],
                "recall": ruled["recall"], "confusion": ruled["confusion"]}
    if args.predictions:
        with args.predictions.open("w", encoding="utf-8") as fh:
            for r, k, pr in zip(rows, pred, probs, strict=True):
                line = {"pred": int(k), "score": round(float(pr[2] - pr[0]), 6)}
                if "id" in r:
                    line = {"id": r["id"], **line}
                fh.write(json.dumps(line) + "\n")
    json.dump(out, sys.stdout)
    print()
    return out


if __name__ == "__main__":
    main()
