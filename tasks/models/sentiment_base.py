"""What every sentiment model shares: the protocol, sentence pooling and the label rule."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from tasks.models.registry import ModelError
from tasks.record import SENTIMENT_LABELS, Document

POOLINGS = ("mean", "polar", "news")


@runtime_checkable
class SentimentModel(Protocol):
    """What the pipeline needs from a sentiment model, whatever its kind."""

    name: str
    needs_embeddings: bool  # True: reads doc.embeddings set by tasks.steps.embed when present

    def provenance(self) -> dict[str, str]:
        """{"name", "revision", "params" (JSON)} for the rows' provenance column."""
        ...

    def score(self, docs: list[Document]) -> list[Document]:
        """Fill sentiment, sentiment_score and sentiment_probs of every document."""
        ...


# "news": how much the title counts against the pooled body, the lead's extra weight, and
# polar weighting of body sentences. Chosen on held-out data by
# `python -m bench.sentiment_eval --pooling-grid` (bench/RESULTS.md).
NEWS_POOLING: dict[str, float] = {"title_weight": 0.75, "lead_sentences": 2,
                                  "lead_weight": 2.0, "polar": 1.0}


def pool_probs(probs: np.ndarray, pooling: str = "mean", titled: bool = False,
               params: dict[str, float] | None = None) -> np.ndarray:
    """One (neg, neu, pos) row for a document from its units' rows (title first if `titled`).

    "mean" averages every unit. "polar" weights each by 1 - p_neutral, so the few
    opinionated sentences of a long, mostly factual article are not drowned out; a document
    whose sentences are all neutral stays neutral. "news" (`NEWS_POOLING`) reads what carries
    a news story: the title counts for `title_weight` of the result, the body for the rest,
    pooled polar-weighted with its first `lead_sentences` weighted `lead_weight` times.
    """
    if pooling == "mean":
        pooled = probs.mean(axis=0)
    elif pooling == "polar":
        pooled = _weighted(probs, 1.0 - probs[:, 1])
    elif pooling == "news":
        p = {**NEWS_POOLING, **(params or {})}
        body = probs[1:] if titled else probs
        pooled = probs[0] if titled else None
        if len(body):
            weights = (1.0 - body[:, 1]) if p["polar"] else np.ones(len(body))
            weights = weights.copy()
            weights[: int(p["lead_sentences"])] *= p["lead_weight"]
            pooled_body = _weighted(body, weights)
            pooled = (pooled_body if pooled is None else
                      p["title_weight"] * pooled + (1 - p["title_weight"]) * pooled_body)
    else:
        raise ModelError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    return pooled / pooled.sum()


def _weighted(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    weights = weights + 1e-6
    return (weights[:, None] * probs).sum(axis=0) / weights.sum()


def document_units(doc: Document, limit: int | None = None) -> tuple[list[str], bool]:
    """What a document's sentiment is read from: its title (first, when it has one) and the
    sentences the models read (the first `limit`, or all); and whether the first unit is the
    title."""
    body = doc.sentences[:limit] if limit else doc.sentences
    if doc.title and doc.title.strip():
        return [doc.title, *body], True
    return list(body), False


def label_indices(probs: np.ndarray, band: float) -> np.ndarray:
    """Label index per (neg, neu, pos) row, from the score alone: one meaning for both fields.

    score = p(positive) - p(negative); positive when score >= band, negative when
    score <= -band, neutral in between (band 0: neutral only at exactly 0). So a neutral
    row's |score| is always under the band, and a polar row's score has the label's sign.
    """
    probs = np.atleast_2d(probs)
    score = probs[:, 2] - probs[:, 0]
    out = np.full(len(probs), SENTIMENT_LABELS.index("neutral"))
    out[score >= band] = SENTIMENT_LABELS.index("positive")
    out[score <= -band] = SENTIMENT_LABELS.index("negative")
    if band <= 0:
        out[score == 0] = SENTIMENT_LABELS.index("neutral")
    return out


def set_sentiment(doc: Document, probs: np.ndarray | None,
                  band: float | None = None) -> Document:
    """Write pooled probabilities into the document's sentiment fields (None: no sentences).

    `band`: the model's neutral band (`label_indices`); None takes the argmax label.
    """
    if probs is None:
        doc.sentiment = doc.sentiment_score = doc.sentiment_probs = None
        return doc
    p = tuple(float(x) for x in probs)
    doc.sentiment_probs = (p[0], p[1], p[2])
    doc.sentiment_score = float(np.clip(p[2] - p[0], -1.0, 1.0))
    index = int(np.argmax(probs)) if band is None else int(label_indices(np.asarray(p), band)[0])
    doc.sentiment = SENTIMENT_LABELS[index]
    return doc


