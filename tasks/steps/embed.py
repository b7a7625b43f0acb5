"""Sentence embeddings for a batch of documents, computed once and shared by later steps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tasks.models.encoder import Encoder
from tasks.record import Document
from tasks.steps.base import BaseStep, Batch, StepSettings, guarded


def embed_sentences(docs: list[Document], encoder: Encoder, window: int | None = None,
                    keep_logits: bool = False) -> list[Document]:
    """Set `doc.embeddings` (one L2-normalised row per sentence, the first `window` or all)
    for every document; with `keep_logits` (the encoder is the sentiment model) also
    `doc.sentence_logits` from the same pass.

    All sentences of the batch go to the encoder in one call, so it can sort them by
    length and fill its own batches; each document then takes back its slice. A sentence
    that repeats in the batch runs once.
    """
    parts = [d.sentences[:window] if window else d.sentences for d in docs]
    flat = [s for p in parts for s in p]

    def run(sentences: list[str]) -> np.ndarray:  # one row per sentence: [logits | vector]
        return np.hstack(encoder.outputs(sentences)) if keep_logits else encoder.encode(sentences)

    rows = distinct_rows(flat, run)
    n_logits = rows.shape[1] - encoder.dim
    logits, vectors = (rows[:, :n_logits], rows[:, n_logits:]) if keep_logits else (None, rows)
    start = 0
    for d, part in zip(docs, parts, strict=True):
        end = start + len(part)
        d.embeddings = vectors[start:end]
        d.sentence_logits = logits[start:end] if logits is not None else None
        start = end
    return docs


class Embed(BaseStep):
    """Sentence embeddings, once per batch, for the models that read them (the extractive
    summariser, the embedding-head sentiment model); skipped when none of the chosen does."""

    name = "embed"
    needs = ("sentences",)
    provides = ("embeddings", "sentence_logits")
    # working data: dropped before the batch goes to the writer
    scratch = ("embeddings", "sentence_logits")

    def enabled(self, settings: StepSettings) -> bool:
        return settings.models.needs_embeddings

    def setup(self, settings: StepSettings) -> None:
        settings.models.load_encoder()

    def __call__(self, batch: Batch, settings: StepSettings) -> Batch:
        models = settings.models
        encoder = models.load_encoder()
        # One pass for both models: the encoder is the sentiment model object itself.
        one_pass = encoder is models.load_sentiment()
        return guarded(batch, self.name, lambda docs: embed_sentences(
            docs, encoder, models.embed_window, keep_logits=one_pass))


def distinct_rows(texts: list[str], run: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """`run(texts)`, row for row, running each distinct text once (wire furniture, table rows
    and boilerplate repeat across the documents of a batch).

    Only within one call: int8 activations are quantised over each encoder run, so a row from
    another batch could differ a little, and a rerun must give the same rows.
    """
    distinct = list(dict.fromkeys(texts))
    if len(distinct) == len(texts):
        return run(texts)
    rows = run(distinct)
    where = {t: i for i, t in enumerate(distinct)}
    return rows[[where[t] for t in texts]]


STEP = Embed()
