"""Batch-level steps: the plain functions that the digest flow's Prefect tasks wrap.

A `Batch` carries the documents still in play and the rejects found so far. Each step
processes the whole batch at once (models like batches); when a batch-wide call fails, the
step retries document by document so one bad document becomes a reject, not a lost batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tasks.clean import clean_document
from tasks.embed import embed_sentences
from tasks.models import load_encoder
from tasks.record import Document, Reject, excerpt
from tasks.sentiment import load_sentiment
from tasks.summarize import load_summarizer


@dataclass(slots=True)
class Batch:
    """Documents in flight, rejects so far, and seconds spent per step."""

    seq: int
    docs: list[Document]
    rejects: list[Reject] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    n_items: int = 0  # input items this batch accounts for (documents + rejects at ingest)


@dataclass(frozen=True, slots=True)
class ModelNames:
    """Which models the steps use; names, not objects, so any process can load its own."""

    encoder: str = "minilm"
    summarizer: str = "extractive"
    sentiment: str = "minilm-lora"


def _guarded(batch: Batch, step: str, fn: Callable[[list[Document]], object]) -> Batch:
    """Run `fn` on the whole batch; on failure isolate the failing documents as rejects."""
    start = time.perf_counter()
    try:
        fn(batch.docs)
    except Exception:  # noqa: BLE001 - fall back to one document at a time
        kept = []
        for doc in batch.docs:
            try:
                fn([doc])
                kept.append(doc)
            except Exception as exc:  # noqa: BLE001 - the reason goes into the reject row
                batch.rejects.append(
                    Reject(doc.source, f"{step}_failed", f"{type(exc).__name__}: {exc}",
                           excerpt(doc.raw_text), doc.doc_id)
                )
        batch.docs = kept
    batch.timings[step] = batch.timings.get(step, 0.0) + time.perf_counter() - start
    return batch


def clean_batch(batch: Batch) -> Batch:
    """Clean every document; those with no text left become `empty_after_cleaning` rejects."""

    def run(docs: list[Document]) -> None:
        for doc in docs:
            clean_document(doc)

    batch = _guarded(batch, "clean", run)
    kept = []
    for doc in batch.docs:
        if doc.sentences:
            kept.append(doc)
        else:
            batch.rejects.append(
                Reject(doc.source, "empty_after_cleaning",
                       "no text left after removing markup, headers and boilerplate",
                       excerpt(doc.raw_text), doc.doc_id)
            )
    batch.docs = kept
    return batch


def embed_batch(batch: Batch, models: ModelNames) -> Batch:
    """Sentence embeddings, once, for the steps that need them."""
    if not (load_summarizer(models.summarizer).needs_embeddings
            or load_sentiment(models.sentiment).needs_embeddings):
        return batch
    encoder = load_encoder(models.encoder)
    return _guarded(batch, "embed", lambda docs: embed_sentences(docs, encoder))


def summarize_batch(batch: Batch, models: ModelNames) -> Batch:
    summarizer = load_summarizer(models.summarizer)
    return _guarded(batch, "summarize", summarizer.summarize)


def sentiment_batch(batch: Batch, models: ModelNames) -> Batch:
    model = load_sentiment(models.sentiment)
    batch = _guarded(batch, "sentiment", model.score)
    for doc in batch.docs:
        doc.embeddings = None  # scratch: free it before the batch travels to the writer
    return batch


def process_batch(batch: Batch, models: ModelNames) -> Batch:
    """All steps in order: what the flow does, as one plain function."""
    batch = clean_batch(batch)
    batch = embed_batch(batch, models)
    batch = summarize_batch(batch, models)
    return sentiment_batch(batch, models)
