"""Sentence embeddings for a batch of documents, computed once and shared by later steps."""

from __future__ import annotations

from tasks.models.encoder import Encoder
from tasks.record import Document
from tasks.steps.base import BaseStep, Batch, StepSettings, guarded


def embed_sentences(docs: list[Document], encoder: Encoder) -> list[Document]:
    """Set `doc.embeddings` (one L2-normalised row per sentence) for every document.

    All sentences of the batch go to the encoder in one call, so it can sort them by
    length and fill its own batches; each document then takes back its slice.
    """
    flat = [s for d in docs for s in d.sentences]
    vectors = encoder.encode(flat)
    start = 0
    for d in docs:
        end = start + len(d.sentences)
        d.embeddings = vectors[start:end]
        start = end
    return docs


class Embed(BaseStep):
    """Sentence embeddings, once per batch, for the models that read them (the extractive
    summariser, the embedding-head sentiment model); skipped when none of the chosen does."""

    name = "embed"
    needs = ("sentences",)
    provides = ("embeddings",)
    scratch = ("embeddings",)  # working data: dropped before the batch goes to the writer

    def enabled(self, settings: StepSettings) -> bool:
        return settings.models.needs_embeddings

    def setup(self, settings: StepSettings) -> None:
        settings.models.load_encoder()

    def __call__(self, batch: Batch, settings: StepSettings) -> Batch:
        encoder = settings.models.load_encoder()
        return guarded(batch, self.name, lambda docs: embed_sentences(docs, encoder))


STEP = Embed()
