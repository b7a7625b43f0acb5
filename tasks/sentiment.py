"""Document sentiment: a protocol, and the offline default (a head on MiniLM embeddings).

Each sentence gets (p_negative, p_neutral, p_positive); a document pools its sentences.
The default model is a tiny classification head over the frozen sentence embeddings that
`tasks.embed` already computes for the summariser, so sentiment costs almost nothing extra.
Other models (a LoRA-tuned MiniLM, any Hugging Face sequence classifier) plug in as another
`SentimentModel` factory in `BUILTIN_SENTIMENT`, behind the same `load_sentiment(name)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tasks.models import ASSETS, DEFAULT_ENCODER, ModelError, file_digest, load_encoder
from tasks.record import SENTIMENT_LABELS, Document

DEFAULT_SENTIMENT = "minilm-head"
HEAD_DIR = ASSETS / "sentiment-head"
POOLINGS = ("mean", "polar")


@runtime_checkable
class SentimentModel(Protocol):
    """What the pipeline needs from a sentiment model, whatever its kind."""

    name: str
    needs_embeddings: bool  # True: reads doc.embeddings set by tasks.embed when present

    def provenance(self) -> dict[str, str]:
        """{"name", "revision", "params" (JSON)} for the rows' provenance column."""
        ...

    def score(self, docs: list[Document]) -> list[Document]:
        """Fill sentiment, sentiment_score and sentiment_probs of every document."""
        ...


def build_head(arch: dict[str, Any]):
    """The torch module a head config describes; shared by training and loading."""
    import torch

    dim, hidden = int(arch["input_dim"]), int(arch.get("hidden", 0))
    n_out = len(arch.get("labels", SENTIMENT_LABELS))
    if hidden:
        return torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, n_out)
        )
    return torch.nn.Sequential(torch.nn.Linear(dim, n_out))


def pool_probs(probs: np.ndarray, pooling: str = "mean") -> np.ndarray:
    """One (neg, neu, pos) row for a document from its sentences' rows.

    "mean" averages the sentences. "polar" weights each sentence by 1 - p_neutral, so the
    few opinionated sentences of a long, mostly factual article are not drowned out; a
    document whose sentences are all neutral stays neutral.
    """
    if pooling == "mean":
        pooled = probs.mean(axis=0)
    elif pooling == "polar":
        weights = 1.0 - probs[:, 1] + 1e-6
        pooled = (weights[:, None] * probs).sum(axis=0) / weights.sum()
    else:
        raise ModelError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    return pooled / pooled.sum()


def set_sentiment(doc: Document, probs: np.ndarray | None) -> Document:
    """Write pooled probabilities into the document's sentiment fields (None: no sentences)."""
    if probs is None:
        doc.sentiment = doc.sentiment_score = doc.sentiment_probs = None
        return doc
    p = tuple(float(x) for x in probs)
    doc.sentiment_probs = (p[0], p[1], p[2])
    doc.sentiment_score = float(np.clip(p[2] - p[0], -1.0, 1.0))
    doc.sentiment = SENTIMENT_LABELS[int(np.argmax(probs))]
    return doc


class EmbeddingHeadSentiment:
    """A classification head over sentence-encoder embeddings, pooled per document."""

    needs_embeddings = True

    def __init__(self, folder: Path, name: str, pooling: str | None = None):
        import torch
        from safetensors.torch import load_file

        weights = folder / "head.safetensors"
        config_path = folder / "config.json"
        if not (weights.is_file() and config_path.is_file()):
            raise ModelError(f"sentiment head folder {folder} lacks head.safetensors/config.json")
        self.name = name
        self.folder = folder
        self.config = json.loads(config_path.read_text(encoding="utf-8"))
        self.labels = tuple(self.config["architecture"]["labels"])
        if self.labels != SENTIMENT_LABELS:
            raise ModelError(f"head labels {self.labels} differ from {SENTIMENT_LABELS}")
        self.pooling = pooling or self.config.get("pooling", "mean")
        pool_probs(np.full((1, 3), 1 / 3), self.pooling)  # fail early on a bad name
        self.encoder_name = self.config["encoder"]["name"]
        self.encoder_revision = self.config["encoder"]["revision"]
        self.digest = file_digest(weights)
        self._module = build_head(self.config["architecture"])
        self._module.load_state_dict(load_file(str(weights)))
        self._module.eval()
        self._torch = torch

    def provenance(self) -> dict[str, str]:
        params = {
            "pooling": self.pooling,
            "architecture": self.config["architecture"],
            "encoder": self.encoder_name,
        }
        return {
            "name": self.name,
            "revision": f"{self.encoder_revision};head-sha256:{self.digest}",
            "params": json.dumps(params, sort_keys=True),
        }

    def sentence_probs(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, 3) probabilities for n embedding rows."""
        if len(embeddings) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        with self._torch.no_grad():
            logits = self._module(self._torch.from_numpy(np.ascontiguousarray(embeddings)))
            return self._torch.softmax(logits.float(), dim=-1).numpy()

    def score(self, docs: list[Document]) -> list[Document]:
        dim = int(self.config["architecture"]["input_dim"])
        usable = [
            d.embeddings is not None and d.embeddings.shape == (len(d.sentences), dim)
            for d in docs
        ]
        # Documents without usable embeddings are encoded together, in one encoder call.
        missing = [s for d, ok in zip(docs, usable, strict=True) if not ok for s in d.sentences]
        encoded = load_encoder(DEFAULT_ENCODER).encode(missing) if missing else None
        start = 0
        for doc, ok in zip(docs, usable, strict=True):
            if ok:
                emb = doc.embeddings
            else:
                emb = encoded[start : start + len(doc.sentences)] if encoded is not None else None
                start += len(doc.sentences)
            if emb is None or len(emb) == 0:
                set_sentiment(doc, None)
            else:
                set_sentiment(doc, pool_probs(self.sentence_probs(emb), self.pooling))
        return docs


BUILTIN_SENTIMENT: dict[str, Callable[[], SentimentModel]] = {
    DEFAULT_SENTIMENT: lambda: EmbeddingHeadSentiment(HEAD_DIR, DEFAULT_SENTIMENT),
}


def load_sentiment(name: str = DEFAULT_SENTIMENT) -> SentimentModel:
    """One sentiment model per process and name; unknown names fail with the choices."""
    return _load_sentiment(name)


@lru_cache(maxsize=4)  # keyed on the name alone, so load_sentiment() is load_sentiment(default)
def _load_sentiment(name: str) -> SentimentModel:
    factory = BUILTIN_SENTIMENT.get(name)
    if factory is None:
        raise ModelError(
            f"unknown sentiment model {name!r}; built-in models: {', '.join(BUILTIN_SENTIMENT)}"
        )
    return factory()
