"""Sentiment quality on data the default head never trained on.

SST-2 dev (872 movie-review sentences, negative/positive): a row is correct when the sign of
`sentiment_score` matches its label. Each row is one document of one sentence: SST-2 rows are
single sentences already (tokenised, so a splitter would only cut at stray periods).
Financial PhraseBank held-out part (the fixed split in `tasks.train_head.fpb_split`): 3-class
accuracy of `sentiment`, per-class recall, confusion matrix, and the always-neutral baseline.

    python -m bench.sentiment_eval
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tasks.embed import embed_sentences
from tasks.models import load_encoder
from tasks.record import SENTIMENT_LABELS, Document
from tasks.sentiment import SentimentModel, load_sentiment
from tasks.train_head import fpb_split, read_tsv, three_class_metrics

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

    _, heldout = fpb_split(read_tsv(FPB))
    fdocs = _score(model, [t for t, _ in heldout], "fpb-heldout")
    y = np.array([SENTIMENT_LABELS.index(label) for _, label in heldout])
    probs = np.array([d.sentiment_probs for d in fdocs], dtype=np.float64)
    return {
        "model": model.provenance(),
        "sst2_dev": {"rows": len(dev), "accuracy": round(float((signs == labels).mean()), 4),
                     "unit": "one row = one single-sentence document; sign of sentiment_score"},
        "fpb_heldout": three_class_metrics(probs, y),
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
    lines += [f"{'FPB recall ' + label:<40}{r:>10.1%}" for label, r in fpb["recall"].items()]
    lines.append("FPB confusion (rows true, cols predicted: " + " / ".join(SENTIMENT_LABELS) + ")")
    lines += [f"  {label:<10}" + "".join(f"{n:>7}" for n in row)
              for label, row in zip(SENTIMENT_LABELS, fpb["confusion"], strict=True)]
    return "\n".join(lines)


def main(name: str = "minilm-head", as_json: bool = False) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = evaluate(load_sentiment(name))
    print(json.dumps(result, indent=2) if as_json else format_table(result))
    return result


if __name__ == "__main__":
    main()
