"""Target-aware sentiment: is this sentence good or bad news for the entity it names?

"minilm-entity" is MiniLM with LoRA adapters trained on two objectives at once
(`bench.entity_experiment`, arm B): the document labels the built-in sentiment model learned
from, and per-mention labels (NewsMTSC, SEntFiN entities). Its head reads the mention's own
tokens: the mean of the mention's token states in the last two layers and the sentence's
mean state, through a small MLP, so two companies in one headline can get opposite labels.

Each (sentence, mentions) pair runs alone (`tasks.models.rowwise`) and is cached by its text
and character spans. The model's facts (training data, licences, label rule, band, metrics)
are in its `config.json`.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tasks.models.registry import ASSETS, ModelError, adapter_base, file_digest
from tasks.models.rowwise import ROWS_ALONE, RowCache
from tasks.record import SENTIMENT_LABELS

ENTITY_MODEL = "minilm-entity"
ENTITY_DIR = ASSETS / "entity-lora"
# The head's weights file, here and in a model whose pass serves it (`minilm-lora`).
ENTITY_WEIGHTS = "entity_head.safetensors"
FILES = ("config.json", "adapter_config.json", "adapter_model.safetensors", ENTITY_WEIGHTS)

BUILTIN_DIRS = {ENTITY_MODEL: ENTITY_DIR}
# The files behind the "<part>-sha256:<digest>" parts of its revision.
REVISION_FILES = {"adapter": "adapter_model.safetensors", "head": "entity_head.safetensors"}

Mentions = tuple[tuple[int, int], ...]  # character ranges of one entity's mentions in a text


def item_key(text: str, spans: Mentions) -> str:
    """Cache key of one scoring call: the text and its spans."""
    return text + "\x00" + ";".join(f"{a}:{b}" for a, b in spans)


def build_entity_head(config: dict[str, Any]):
    """The head config.json describes: features -> hidden (GELU) -> 3 logits (the dropout
    slot of training is kept, index 2, so the saved names load unchanged); or, with
    `kind: mention_layer`, one more transformer layer over the marked mention first
    (`tasks.models.mention_layer`)."""
    import torch

    head = config["head"]
    if is_layered(config):
        from tasks.models.mention_layer import MentionLayerHead

        return MentionLayerHead.from_config(head)
    dim, hidden = int(head["input_dim"]), int(head["hidden"])
    return torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Dropout(0.0),
                               torch.nn.Linear(hidden, len(SENTIMENT_LABELS)))


def is_layered(config: dict[str, Any]) -> bool:
    """Whether the head runs a layer over the marked mention (`tasks.models.mention_layer`)."""
    return config["head"].get("kind") == "mention_layer"


def token_spans(offsets: Sequence[tuple[int, int]], spans: Mentions) -> list[tuple[int, int]]:
    """Token range of each character span ((0, 0): cut off by truncation, read as the
    sentence mean, as in training)."""
    out = []
    for s, e in spans:
        hit = [i for i, (a, b) in enumerate(offsets) if b > a and a < e and b > s]
        out.append((min(hit), max(hit) + 1) if hit else (0, 0))
    return out


def span_matrix(token_ranges: list[tuple[int, int]], width: int) -> np.ndarray:
    """(k, width) weights: 1 over each mention's tokens (all tokens when it has none)."""
    m = np.zeros((len(token_ranges), width), dtype=np.float32)
    for row, (a, b) in enumerate(token_ranges):
        if b > a:
            m[row, a:b] = 1.0
        else:
            m[row, :] = 1.0
    return m


class MentionScorer:
    """What both entity models share: per-item logits cached by text and spans, and their
    calibrated probabilities. A subclass sets `cache` and `temperature` and computes the
    (k, 3) logits of uncached items in `_compute`."""

    cache: RowCache
    temperature: float

    def _compute(self, items: list[tuple[str, Mentions]]) -> list[np.ndarray]:
        raise NotImplementedError

    def logits(self, items: Sequence[tuple[str, Mentions]]) -> list[np.ndarray]:
        """(k, 3) raw logits per (text, spans) item, each text run alone; cached."""
        keyed = {item_key(t, s): (t, s) for t, s in items}
        return self.cache.items([item_key(t, s) for t, s in items],
                                lambda keys: self._compute([keyed[k] for k in keys]))

    def probs(self, items: Sequence[tuple[str, Mentions]]) -> list[np.ndarray]:
        """(k, 3) calibrated probabilities (softmax of logits / temperature) per item."""
        out = []
        for z in self.logits(items):
            z = z.astype(np.float64) / self.temperature
            z = np.exp(z - z.max(axis=1, keepdims=True))
            out.append((z / z.sum(axis=1, keepdims=True)).astype(np.float32))
        return out


class EntitySentiment(MentionScorer):
    """The per-mention model (module docstring), on torch; `tasks.models.onnx_backend` has
    the ONNX form."""

    def __init__(self, folder: Path = ENTITY_DIR, name: str = ENTITY_MODEL,
                 load_weights: bool = True):
        from transformers import AutoTokenizer

        missing = [f for f in FILES if not (folder / f).is_file()]
        if missing:
            raise ModelError(f"entity sentiment folder {folder} lacks {', '.join(missing)}")
        self.name = name
        self.folder = folder
        self.config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if tuple(self.config["labels"]) != SENTIMENT_LABELS:
            raise ModelError(f"model labels {self.config['labels']} differ from "
                             f"{SENTIMENT_LABELS}")
        self.max_length = int(self.config["max_length"])
        self.temperature = float(self.config["temperature"])
        # None: labels by arg-max (config.json `label_rule` says why)
        band = self.config.get("neutral_band")
        self.band = None if band is None else float(band)
        self.span_layers = tuple(int(k) for k in self.config["features"]["span_layers"])
        base_ref = adapter_base(self.config, folder)
        self.base_revision = base_ref.revision
        self.base_path = base_ref.path
        self.digests = {"adapter": file_digest(folder / "adapter_model.safetensors"),
                        "head": file_digest(folder / "entity_head.safetensors")}
        self.tokenizer = AutoTokenizer.from_pretrained(str(base_ref.path))
        self._encoder = self._head = None
        self._lock = threading.Lock()
        self.cache = RowCache()
        if load_weights:
            self.load_weights()

    def load_weights(self) -> None:
        """Merge the adapter into MiniLM and load the head (~1 s)."""
        from peft import PeftModel
        from safetensors.torch import load_file

        from tasks.models.encoder_pass import load_base_encoder

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = PeftModel.from_pretrained(load_base_encoder(self.base_path),
                                                   str(self.folder))
        self._encoder = peft_model.merge_and_unload().float().eval()
        self._head = build_entity_head(self.config)
        self._head.load_state_dict(load_file(str(self.folder / "entity_head.safetensors")))
        self._head.float().eval()

    @property
    def revision(self) -> str:
        return (f"{self.base_revision};adapter-sha256:{self.digests['adapter']};"
                f"head-sha256:{self.digests['head']}")

    def backend_params(self) -> dict[str, object]:
        return {"backend": "torch", "quantization": "fp32", **ROWS_ALONE}

    def provenance(self) -> dict[str, str]:
        params = {"max_length": self.max_length, "temperature": self.temperature,
                  "neutral_band": self.band, "features": self.config["features"],
                  "pooling": self.config["pooling"], "base": self.config["base_model"]["name"],
                  **self.backend_params()}
        return {"name": self.name, "revision": self.revision,
                "params": json.dumps(params, sort_keys=True)}

    def encode_item(self, text: str, spans: Mentions) -> tuple[list[int], np.ndarray]:
        """Token ids of `text` and the (k, tokens) span weights of its mentions."""
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length,
                             return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        return ids, span_matrix(token_spans(enc["offset_mapping"], spans), len(ids))

    def _compute(self, items: list[tuple[str, Mentions]]) -> list[np.ndarray]:
        import torch

        out = []
        with self._lock, torch.inference_mode():
            for text, spans in items:
                ids, weights = self.encode_item(text, spans)
                x = torch.tensor([ids])
                res = self._encoder(input_ids=x, attention_mask=torch.ones_like(x),
                                    output_hidden_states=True)
                out.append(self._head(entity_features(
                    [res.hidden_states[k][0] for k in self.span_layers],
                    torch.from_numpy(weights))).numpy())
        return out


def entity_features(layers: list[Any], weights: Any) -> Any:
    """[span mean per layer | sentence mean of the last layer] for k mentions.

    `layers`: (tokens, hidden) states; `weights`: (k, tokens). Elementwise products and sums
    (no MatMul), so int8 quantisation of the exported graph leaves the pooling in fp32.
    """
    w = weights.unsqueeze(-1)
    denom = weights.sum(dim=1, keepdim=True).clamp(min=1e-9)
    parts = [(w * h.unsqueeze(0)).sum(dim=1) / denom for h in layers]
    parts.append(layers[-1].mean(dim=0, keepdim=True).expand(weights.shape[0], -1))
    import torch

    return torch.cat(parts, dim=-1)


class PassEntitySentiment(MentionScorer):
    """Per-mention sentiment read from the shared pass: `minilm-lora`'s entity head
    (`tasks.training.train_news_sentiment`) over the token states the pass already made for
    the sentence's other heads, so naming an entity costs no second encoder pass. The MLP
    kind reads the same features as `EntitySentiment`; the mention-layer kind re-runs the last
    layers over them with the mention marked first (`tasks.models.mention_layer`). Same
    interface; the head's facts are in the model's `config.json` under `entity_head`."""

    def __init__(self, pass_model):
        import torch
        from safetensors.torch import load_file

        if not getattr(pass_model, "entity_config", None):
            raise ModelError(f"{pass_model.name} has no entity head (config.json entity_head)")
        self.pass_model = pass_model
        self.config = pass_model.entity_config
        self.name = pass_model.name
        self.temperature = float(self.config["temperature"])
        band = self.config.get("neutral_band")
        self.band = None if band is None else float(band)
        self.head = build_entity_head(self.config)
        self.head.load_state_dict(load_file(str(pass_model.folder / ENTITY_WEIGHTS)))
        self.head.float().eval()
        self.layered = is_layered(self.config)
        self._torch = torch
        self.cache = RowCache()

    @property
    def revision(self) -> str:
        return self.pass_model.pass_revision

    def provenance(self) -> dict[str, str]:
        params = {"head": "entity_head", "temperature": self.temperature,
                  "neutral_band": self.band, "features": self.config["features"],
                  "pass": "the sentiment model's own (no second encoder pass)",
                  **self.pass_model.backend_params()}
        return {"name": self.name, "revision": self.revision,
                "params": json.dumps(params, sort_keys=True)}

    def _compute(self, items: list[tuple[str, Mentions]]) -> list[np.ndarray]:
        torch = self._torch
        states = self.pass_model.span_states([t for t, _ in items])
        out = []
        with torch.inference_mode():
            for (_, spans), (layers, offsets) in zip(items, states, strict=True):
                weights = span_matrix(token_spans(offsets, spans), layers.shape[1])
                x = torch.from_numpy(layers.astype(np.float32))
                weights = torch.from_numpy(weights)
                z = (self.head.score(x, weights) if self.layered else
                     self.head(entity_features(list(x), weights)))
                out.append(z.numpy())
        return out
