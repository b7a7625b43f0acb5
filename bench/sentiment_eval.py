"""Sentiment quality on data the default head never trained on.

SST-2 dev (872 movie-review sentences, negative/positive): a row is correct when the sign of
`sentiment_score` matches its label. Each row is one document of one sentence: SST-2 rows are
single sentences already (tokenised, so a splitter would only cut at stray periods).
Financial PhraseBank held-out part (the fixed split in `tasks.train_head.fpb_split`): 3-class
accuracy of `sentiment`, per-class recall, confusion matrix, and the always-neutral baseline.
Both report expected calibration error (15 bins, top label; SST-2 on renormalised neg/pos).

    python -m bench.sentiment_eval                  # every built-in model, side by side
    python -m bench.sentiment_eval --model minilm-lora
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tasks.embed import embed_sentences
from tasks.models import ModelError, load_encoder
from tasks.record import SENTIMENT_LABELS, Document
from tasks.sentiment import BUILTIN_SENTIMENT, SentimentModel, load_sentiment
from tasks.train_head import fpb_split, read_tsv, three_class_metrics
from tasks.train_sentiment import expected_calibration_error, polar_probs

EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
SST2_DEV = EVAL_DIR / "sst2" / "dev.tsv"
FPB = EVAL_DIR / "fpb_lowagree.tsv"


def _score(model: SentimentModel, texts: list[str], prefix: str) -> list[Document]:
    docs = [
        Document(doc_id=f"{prefix}-{i}", source=prefix, raw_text=t, text=t, sentences=[t])
        for i, t in enumerate(texts)
    ]
    if model.needs_embeddings:  # as the pipeline does: embed once, share with the models
        embed_sentences(docs, load_encoder())
    return model.score(docs)


def evaluate(model: SentimentModel) -> dict[str, Any]:
    """SST-2 dev polarity accuracy and FPB held-out 3-class figures for `model`."""
    dev = read_tsv(SST2_DEV)
    docs = _score(model, [t for t, _ in dev], "sst2-dev")
    labels = np.array([int(label) for _, label in dev])
    signs = np.array([(d.sentiment_score or 0.0) > 0 for d in docs], dtype=int)
    dev_probs = np.array([d.sentiment_probs for d in docs], dtype=np.float64)

    _, heldout = fpb_split(read_tsv(FPB))
    fdocs = _score(model, [t for t, _ in heldout], "fpb-heldout")
    y = np.array([SENTIMENT_LABELS.index(label) for _, label in heldout])
    probs = np.array([d.sentiment_probs for d in fdocs], dtype=np.float64)
    fpb = three_class_metrics(probs, y)
    fpb["ece"] = expected_calibration_error(probs, y)
    return {
        "model": model.provenance(),
        "sst2_dev": {"rows": len(dev), "accuracy": round(float((signs == labels).mean()), 4),
                     "ece_polar": expected_calibration_error(polar_probs(dev_probs), labels),
                     "unit": "one row = one single-sentence document; sign of sentiment_score"},
        "fpb_heldout": fpb,
    }


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of an `evaluate` result."""
    fpb = result["fpb_heldout"]
    lines = [
        f"sentiment model: {result['model']['name']}  ({result['model']['revision']})",
        f"{'metric':<40}{'value':>10}",
        f"{'SST-2 dev accuracy (sign of score)':<40}{result['sst2_dev']['accuracy']:>10.1%}"
        f"   n={result['sst2_dev']['rows']}",
        f"{'FPB held-out 3-class accuracy':<40}{fpb['accuracy']:>10.1%}   n={fpb['rows']}",
        f"{'FPB held-out always-neutral baseline':<40}{fpb['always_neutral_accuracy']:>10.1%}",
    ]
    if "ece" in fpb:
        sst_ece = result["sst2_dev"]["ece_polar"]
        lines += [f"{'SST-2 dev ECE (neg/pos, 15 bins)':<40}{sst_ece:>10.3f}",
                  f"{'FPB held-out ECE (15 bins)':<40}{fpb['ece']:>10.3f}"]
    lines += [f"{'FPB recall ' + label:<40}{r:>10.1%}" for label, r in fpb["recall"].items()]
    lines.append("FPB confusion (rows true, cols predicted: " + " / ".join(SENTIMENT_LABELS) + ")")
    lines += [f"  {label:<10}" + "".join(f"{n:>7}" for n in row)
              for label, row in zip(SENTIMENT_LABELS, fpb["confusion"], strict=True)]
    return "\n".join(lines)


def format_comparison(results: list[dict[str, Any]]) -> str:
    """Models side by side, one column each: the headline figures of several `evaluate` runs."""
    rows: list[tuple[str, str, Any]] = [
        ("SST-2 dev accuracy (sign of score)", "pct", lambda r: r["sst2_dev"]["accuracy"]),
        ("FPB held-out 3-class accuracy", "pct", lambda r: r["fpb_heldout"]["accuracy"]),
        *[(f"FPB recall {label}", "pct", lambda r, lb=label: r["fpb_heldout"]["recall"][lb])
          for label in SENTIMENT_LABELS],
        ("SST-2 dev ECE (neg/pos, 15 bins)", "num", lambda r: r["sst2_dev"].get("ece_polar")),
        ("FPB held-out ECE (15 bins)", "num", lambda r: r["fpb_heldout"].get("ece")),
    ]
    width = max(16, *(len(r["model"]["name"]) + 2 for r in results))
    lines = [f"{'metric':<38}" + "".join(f"{r['model']['name']:>{width}}" for r in results)]
    for title, kind, get in rows:
        cells = []
        for r in results:
            value = get(r)
            cells.append("n/a" if value is None else f"{value:.1%}" if kind == "pct"
                         else f"{value:.3f}")
        lines.append(f"{title:<38}" + "".join(f"{c:>{width}}" for c in cells))
    fpb, n_dev = results[0]["fpb_heldout"], results[0]["sst2_dev"]["rows"]
    lines.append(f"(FPB held-out n={fpb['rows']}, always-neutral "
                 f"{fpb['always_neutral_accuracy']:.1%}; SST-2 dev n={n_dev})")
    lines += [f"{r['model']['name']}: {r['model']['revision']}" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=sorted(BUILTIN_SENTIMENT),
                        help="model to evaluate (repeatable; default: every built-in model)")
    parser.add_argument("--json", action="store_true", help="print the full results as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    for name in args.model or list(BUILTIN_SENTIMENT):
        try:
            model = load_sentiment(name)
        except ModelError as exc:  # e.g. an adapter not trained yet: report, compare the rest
            print(f"skipping {name}: {exc}")
            continue
        results.append(evaluate(model))
    if args.json:
        print(json.dumps(results, indent=2))
    elif len(results) == 1:
        print(format_table(results[0]))
    elif results:
        print(format_comparison(results))
        for result in results:
            print()
            print(format_table(result))
    return results


if __name__ == "__main__":
    main()
