"""Batch-level steps: the plain functions that the digest flow's Prefect tasks wrap.

A `Batch` carries the documents still in play and the rejects found so far. Each step
processes the whole batch at once (models like batches); when a batch-wide call fails, the
step retries document by document so one bad document becomes a reject, not a lost batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tasks.clean import MAX_MODEL_CHARS, clean_document, clean_text, split_sentences
from tasks.embed import embed_sentences
from tasks.language import detect_language
from tasks.models import Encoder, load_encoder
from tasks.record import Document, Reject, excerpt
from tasks.secrets import redact
from tasks.sentiment import SentimentModel, load_sentiment
from tasks.summarize import Summarizer, is_boilerplate_only, load_summarizer

if TYPE_CHECKING:
    from tasks.onnx_backend import OnnxEncoder


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
    # Options of Hugging Face models, as sorted (name, value) pairs: frozen, hashable and
    # picklable like the names (revision, dtype, generation overrides; label_map as pairs).
    summarizer_options: tuple[tuple[str, Any], ...] = ()
    sentiment_options: tuple[tuple[str, Any], ...] = ()
    # "torch", or "onnx": the MiniLM encoder and the LoRA sentiment model on ONNX Runtime
    # (tasks.onnx_backend); other models keep their own backend.
    backend: str = "torch"

    def load_encoder(self) -> Encoder | OnnxEncoder:
        """This process's sentence encoder on the chosen backend (loaded once per process)."""
        if self.backend == "onnx":
            from tasks.onnx_backend import load_onnx_encoder

            return load_onnx_encoder(self.encoder)
        return load_encoder(self.encoder)

    def load_summarizer(self) -> Summarizer:
        """This process's summariser (loaded once per process and options)."""
        return load_summarizer(self.summarizer, **dict(self.summarizer_options))

    def load_sentiment(self) -> SentimentModel:
        """This process's sentiment model (loaded once per process and options)."""
        if self.backend == "onnx" and not self.sentiment_options:
            from tasks.onnx_backend import load_onnx_sentiment

            return load_onnx_sentiment(self.sentiment)
        return load_sentiment(self.sentiment, **dict(self.sentiment_options))


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
                    Reject(doc.source, f"{step}_failed", redact(f"{type(exc).__name__}: {exc}"),
                           excerpt(doc.raw_text), doc.doc_id)
                )
        batch.docs = kept
    batch.timings[step] = batch.timings.get(step, 0.0) + time.perf_counter() - start
    return batch


def clean_batch(batch: Batch, max_model_chars: int | None = MAX_MODEL_CHARS) -> Batch:
    """Clean every document; those with no text left become `empty_after_cleaning` rejects.

    The models read at most `max_model_chars` characters of a document (see
    `tasks.clean.model_read_limit`)."""

    def run(docs: list[Document]) -> None:
        for doc in docs:
            clean_document(doc, max_model_chars)

    batch = _guarded(batch, "clean", run)
    kept = []
    for doc in batch.docs:
        if not doc.sentences:
            # Nothing left: was it a page of furniture that the trailer rules stripped (a lone
            # "All rights reserved."), or markup with no text at all?
            stripped = split_sentences(clean_text(doc.raw_text))
            if stripped and is_boilerplate_only(stripped):
                reason, detail = "boilerplate_only", "only copyright or sign-off lines"
            else:
                reason = "empty_after_cleaning"
                detail = "no text left after removing markup, headers and boilerplate"
            batch.rejects.append(
                Reject(doc.source, reason, detail, excerpt(doc.raw_text), doc.doc_id))
        elif is_boilerplate_only(doc.sentences):
            batch.rejects.append(
                Reject(doc.source, "boilerplate_only",
                       "only site furniture (cookie notice, menu, subscribe, copyright)",
                       excerpt(doc.text), doc.doc_id)
            )
        else:
            kept.append(doc)
    batch.docs = kept
    return batch


def language_batch(batch: Batch, non_english: str = "keep") -> Batch:
    """Detect each document's language; with `non_english="reject"`, reject those the
    English models cannot serve (`und`, too short or unsure to tell, is kept)."""
    start = time.perf_counter()
    kept = []
    for doc in batch.docs:
        lang = detect_language(doc.text)
        doc.language, doc.language_score = lang.code, lang.score
        if non_english == "reject" and lang.code not in ("en", "und"):
            batch.rejects.append(
                Reject(doc.source, "not_english",
                       f"language {lang.code} (p={lang.score:.2f}); the models read English",
                       excerpt(doc.text), doc.doc_id))
        else:
            kept.append(doc)
    batch.docs = kept
    batch.timings["language"] = batch.timings.get("language", 0.0) + time.perf_counter() - start
    return batch


def embed_batch(batch: Batch, models: ModelNames) -> Batch:
    """Sentence embeddings, once, for the steps that need them."""
    if not (models.load_summarizer().needs_embeddings
            or models.load_sentiment().needs_embeddings):
        return batch
    encoder = models.load_encoder()
    return _guarded(batch, "embed", lambda docs: embed_sentences(docs, encoder))


SHORT_TEXT_WORDS = 25  # under this many words (or one sentence) a text is its own summary


def is_short_text(doc: Document) -> bool:
    """A headline or fragment: one sentence, or fewer than `SHORT_TEXT_WORDS` words."""
    return len(doc.sentences) <= 1 or len(doc.text.split()) < SHORT_TEXT_WORDS


def summarize_batch(batch: Batch, models: ModelNames) -> Batch:
    """Summaries; a short text is its own summary (`summary_method` "whole_text"), since any
    summariser could only repeat or distort it."""
    summarizer = models.load_summarizer()

    def run(docs: list[Document]) -> None:
        long_docs = []
        for doc in docs:
            if is_short_text(doc):
                doc.summary = " ".join(s.strip() for s in doc.sentences)
                doc.summary_sentence_ids = list(range(len(doc.sentences)))
                doc.summary_chunks = None
                doc.summary_method = "whole_text"
            else:
                long_docs.append(doc)
        if long_docs:
            summarizer.summarize(long_docs)
            for doc in long_docs:
                doc.summary_method = doc.summary_method or summarizer.name

    return _guarded(batch, "summarize", run)


def sentiment_batch(batch: Batch, models: ModelNames) -> Batch:
    model = models.load_sentiment()
    batch = _guarded(batch, "sentiment", model.score)
    for doc in batch.docs:
        doc.embeddings = None  # scratch: free it before the batch travels to the writer
    return batch


def process_batch(batch: Batch, models: ModelNames, non_english: str = "keep",
                  max_model_chars: int | None = MAX_MODEL_CHARS) -> Batch:
    """All steps in order: what the flow does, as one plain function."""
    batch = language_batch(clean_batch(batch, max_model_chars), non_english)
    batch = embed_batch(batch, models)
    batch = summarize_batch(batch, models)
    return sentiment_batch(batch, models)
