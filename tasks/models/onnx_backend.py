"""ONNX Runtime backend for the two MiniLM passes: the sentence encoder and the LoRA sentiment.

On a CPU, ONNX Runtime runs MiniLM ~2x faster than torch in fp32 and ~4x with dynamic int8
(per-channel weights; per-tensor int8 loses accuracy). The ONNX files are exported from the
very weights the torch path loads, on first use, and cached per model revision outside the
repository (`$TEXTDIGEST_CACHE/onnx/<key>/`, default `~/.cache/textdigest`): written under a
temporary name and renamed, with a file lock so two processes never build the same file twice.

transformers 5 builds its attention mask with code the TorchScript exporter cannot follow, so
the exported graphs build the additive 4-D mask themselves (as `tasks.models.onnx_export` does).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from tasks.io.atomic import atomic_path
from tasks.models.batching import token_batches
from tasks.models.registry import DEFAULT_ENCODER, ModelRef, package_version, resolve_encoder

CACHE_ENV = "TEXTDIGEST_CACHE"
EXPORT_VERSION = "3"  # bump when the exported graphs change: a new cache key, a fresh build
Quant = Literal["int8", "fp32"]
# int8 (dynamic, per-channel weights) keeps SST-2 / FPB accuracy and embedding cosine within
# the bounds measured in bench/RESULTS.md; fp32 is there for exact agreement with torch.
DEFAULT_QUANT: Quant = "int8"
ENCODER_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2


def cache_root() -> Path:
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "textdigest"
    return Path(base).expanduser() / "onnx"


def cache_key(revision: str, kind: str) -> str:
    """Folder name for one model revision: what was exported, from what, with what."""
    parts = [kind, revision, EXPORT_VERSION, package_version("torch"), package_version("onnx")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def cached_file(key: str, filename: str, build: Callable[[Path], None]) -> Path:
    """`cache_root()/key/filename`, built by `build(tmp_path)` once, atomically, under a lock."""
    folder = cache_root() / key
    target = folder / filename
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the file
        if not target.is_file():
            with atomic_path(target) as tmp:
                build(tmp)
    return target


def quantize_int8(source: Path, out: Path) -> None:
    """Dynamic int8 with per-channel QInt8 weights (activations quantised at run time).

    Only the MatMuls are quantised (where the time goes): also quantising the embedding
    Gathers cost 1.2 points of FPB accuracy, MatMuls alone 0.4 (bench/RESULTS.md).
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)  # a "consider pre-processing" warning on every build
    try:
        quantize_dynamic(source, out, per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"])
    finally:
        # Its module-level `logging.warning` calls `basicConfig` on a bare root logger: the
        # handler it adds would print every later log line (Prefect's too) unformatted.
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _export(module, example: tuple, out: Path, output: str) -> None:
    import torch

    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            output: {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(module, example, str(out), input_names=["input_ids", "attention_mask"],
                          output_names=[output], dynamic_axes=axes, opset_version=17,
                          dynamo=False)


def _encoder_graph(path: Path):
    """MiniLM -> mean pooling -> L2 normalisation: what sentence-transformers computes."""
    import torch

    from tasks.models.sentiment import load_base_encoder, mean_pool

    class EmbeddingGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = load_base_encoder(path).float().eval()

        def forward(self, input_ids, attention_mask):
            keep = attention_mask[:, None, None, :].to(torch.float32)
            additive = (1.0 - keep) * torch.finfo(torch.float32).min
            hidden = self.bert(input_ids=input_ids, attention_mask=additive).last_hidden_state
            return torch.nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)

    return EmbeddingGraph().eval()


# One ORT run at a time in the process, whichever model: each run's intra-op threads already
# fill the cores, and the flow's task threads would otherwise run the encoder of one batch
# and the sentiment model of another at once (oversubscribed, slower than in turn).
RUN_LOCK = threading.Lock()


def session_settings(threads: int | None = None) -> dict[str, object]:
    """The ORT session options every textdigest session uses (the speed bench prints them)."""
    return {
        "intra_op_num_threads": threads or _torch_threads(),
        "inter_op_num_threads": 1,
        # Worker threads spin briefly between ops: on the AVX2 CPU of 2026-12-02 the flow ran
        # 4.1 / 4.1 docs/s with spinning, 3.9 / 3.7 without (the reverse of an earlier
        # AVX-512 machine's small gain; bench/RESULTS.md).
        "session.intra_op.allow_spinning": "1",
        "graph_optimization_level": "ORT_ENABLE_ALL",  # ORT's default, stated
        "providers": ["CPUExecutionProvider"],
    }


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    settings = session_settings(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = settings["intra_op_num_threads"]
    opts.inter_op_num_threads = settings["inter_op_num_threads"]
    opts.add_session_config_entry("session.intra_op.allow_spinning",
                                  settings["session.intra_op.allow_spinning"])
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                            settings["graph_optimization_level"])
    return ort.InferenceSession(str(path), opts, providers=settings["providers"])


def _torch_threads() -> int:
    """The process's intra-op thread count (`--threads` sets it via torch before loading)."""
    import torch

    return int(torch.get_num_threads())


# Padded tokens per ORT run (token_batches): as fast as 64-row batches on news sentences
# (bench/RESULTS.md, "Token budget"), with a bounded working set for long ones.
BATCH_TOKENS = 1024


def length_sorted_batches(ids: list[list[int]], max_tokens: int = BATCH_TOKENS, pad_id: int = 0):
    """Yield (row indices, input_ids, attention_mask) batches of similar token length, each
    within `max_tokens` padded tokens."""
    for idx in token_batches([len(x) for x in ids], max_tokens):
        width = max(len(ids[i]) for i in idx)
        input_ids = np.full((len(idx), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            input_ids[row, :len(ids[i])] = ids[i]
            mask[row, :len(ids[i])] = 1
        yield idx, input_ids, mask


class OnnxEncoder:
    """Drop-in for `tasks.models.encoder.Encoder` (same embeddings, L2-normalised float32),
    on ONNX Runtime."""

    backend = "onnx"

    def __init__(self, ref: ModelRef, quant: Quant = DEFAULT_QUANT,
                 batch_tokens: int = BATCH_TOKENS, threads: int | None = None):
        from transformers import AutoTokenizer

        self.ref = ref
        self.quant = quant
        self.batch_tokens = batch_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(str(ref.path))
        key = cache_key(ref.revision, "encoder")
        fp32 = cached_file(key, "encoder-fp32.onnx",
                           lambda out: self._build_fp32(out))
        self.path = fp32 if quant == "fp32" else cached_file(
            key, "encoder-int8.onnx", lambda out: quantize_int8(fp32, out))
        self._session = _session(self.path, threads)

    def _build_fp32(self, out: Path) -> None:
        example = self.tokenizer(["An example sentence.", "Another, longer example sentence."],
                                 padding=True, return_tensors="pt")
        _export(_encoder_graph(self.ref.path), (example["input_ids"], example["attention_mask"]),
                out, "embeddings")

    @property
    def dim(self) -> int:
        return int(self._session.get_outputs()[0].shape[-1] or 384)

    def params(self) -> dict[str, object]:
        return {"normalize": True, "batch_tokens": self.batch_tokens, "backend": "onnx",
                "quantization": self.quant, "onnxruntime": package_version("onnxruntime")}

    def encode(self, sentences: list[str]) -> np.ndarray:
        out = np.zeros((len(sentences), self.dim), dtype=np.float32)
        if not sentences:
            return out
        ids = self.tokenizer(sentences, truncation=True, max_length=ENCODER_MAX_TOKENS)["input_ids"]
        with RUN_LOCK:
            for idx, input_ids, mask in length_sorted_batches(ids, self.batch_tokens,
                                                               self.tokenizer.pad_token_id or 0):
                out[idx] = self._session.run(None, {"input_ids": input_ids,
                                                    "attention_mask": mask})[0]
        return out


def _lora_class():
    from tasks.models.onnx_export import export_sentiment
    from tasks.models.sentiment import LoraSentiment

    class OnnxLoraSentiment(LoraSentiment):
        """The LoRA sentiment model with its encoder pass on ORT; same labels and pooling."""

        def __init__(self, folder: Path, name: str, quant: Quant = DEFAULT_QUANT,
                     threads: int | None = None):
            super().__init__(folder, name, load_weights=False)
            self.quant = quant
            self.batch_tokens = BATCH_TOKENS
            key = cache_key(super().provenance()["revision"], "sentiment-lora")
            fp32 = cached_file(key, "sentiment-fp32.onnx", self._export)
            self.path = fp32 if quant == "fp32" else cached_file(
                key, "sentiment-int8.onnx", lambda out: quantize_int8(fp32, out))
            self._session = _session(self.path, threads)

        def _export(self, out: Path) -> None:
            """Only a first run (no cached graph) loads the torch model, to export it."""
            self.load_weights()
            try:
                export_sentiment(self, out)
            finally:
                self._encoder = self._head = None

        def provenance(self) -> dict[str, str]:
            prov = super().provenance()
            params = {**json.loads(prov["params"]), "backend": "onnx", "quantization": self.quant,
                      "batch_tokens": self.batch_tokens,
                      "onnxruntime": package_version("onnxruntime")}
            return {**prov, "params": json.dumps(params, sort_keys=True)}

        def params(self) -> dict[str, object]:
            return {**super().params(), "backend": "onnx", "quantization": self.quant,
                    "batch_tokens": self.batch_tokens,
                    "onnxruntime": package_version("onnxruntime")}

        def outputs(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
            logits = np.zeros((len(sentences), len(self.labels)), dtype=np.float32)
            vectors = np.zeros((len(sentences), self.dim), dtype=np.float32)
            if not sentences:
                return logits, vectors
            ids = self.tokenizer(sentences, truncation=True,
                                 max_length=self.max_length)["input_ids"]
            with RUN_LOCK:
                for idx, input_ids, mask in length_sorted_batches(
                        ids, self.batch_tokens, self.tokenizer.pad_token_id or 0):
                    logits[idx], vectors[idx] = self._session.run(
                        None, {"input_ids": input_ids, "attention_mask": mask})
            return logits, vectors

    return OnnxLoraSentiment


def load_onnx_encoder(name: str = DEFAULT_ENCODER, quant: Quant = DEFAULT_QUANT) -> OnnxEncoder:
    """One ORT encoder per process, name and quantisation."""
    return _load_encoder(name, quant)


@lru_cache(maxsize=4)
def _load_encoder(name: str, quant: Quant) -> OnnxEncoder:
    return OnnxEncoder(resolve_encoder(name), quant)


def load_onnx_sentiment(name: str, quant: Quant = DEFAULT_QUANT):
    """The ORT form of a built-in LoRA sentiment model (also the run's encoder: `outputs`
    gives logits and sentence vectors); other models keep their own backend."""
    return _load_sentiment(name, quant)


@lru_cache(maxsize=4)
def _load_sentiment(name: str, quant: Quant):
    from tasks.models.sentiment import LORA_DIR, LORA_NAME, load_sentiment

    if name != LORA_NAME:
        return load_sentiment(name)
    return _lora_class()(LORA_DIR, LORA_NAME, quant)
