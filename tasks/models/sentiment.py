"""The built-in sentiment models and `load_sentiment(name)`, which resolves any name.

"minilm-lora" (the default) is MiniLM fine-tuned with LoRA adapters and a 3-way head
(`tasks.training.train_sentiment`): its own encoder pass per sentence. "minilm-head" is a
small head over the frozen sentence embeddings that `tasks.steps.embed` computes for the
summariser. Any other name is a Hugging Face classifier (`tasks.models.hf_sentiment`).
Sentences are pooled into a document by `tasks.models.sentiment_base`.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tasks.models.document_head import WEIGHTS as DOC_HEAD_WEIGHTS
from tasks.models.document_head import load_document_head
from tasks.models.encoder import load_encoder
from tasks.models.encoder_pass import load_base_encoder, mean_pool, tagger_features
from tasks.models.entity_sentiment import ENTITY_WEIGHTS
from tasks.models.entity_tagger import TAGGER_WEIGHTS, load_tagger, tagger_inputs
from tasks.models.lead import LEAD_SENTENCES
from tasks.models.registry import (
    ASSETS,
    DEFAULT_ENCODER,
    ModelError,
    ModelRef,
    adapter_base,
    file_digest,
)
from tasks.models.rowwise import ROWS_ALONE, RowCache
from tasks.models.sentiment_base import (
    NEWS_POOLING,
    SentimentModel,
    document_units,
    pool_probs,
    set_sentiment,
)
from tasks.record import SENTIMENT_LABELS, Document

HEAD_NAME = "minilm-head"
DEFAULT_SENTIMENT = "minilm-lora"  # must be a BUILTIN_SENTIMENT key
HEAD_DIR = ASSETS / "sentiment-head"
LORA_NAME = "minilm-lora"
LORA_DIR = ASSETS / "sentiment-lora"
# Sentences whose entity-head token states the pass keeps (LRU; a batch's sentences fit).
STATE_ROWS = 4096
# Built-ins that read the shared sentence embeddings (`needs_embeddings`), known without
# loading them: the embed step runs only when a chosen model is one of these.
READS_EMBEDDINGS = frozenset({HEAD_NAME})


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
        rows = np.ascontiguousarray(embeddings, dtype=np.float32)
        with self._torch.no_grad():  # row by row: a matrix product's last bits vary with M
            logits = self._torch.cat([self._module(self._torch.from_numpy(rows[i : i + 1]))
                                      for i in range(len(rows))])
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


class LoraSentiment:
    """MiniLM fine-tuned with LoRA adapters plus a linear 3-way head
    (`tasks.training.train_sentiment`).

    The adapter is merged into the base weights at load, so scoring costs one plain MiniLM
    pass per sentence. That pass also yields a sentence vector (the mean-pooled, normalised
    state the head reads): as the run's encoder (`encode`), the embed step takes vectors and
    logits from one pass, and `score` then only runs the titles.
    """

    needs_embeddings = False
    read_sentences = LEAD_SENTENCES  # title + the lead (tasks.models.lead)

    def __init__(self, folder: Path, name: str, pooling: str | None = None,
                 load_weights: bool = True):
        from transformers import AutoTokenizer

        files = [folder / n for n in ("config.json", "head.safetensors",
                                      "adapter_model.safetensors", "adapter_config.json")]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelError(f"LoRA sentiment folder {folder} lacks {', '.join(missing)}; "
                             "train one with python -m tasks.training.train_sentiment")
        self.name = name
        self.folder = folder
        self.config = json.loads(files[0].read_text(encoding="utf-8"))
        self.labels = tuple(self.config["labels"])
        if self.labels != SENTIMENT_LABELS:
            raise ModelError(f"model labels {self.labels} differ from {SENTIMENT_LABELS}")
        self.pooling = pooling or self.config.get("pooling", "mean")
        pool_probs(np.full((1, 3), 1 / 3), self.pooling)  # fail early on a bad name
        self.max_length = int(self.config["max_length"])
        self.temperature = float(self.config.get("temperature", 1.0))
        # Trained with a fitted neutral band: labels follow the score (`label_indices`).
        self.band = self.config.get("neutral_band")
        # The document label from the units' outputs (`tasks.models.document_head`), when
        # the weights have one; else the sentences' probabilities pooled by `pooling`.
        self.doc_head = load_document_head(folder, self.config)
        # Entity finding from the same pass (`tasks.models.entity_tagger`), when it has one.
        self.tagger_config = self.config.get("entity_tagger")
        self.tagger_digest = (file_digest(folder / TAGGER_WEIGHTS) if self.tagger_config
                              else None)
        # Per-mention sentiment from the same pass (`tasks.models.entity_sentiment`): the
        # pass keeps the token states its entity head reads, for the last sentences it ran.
        self.entity_config = self.config.get("entity_head")
        self.entity_digest = (file_digest(folder / ENTITY_WEIGHTS) if self.entity_config
                              else None)
        if self.entity_config and not self.tagger_config:
            raise ModelError(f"{folder}: an entity_head needs the entity_tagger's pass "
                             "(one sentence per pass)")
        base_ref = adapter_base(self.config, folder)
        self.base_revision = base_ref.revision
        self.adapter_digest = file_digest(files[2])
        self.head_digest = file_digest(files[1])
        self.lora = self.config["lora"]
        self.base_path = base_ref.path
        self.tokenizer = AutoTokenizer.from_pretrained(str(base_ref.path))
        self._encoder = self._head = self._tagger = None
        self._lock = threading.Lock()  # torch modules are not safe to call from several threads
        self.cache = RowCache()
        self.states = RowCache(STATE_ROWS)
        if load_weights:
            self.load_weights()

    def band_for(self, n_units: int) -> float | None:
        """The neutral band that labels a document of `n_units` units (title included)."""
        return self.doc_head.band_for(n_units) if self.doc_head is not None else self.band

    def load_weights(self) -> None:
        """Merge the adapter into the base and load the head: the torch model (~1 s).

        The ONNX backend skips this when its exported graph is already cached.
        """
        import torch
        from peft import PeftModel
        from safetensors.torch import load_file

        with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = PeftModel.from_pretrained(load_base_encoder(self.base_path),
                                                   str(self.folder))
        self._encoder = peft_model.merge_and_unload().float().eval()
        self._head = torch.nn.Linear(int(self.config["hidden_size"]), len(self.labels))
        self._head.load_state_dict(load_file(str(self.folder / "head.safetensors")))
        self._head.float().eval()
        self._tagger = load_tagger(self.folder, self.config)

    @property
    def has_tagger(self) -> bool:
        return self.tagger_config is not None

    def tagger_params(self) -> dict[str, object]:
        """How the pass finds entities, for the provenance."""
        c = self.tagger_config or {}
        return {"tagger": f"{self.name} entity_tagger", "layers": c.get("layers"),
                "hidden": c.get("hidden"), "rnn": c.get("rnn"), "tags": c.get("tags"),
                "revision": self.pass_revision}

    @property
    def ref(self) -> ModelRef:
        """This model as an encoder: its adapted weights, for the embeddings' provenance."""
        return ModelRef(self.name, self.folder, self.pass_revision, "builtin")

    @property
    def dim(self) -> int:
        return int(self.config["hidden_size"])

    def backend_params(self) -> dict[str, object]:
        """How the encoder pass runs (the ONNX form says its own)."""
        return {"backend": "torch", "quantization": "fp32", **ROWS_ALONE}

    def params(self) -> dict[str, object]:
        """How its sentence vectors are made (the encoder entry of the run manifest)."""
        return {"normalize": True, "pooling": "mean", "max_length": self.max_length,
                **self.backend_params()}

    def provenance(self) -> dict[str, str]:
        params = {
            "max_length": self.max_length,
            "read_sentences": self.read_sentences,
            "pooling": self.pooling,
            "temperature": self.temperature,
            "neutral_band": self.band,
            **({"news_pooling": NEWS_POOLING} if self.pooling == "news" and not self.doc_head
               else {}),
            **({"document_head": self.doc_head.params()} if self.doc_head else {}),
            "lora": {"r": self.lora["r"], "alpha": self.lora["alpha"]},
            "base": self.config["base_model"]["name"],
            **self.backend_params(),
        }
        return {
            "name": self.name,
            "revision": self.revision,
            "params": json.dumps(params, sort_keys=True),
        }

    @property
    def pass_revision(self) -> str:
        """The weights of the encoder pass: base, adapter, sentence-head and (when it has one)
        entity-tagger digests."""
        tagger = f";tagger-sha256:{self.tagger_digest}" if self.tagger_digest else ""
        if self.entity_digest:  # the graph also returns the states this head reads
            tagger += f";entity-head-sha256:{self.entity_digest}"
        return (f"{self.base_revision};adapter-sha256:{self.adapter_digest};"
                f"head-sha256:{self.head_digest}{tagger}")

    @property
    def revision(self) -> str:
        """The weights: the pass's and the document head's digests."""
        doc_head = f";doc-head-sha256:{self.doc_head.digest}" if self.doc_head else ""
        return f"{self.pass_revision}{doc_head}"

    def outputs(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) raw head logits (before temperature) and (n, dim) L2-normalised sentence
        vectors, from one pass, each sentence alone (`tasks.models.rowwise`), in input order;
        a sentence seen before in this process is not run again."""
        width = len(self.labels)
        rows = np.zeros((len(sentences), width + self.dim), dtype=np.float32)
        for i, item in enumerate(self.cache.items(sentences, self._run)):
            rows[i] = item[0]
        return rows[:, :width], rows[:, width:]

    def tags(self, sentences: list[str]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        """Per sentence, from the same pass (cached with its other outputs): the character
        range of each word and its (words, tags) tagger logits (`tasks.models.entity_tagger`)."""
        if not self.has_tagger:
            raise ModelError(f"{self.name} has no entity tagger (config.json entity_tagger)")
        return [(item[1], item[2]) for item in self.cache.items(sentences, self._run)]

    def span_states(self, sentences: list[str]) -> list[tuple[np.ndarray, list]]:
        """Per sentence, from the same pass: the token states the entity head reads
        ((layers, tokens, hidden), float16) and each token's character range. Kept for the
        last `STATE_ROWS` sentences run; an older one runs again (the same numbers)."""
        if not self.entity_config:
            raise ModelError(f"{self.name} has no entity head (config.json entity_head)")
        return self.states.items(sentences, lambda todo: [i[3] for i in self._compute(todo)])

    def _run(self, sentences: list[str]) -> list[tuple]:
        """The pass's cached outputs; the entity head's token states go to their own,
        smaller cache (about 50 kB a sentence)."""
        out = []
        for sentence, item in zip(sentences, self._compute(sentences), strict=True):
            if item[3] is not None:
                self.states.put(sentence, item[3])
            out.append(item[:3])
        return out

    def _compute(self, sentences: list[str]) -> list[tuple]:
        """(logits | vector, word ranges, tagger logits, entity-head states) per sentence, on
        torch, one sentence per forward pass."""
        import torch

        out = []
        with self._lock, torch.inference_mode():
            for sentence in sentences:
                x = tagger_inputs(self.tokenizer, sentence, self.max_length)
                ids = torch.tensor([x["ids"]])
                mask = torch.ones_like(ids)
                res = self._encoder(input_ids=ids, attention_mask=mask,
                                    output_hidden_states=self._tagger is not None)
                states = None
                if self.entity_config:
                    states = (torch.stack([res.hidden_states[k][0] for k in
                                           self.entity_config["features"]["span_layers"]]).numpy()
                              .astype(np.float16), x["offsets"])
                pooled = mean_pool(res.last_hidden_state, mask)
                row = np.concatenate([self._head(pooled)[0].numpy(),
                                      torch.nn.functional.normalize(pooled, dim=-1)[0].numpy()])
                tags = None
                if self._tagger is not None:
                    tags = self._tagger(tagger_features(
                        res.hidden_states, self.tagger_config["layers"],
                        torch.from_numpy(x["words"]), torch.from_numpy(x["shapes"])))[0].numpy()
                    tags = tags[: len(x["spans"])]
                out.append((row.astype(np.float32), x["spans"], tags, states))
        return out

    def logits(self, sentences: list[str]) -> np.ndarray:
        return self.outputs(sentences)[0]

    def encode(self, sentences: list[str]) -> np.ndarray:
        """Sentence vectors, as `tasks.models.encoder.Encoder.encode` gives them."""
        return self.outputs(sentences)[1]

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """softmax(logits / temperature)."""
        z = logits.astype(np.float64) / self.temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)

    def sentence_probs(self, sentences: list[str]) -> np.ndarray:
        """(n, 3) calibrated probabilities."""
        return self.calibrated(self.logits(sentences))

    def score(self, docs: list[Document]) -> list[Document]:
        # One encoder call for the whole batch: every unit, or only the title where the embed
        # step already ran the body through this model (`doc.sentence_logits`, with the
        # vectors of the same pass in `doc.embeddings`).
        units = [document_units(d, self.read_sentences) for d in docs]
        known = [_known_outputs(d, len(texts) - titled) for d, (texts, titled) in
                 zip(docs, units, strict=True)]
        todo = [texts[: int(titled)] if k is not None else texts
                for (texts, titled), k in zip(units, known, strict=True)]
        fresh_z, fresh_v = self.outputs([s for t in todo for s in t])
        start = 0
        for doc, (texts, titled), k, t in zip(docs, units, known, todo, strict=True):
            z, v = fresh_z[start : start + len(t)], fresh_v[start : start + len(t)]
            start += len(t)
            if k is not None:
                z, v = np.concatenate([z, k[0]]), np.concatenate([v, k[1]])
            if not texts:
                set_sentiment(doc, None)
            elif self.doc_head is not None:
                set_sentiment(doc, self.doc_head.probs(self.calibrated(z), v, titled, texts),
                              self.doc_head.band_for(len(texts)))
            else:
                set_sentiment(doc, pool_probs(self.calibrated(z), self.pooling, titled),
                              self.band)
        return docs


def _known_outputs(doc: Document, n_body: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The logits and vectors of the document's first `n_body` sentences, when the embed step
    kept them from this model's pass (the logits are set only then)."""
    z, v = doc.sentence_logits, doc.embeddings
    if z is None or v is None or len(z) < n_body or len(v) < n_body:
        return None
    return z[:n_body], v[:n_body]


BUILTIN_SENTIMENT: dict[str, Callable[[], SentimentModel]] = {
    HEAD_NAME: lambda: EmbeddingHeadSentiment(HEAD_DIR, HEAD_NAME),
    LORA_NAME: lambda: LoraSentiment(LORA_DIR, LORA_NAME),
}


BUILTIN_DIRS = {HEAD_NAME: HEAD_DIR, LORA_NAME: LORA_DIR}
# The files behind the "<part>-sha256:<digest>" parts of a built-in's revision (`provenance`).
REVISION_FILES = {"adapter": "adapter_model.safetensors", "head": "head.safetensors",
                  "doc-head": DOC_HEAD_WEIGHTS, "tagger": TAGGER_WEIGHTS,
                  "entity-head": ENTITY_WEIGHTS}


def builtin_metadata(name: str, revision: str | None, dirs: dict[str, Path] = BUILTIN_DIRS,
                     revision_files: dict[str, str] = REVISION_FILES) -> dict[str, Any] | None:
    """The metadata (config.json: training data with licences, label rule, metrics) of the
    built-in sentiment model `name`, read without loading it; None for any other model, or
    when `revision` (as a row's provenance records it) is not the installed weights, since
    the installed metadata would then describe another model than the one that ran.
    `dirs` and `revision_files`: another family of built-ins (the entity model's)."""
    folder = dirs.get(name)
    if folder is None:
        return None
    pinned = dict(p.split("-sha256:", 1) for p in (revision or "").split(";")
                  if "-sha256:" in p)
    files = {part: folder / revision_files.get(part, "") for part in pinned}
    if not pinned or not all(f.is_file() and file_digest(f, len(pinned[part])) == pinned[part]
                             for part, f in files.items()):
        return None
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def entity_head_metadata(name: str, revision: str | None) -> dict[str, Any] | None:
    """What `builtin_metadata` gives, for the entity head a built-in's pass serves
    (config.json `entity_head`; `revision` as the `entity_model` provenance records it, the
    pass's): its label rule, band, and the data entries (with licences) it was trained on:
    its own (`entity_head.data`) or the model's (`data`), as `entity_head.data.sets` names.
    None when the installed weights are not those that ran, or carry no entity head."""
    config = builtin_metadata(name, revision)
    head = (config or {}).get("entity_head")
    if not head:
        return None
    own = head.get("data", {})
    return {"label_rule": head.get("label_rule"), "neutral_band": head.get("neutral_band"),
            "data": {k: own[k] if isinstance(own.get(k), dict) else config["data"].get(k)
                     for k in own.get("sets", [])}}


@lru_cache(maxsize=1)
def adapted_encoder_ref() -> ModelRef:
    """The built-in LoRA model as an encoder (name and revision), without loading weights."""
    return LoraSentiment(LORA_DIR, LORA_NAME, load_weights=False).ref


def load_sentiment(name: str = DEFAULT_SENTIMENT, **params: Any) -> SentimentModel:
    """One sentiment model per process, name and parameters; unknown names fail with choices.

    Besides the built-ins, `name` may be a local sequence-classification model folder or a Hub
    id (`tasks.models.hf_sentiment`), which take `revision`, `label_map` (pairs) and `dtype`.
    """
    return _load_sentiment(name, tuple(sorted((k, v) for k, v in params.items()
                                              if v is not None)))


def _hf_sentiment(name: str, revision: str | None = None, **params: Any) -> SentimentModel:
    from tasks.models.hf_sentiment import HFSentiment
    from tasks.models.registry import resolve_model

    ref = resolve_model(name, revision, builtins=", ".join(BUILTIN_SENTIMENT))
    return HFSentiment(ref, **params)


@lru_cache(maxsize=8)  # load_sentiment() is load_sentiment(default): the same cache key
def _load_sentiment(name: str, frozen_params: tuple[tuple[str, Any], ...] = ()) -> SentimentModel:
    params = dict(frozen_params)
    factory = BUILTIN_SENTIMENT.get(name)
    if factory is None:
        return _hf_sentiment(name, **params)
    if params:
        raise ModelError(f"{', '.join(sorted(params))} apply to Hugging Face sentiment models, "
                         f"not to the built-in {name!r}")
    return factory()
