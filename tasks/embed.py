"""Sentence embeddings for a batch of documents, computed once and shared by later steps."""

from __future__ import annotations

from tasks.models import Encoder
from tasks.record import Document


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
