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
import os
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from tasks.io.atomic import atomic_path
from tasks.models.registry import DEFAULT_ENCODER, ModelRef, package_version, resolve_encoder
from tasks.models.rowwise import ROWS_ALONE, RowCache, RowPool

CACHE_ENV = "TEXTDIGEST_CACHE"
EXPORT_VERSION = "4"  # bump when the exported graphs change: a new cache key, a fresh build
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


# Heads whose MatMuls stay fp32: the entity tagger reads raw encoder states, whose few
# outlier dimensions set a per-tensor int8 scale that wipes out the others (every tag O).
FP32_PREFIXES = ("/tagger/",)


def quantize_int8(source: Path, out: Path) -> None:
    """Dynamic int8 with per-channel QInt8 weights (activations quantised at run time).

    Only the encoder's MatMuls are quantised (where the time goes): also quantising the
    embedding Gathers cost 1.2 points of FPB accuracy, MatMuls alone 0.4 (bench/RESULTS.md);
    the tagger head stays fp32 (`FP32_PREFIXES`).
    """
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = [n.name for n in onnx.load(str(source), load_external_data=False).graph.node
            if n.name.startswith(FP32_PREFIXES)]

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)  # a "consider pre-processing" warning on every build
    try:
        quantize_dynamic(source, out, per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=keep)
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

    from tasks.models.encoder_pass import load_base_encoder, mean_pool

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


def session_settings(threads: int | None = None) -> dict[str, object]:
    """The ORT session options every textdigest session uses (the speed bench prints them).

    Sentences run alone (`tasks.models.rowwise`), each on one intra-op thread, `row_workers`
    of them at once: one per core the run may use.
    """
    return {
        "row_workers": threads or _torch_threads(),
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        "graph_optimization_level": "ORT_ENABLE_ALL",  # ORT's default, stated
        "providers": ["CPUExecutionProvider"],
    }


def _session(path: Path, threads: int | None):
    """An ORT session over `path` and the pool its rows run on."""
    import onnxruntime as ort

    settings = session_settings(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = settings["intra_op_num_threads"]
    opts.inter_op_num_threads = settings["inter_op_num_threads"]
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                            settings["graph_optimization_level"])
    session = ort.InferenceSession(str(path), opts, providers=settings["providers"])
    return session, RowPool(settings["row_workers"])


def _torch_threads() -> int:
    """The process's intra-op thread count (`--threads` sets it via torch before loading)."""
    import torch

    return int(torch.get_num_threads())


def run_alone(session, pool: RowPool, ids: list[list[int]], width: int) -> np.ndarray:
    """Every output of `session` for each token row, concatenated per row, each row run alone
    (no padding, no neighbours): the result of a row is a function of that row only."""
    out = np.zeros((len(ids), width), dtype=np.float32)

    def one(i: int) -> None:
        x = np.asarray([ids[i]], dtype=np.int64)
        values = session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x)})
        out[i] = np.concatenate([v[0] for v in values])

    pool.map(one, len(ids))
    return out


def row_params(quant: Quant) -> dict[str, str]:
    """How rows run, for the provenance (bench/RESULTS.md, "Batch-invariant rows")."""
    return {**ROWS_ALONE, **({"activation_scales": "dynamic, per sentence"}
                             if quant == "int8" else {})}


class OnnxEncoder:
    """Drop-in for `tasks.models.encoder.Encoder` (same embeddings, L2-normalised float32),
    on ONNX Runtime."""

    backend = "onnx"

    def __init__(self, ref: ModelRef, quant: Quant = DEFAULT_QUANT, threads: int | None = None):
        from transformers import AutoTokenizer

        self.ref = ref
        self.quant = quant
        self.tokenizer = AutoTokenizer.from_pretrained(str(ref.path))
        key = cache_key(ref.revision, "encoder")
        fp32 = cached_file(key, "encoder-fp32.onnx",
                           lambda out: self._build_fp32(out))
        self.path = fp32 if quant == "fp32" else cached_file(
            key, "encoder-int8.onnx", lambda out: quantize_int8(fp32, out))
        self._session, self._pool = _session(self.path, threads)
        self.cache = RowCache()

    def _build_fp32(self, out: Path) -> None:
        example = self.tokenizer(["An example sentence.", "Another, longer example sentence."],
                                 padding=True, return_tensors="pt")
        _export(_encoder_graph(self.ref.path), (example["input_ids"], example["attention_mask"]),
                out, "embeddings")

    @property
    def dim(self) -> int:
        return int(self._session.get_outputs()[0].shape[-1] or 384)

    def params(self) -> dict[str, object]:
        return {"normalize": True, "backend": "onnx", "quantization": self.quant,
                "onnxruntime": package_version("onnxruntime"), **row_params(self.quant)}

    def _compute(self, sentences: list[str]) -> np.ndarray:
        ids = self.tokenizer(sentences, truncation=True, max_length=ENCODER_MAX_TOKENS)["input_ids"]
        return run_alone(self._session, self._pool, ids, self.dim)

    def encode(self, sentences: list[str]) -> np.ndarray:
        return self.cache.rows(sentences, self._compute, self.dim)


def _lora_class():
    from tasks.models.entity_tagger import tagger_inputs
    from tasks.models.onnx_export import export_sentiment
    from tasks.models.sentiment import LoraSentiment

    class OnnxLoraSentiment(LoraSentiment):
        """The LoRA sentiment model with its encoder pass on ORT; same labels and pooling."""

        def __init__(self, folder: Path, name: str, quant: Quant = DEFAULT_QUANT,
                     threads: int | None = None):
            super().__init__(folder, name, load_weights=False)
            self.quant = quant
            key = cache_key(self.pass_revision, "sentiment-lora")  # the graph: not the doc head
            fp32 = cached_file(key, "sentiment-fp32.onnx", self._export)
            self.path = fp32 if quant == "fp32" else cached_file(
                key, "sentiment-int8.onnx", lambda out: quantize_int8(fp32, out))
            self._session, self._pool = _session(self.path, threads)

        def _export(self, out: Path) -> None:
            """Only a first run (no cached graph) loads the torch model, to export it."""
            self.load_weights()
            try:
                export_sentiment(self, out)
            finally:
                self._encoder = self._head = self._tagger = None

        def backend_params(self) -> dict[str, object]:
            return {"backend": "onnx", "quantization": self.quant,
                    "onnxruntime": package_version("onnxruntime"), **row_params(self.quant)}

        def _compute(self, sentences: list[str]) -> list[tuple]:
            if not self.has_tagger:
                ids = self.tokenizer(sentences, truncation=True,
                                     max_length=self.max_length)["input_ids"]
                rows = run_alone(self._session, self._pool, ids, len(self.labels) + self.dim)
                return [(row, None, None, None) for row in rows]
            out: list[tuple | None] = [None] * len(sentences)

            def one(i: int) -> None:
                x = tagger_inputs(self.tokenizer, sentences[i], self.max_length)
                ids = np.asarray([x["ids"]], dtype=np.int64)
                res = self._session.run(None, {
                    "input_ids": ids, "attention_mask": np.ones_like(ids),
                    "words": x["words"], "shapes": x["shapes"]})
                states = ((res[3].astype(np.float16), x["offsets"]) if self.entity_config
                          else None)
                out[i] = (np.concatenate([res[0][0], res[1][0]]), x["spans"],
                          res[2][: len(x["spans"])], states)

            self._pool.map(one, len(sentences))
            return out

    return OnnxLoraSentiment


def _entity_graph(model):
    """(input_ids, attention_mask, spans) -> (k, 3) entity logits: `EntitySentiment._compute`
    for one text and its k mention rows."""
    import torch

    from tasks.models.entity_sentiment import entity_features

    class EntityGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = model._encoder
            self.head = model._head

        def forward(self, input_ids, attention_mask, spans):
            keep = attention_mask[:, None, None, :].to(torch.float32)
            additive = (1.0 - keep) * torch.finfo(torch.float32).min
            out = self.encoder(input_ids=input_ids, attention_mask=additive,
                               output_hidden_states=True)
            layers = [out.hidden_states[k][0] for k in model.span_layers]
            return self.head(entity_features(layers, spans))

    return EntityGraph().eval()


def _entity_class():
    from tasks.models.entity_sentiment import ENTITY_DIR, ENTITY_MODEL, EntitySentiment

    class OnnxEntitySentiment(EntitySentiment):
        """The entity model with its pass on ORT (int8 MatMuls); same features and head."""

        def __init__(self, quant: Quant = DEFAULT_QUANT, threads: int | None = None):
            super().__init__(ENTITY_DIR, ENTITY_MODEL, load_weights=False)
            self.quant = quant
            key = cache_key(self.revision, "entity-lora")
            fp32 = cached_file(key, "entity-fp32.onnx", self._export)
            self.path = fp32 if quant == "fp32" else cached_file(
                key, "entity-int8.onnx", lambda out: quantize_int8(fp32, out))
            self._session, self._pool = _session(self.path, threads)

        def _export(self, out: Path) -> None:
            import torch

            self.load_weights()
            try:
                ids, spans = self.encode_item("Tesco gains as Sainsbury slides.",
                                              ((0, 5), (15, 25)))
                x = torch.tensor([ids])
                axes = {"input_ids": {0: "batch", 1: "tokens"},
                        "attention_mask": {0: "batch", 1: "tokens"},
                        "spans": {0: "mentions", 1: "tokens"}, "entity_logits": {0: "mentions"}}
                with warnings.catch_warnings(), torch.inference_mode():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(_entity_graph(self), (x, torch.ones_like(x),
                                                            torch.from_numpy(spans)),
                                      str(out), input_names=["input_ids", "attention_mask",
                                                             "spans"],
                                      output_names=["entity_logits"], dynamic_axes=axes,
                                      opset_version=17, dynamo=False)
            finally:
                self._encoder = self._head = None

        def backend_params(self) -> dict[str, object]:
            return {"backend": "onnx", "quantization": self.quant,
                    "onnxruntime": package_version("onnxruntime"), **row_params(self.quant)}

        def _compute(self, items):
            out: list[np.ndarray | None] = [None] * len(items)

            def one(i: int) -> None:
                ids, spans = self.encode_item(*items[i])
                x = np.asarray([ids], dtype=np.int64)
                out[i] = self._session.run(None, {"input_ids": x,
                                                  "attention_mask": np.ones_like(x),
                                                  "spans": spans})[0]

            self._pool.map(one, len(items))
            return out

    return OnnxEntitySentiment


@lru_cache(maxsize=2)
def load_onnx_entity_model(quant: Quant = DEFAULT_QUANT):
    """The ORT form of the built-in entity sentiment model, one per process."""
    return _entity_class()(quant)


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
