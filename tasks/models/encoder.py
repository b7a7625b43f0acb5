"""The sentence-transformers encoder (MiniLM by default), one per process and name.

`tasks.models.sentence_encoders` resolves every encoder name, this one's and the adapted
encoder of the built-in sentiment model.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from tasks.models.registry import DEFAULT_ENCODER, ModelRef, resolve_encoder
from tasks.models.rowwise import ROWS_ALONE, RowCache


class Encoder:
    """Sentence embeddings (L2-normalised float32), shared by the summariser and sentiment."""

    def __init__(self, ref: ModelRef):
        from sentence_transformers import SentenceTransformer

        self.ref = ref
        self._model = SentenceTransformer(str(ref.path), device="cpu")
        # torch modules are not safe to call from several threads at once.
        self._lock = threading.Lock()
        self.cache = RowCache()

    @property
    def dim(self) -> int:
        return int(self._model.get_embedding_dimension())

    def params(self) -> dict[str, object]:
        return {"normalize": True, "backend": "torch", **ROWS_ALONE}

    def encode(self, sentences: list[str]) -> np.ndarray:
        """One L2-normalised row per sentence, each computed alone (`tasks.models.rowwise`)."""
        return self.cache.rows(sentences, self._compute, self.dim)

    def _compute(self, sentences: list[str]) -> np.ndarray:
        with self._lock:
            out = self._model.encode(sentences, batch_size=1, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


def load_encoder(name: str = DEFAULT_ENCODER) -> Encoder:
    """One encoder per process and name: loading costs seconds, encoding milliseconds."""
    return _load_encoder(name)


@lru_cache(maxsize=4)
def _load_encoder(name: str) -> Encoder:
    return Encoder(resolve_encoder(name))


