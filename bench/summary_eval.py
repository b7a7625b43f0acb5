"""ROUGE of a summariser against LEAD-3 on the CNN/DailyMail dev sample.

LEAD-3 (the first three sentences) is the honest baseline for news: it is hard to beat, and a
summariser that loses to it is not worth its cost. Both are computed on the same articles, run
through the same cleaning and sentence splitting as the pipeline, so only the selection differs.

Run: python -m bench.summary_eval
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rouge_score import rouge_scorer

from tasks.models.chosen import ChosenModels
from tasks.models.sentence_encoders import load_sentence_encoder
from tasks.models.summarizers import ExtractiveSummarizer, Summarizer, load_summarizer
from tasks.record import Document
from tasks.steps.clean import clean_document
from tasks.steps.embed import embed_sentences

EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
CNNDM_DEV = EVAL_DIR / "cnndm" / "dev.jsonl"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")


def encoder_for(summarizer: Summarizer):
    """The encoder whose vectors the flow gives `summarizer`: the default run's (the onnx
    backend) when the summariser reads that one."""
    name = getattr(getattr(summarizer, "params", None), "encoder", None)
    models = ChosenModels()
    return models.load_encoder() if name in (None, models.encoder) else load_sentence_encoder(name)


def _prepare(row: dict[str, Any]) -> Document:
    """An article through the pipeline's own cleaning and sentence splitting."""
    return clean_document(Document(doc_id=row["id"], source="cnndm", raw_text=row["article"]))


def load_articles(path: Path = CNNDM_DEV, limit: int | None = None) -> tuple[list[Document],
                                                                              list[str]]:
    """Cleaned, sentence-split documents and their references (highlights, one per line)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rows = rows[:limit] if limit else rows
    return [_prepare(r) for r in rows], [r["highlights"].strip() for r in rows]


def rouge_per_article(picks: list[list[str]], references: list[str]) -> np.ndarray:
    """ROUGE-1/2/Lsum F1 (x100) per article; Lsum sees one sentence per line on both sides."""
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    rows = []
    for sents, ref in zip(picks, references, strict=True):
        scores = scorer.score(ref, "\n".join(sents))
        rows.append([100 * scores[t].fmeasure for t in ROUGE_TYPES])
    return np.array(rows).reshape(-1, len(ROUGE_TYPES))


def rouge(picks: list[list[str]], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/Lsum F1 (x100) and the mean number of sentences picked."""
    means = rouge_per_article(picks, references).mean(axis=0)
    out = {t: float(m) for t, m in zip(ROUGE_TYPES, means, strict=True)}
    out["mean_sentences"] = sum(len(p) for p in picks) / max(len(picks), 1)
    return out


def paired_bootstrap(a: np.ndarray, b: np.ndarray, rounds: int = 2000) -> tuple[float, float]:
    """95% interval of mean(a - b) over resampled articles: is a difference more than noise?"""
    rng = np.random.default_rng(0)
    diff = a - b
    idx = rng.integers(0, len(diff), size=(rounds, len(diff)))
    lo, hi = np.percentile(diff[idx].mean(axis=1), [2.5, 97.5])
    return float(lo), float(hi)


def _picks(docs: list[Document]) -> list[list[str]]:
    return [[d.sentences[i] for i in d.summary_sentence_ids] for d in docs]


def evaluate(summarizer: Summarizer | None = None, limit: int | None = None,
             docs: tuple[list[Document], list[str]] | None = None) -> dict[str, Any]:
    """ROUGE of `summarizer` (default: the pipeline default) and of LEAD-3 on the same articles.

    `docs` (from `load_articles`, embeddings already set) lets a sweep skip re-encoding.
    """
    summarizer = summarizer or load_summarizer()
    if docs is None:
        docs = load_articles(limit=limit)
    articles, refs = docs
    start = time.perf_counter()
    if summarizer.needs_embeddings and any(d.embeddings is None for d in articles):
        embed_sentences(articles, encoder_for(summarizer))
    embedded = time.perf_counter()
    summarizer.summarize(articles)
    done = time.perf_counter()
    picks, lead3 = _picks(articles), [d.sentences[:3] for d in articles]
    r2 = ROUGE_TYPES.index("rouge2")
    return {
        "articles": len(articles),
        "summarizer": summarizer.provenance(),
        "default": rouge(picks, refs),
        "lead3": rouge(lead3, refs),
        "rouge2_minus_lead3_ci95": paired_bootstrap(
            rouge_per_article(picks, refs)[:, r2], rouge_per_article(lead3, refs)[:, r2]
        ),
        "embed_seconds_per_article": (embedded - start) / max(len(articles), 1),
        "summarize_seconds_per_article": (done - embedded) / max(len(articles), 1),
    }


def _neighbours(base: ExtractiveSummarizer) -> list[tuple[str, ExtractiveSummarizer]]:
    p = base.params
    variants = {
        f"half_life={p.position_half_life / 2:g}": {"position_half_life": p.position_half_life / 2},
        f"half_life={p.position_half_life * 2:g}": {"position_half_life": p.position_half_life * 2},
        f"relevance_weight={p.relevance_weight - 0.1:.1f}":
            {"relevance_weight": max(p.relevance_weight - 0.1, 0.0)},
        f"relevance_weight={p.relevance_weight + 0.1:.1f}":
            {"relevance_weight": min(p.relevance_weight + 0.1, 1.0)},
        f"redundancy={p.redundancy / 2:g}": {"redundancy": p.redundancy / 2},
        f"redundancy={p.redundancy * 2:g}": {"redundancy": p.redundancy * 2},
    }
    return [(k, ExtractiveSummarizer(replace(p, **v))) for k, v in variants.items()]


def main(summarizer: Summarizer | None = None) -> None:
    summarizer = summarizer or load_summarizer()
    encoder_for(summarizer)  # load once up front so the timing is per-article work only
    result = evaluate(summarizer)
    print(f"CNN/DailyMail dev sample: {result['articles']} articles ({CNNDM_DEV})")
    print(f"summariser: {result['summarizer']['name']} {result['summarizer']['params']}")
    header = f"{'':34} {'R-1':>6} {'R-2':>6} {'R-Lsum':>7} {'sents':>6}"
    print(header)

    def row(label: str, r: dict[str, float]) -> None:
        print(f"{label:34} {r['rouge1']:6.2f} {r['rouge2']:6.2f} {r['rougeLsum']:7.2f} "
              f"{r['mean_sentences']:6.2f}")

    row("default", result["default"])
    row("LEAD-3", result["lead3"])
    lo, hi = result["rouge2_minus_lead3_ci95"]
    print(f"ROUGE-2 default - LEAD-3, paired bootstrap 95% interval: [{lo:+.2f}, {hi:+.2f}]")
    if isinstance(summarizer, ExtractiveSummarizer):
        docs = load_articles()
        embed_sentences(docs[0], encoder_for(summarizer))
        print("neighbouring settings (robustness; parameters were chosen on this same set):")
        for label, variant in _neighbours(summarizer):
            row(f"  {label}", evaluate(variant, docs=docs)["default"])
    embed_ms = 1000 * result["embed_seconds_per_article"]
    summarize_ms = 1000 * result["summarize_seconds_per_article"]
    print(f"per article (CPU): embed {embed_ms:.1f} ms (shared with sentiment), "
          f"summarise {summarize_ms:.2f} ms")


if __name__ == "__main__":
    main()
