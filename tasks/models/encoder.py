"""The sentence-transformers encoder (MiniLM by default), one per process and name.

`tasks.models.sentence_encoders` resolves every encoder name, this one's and the adapted
encoder of the built-in sentiment model.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from tasks.models.registry import DEFAULT_ENCODER, ModelRef, resolve_encoder


class Encoder:
    """Sentence embeddings (L2-normalised float32), shared by the summariser and sentiment."""

    def __init__(self, ref: ModelRef, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.ref = ref
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(ref.path), device="cpu")
        # torch modules are not safe to call from several threads at once.
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self._model.get_embedding_dimension())

    def encode(self, sentences: list[str]) -> np.ndarray:
        if not sentences:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                sentences,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)


def load_encoder(name: str = DEFAULT_ENCODER) -> Encoder:
    """One encoder per process and name: loading costs seconds, encoding milliseconds."""
    return _load_encoder(name)


@lru_cache(maxsize=4)
def _load_encoder(name: str) -> Encoder:
    return Encoder(resolve_encoder(name))


