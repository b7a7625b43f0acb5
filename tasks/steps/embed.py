"""Sentence embeddings for a batch of documents, computed once and shared by later steps."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tasks.models.encoder import Encoder
from tasks.record import Document
from tasks.steps.base import BaseStep, StepSettings


def embed_sentences(docs: list[Document], encoder: Encoder, window: int | None = None,
                    keep_logits: bool = False) -> list[Document]:
    """Set `doc.embeddings` (one L2-normalised row per sentence, the first `window` or all)
    for every document; with `keep_logits` (the encoder is the sentiment model) also
    `doc.sentence_logits` from the same pass.

    All sentences of the batch go to the encoder in one call; each runs alone
    (`tasks.models.rowwise`), so its row is the same in any batch, and one seen earlier in
    the run (wire furniture, datelines) is taken from the model's cache. Each document then
    takes back its slice.
    """
    parts = [d.sentences[:window] if window else d.sentences for d in docs]
    flat = [s for p in parts for s in p]
    rows = np.hstack(encoder.outputs(flat)) if keep_logits else encoder.encode(flat)
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
    provides = ("embeddings",)
    # working data: dropped before the batch goes to the writer
    scratch = ("embeddings", "sentence_logits")
    model_roles = ("encoder",)

    def enabled(self, settings: StepSettings) -> bool:
        return settings.models.needs_embeddings

    def provides_for(self, settings: StepSettings) -> tuple[str, ...]:
        # the sentiment logits of the same pass, when its encoder is the sentiment model
        return (*self.provides, "sentence_logits") if settings.models.shared_pass \
            else self.provides

    def setup(self, settings: StepSettings) -> None:
        settings.models.load_encoder()

    def provenance(self, settings: StepSettings) -> dict[str, Any]:
        encoder = settings.models.load_encoder()
        # The onnx backend adds its backend and quantisation; the revision stays the weights'.
        return {"encoder": {"name": encoder.ref.name, "revision": encoder.ref.revision,
                            "params": json.dumps(encoder.params())}}

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        models = settings.models
        embed_sentences(docs, models.load_encoder(), models.embed_window,
                        keep_logits=models.shared_pass)
        return self.written(docs, settings)


STEP = Embed()
