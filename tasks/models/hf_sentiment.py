"""Sentiment from any Hugging Face sequence-classification model, mapped to our three labels.

Models name their classes every which way (`LABEL_0/1`, `POSITIVE/NEGATIVE`, `pos/neg`,
FinBERT's three classes, "1 star" .. "5 stars"). Each model label is mapped to negative,
neutral or positive; probabilities of labels mapped to the same class are summed (so 1-2 stars
fold into negative). A label that cannot be mapped refuses the model at load, before any
document is read, with the `--label-map` to pass. Documents are scored sentence by sentence
(an over-long sentence in token-sized pieces) and pooled with
`tasks.models.sentiment_base.pool_probs`.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import numpy as np

from tasks.models.batching import length_batches
from tasks.models.chunking import TokenChunker
from tasks.models.registry import ModelError, ModelRef
from tasks.models.seq2seq import input_limit, load_pretrained, n_special_tokens
from tasks.record import SENTIMENT_LABELS, Document

SYNONYMS = {
    "negative": "negative", "neg": "negative", "bearish": "negative",
    "very negative": "negative", "most negative": "negative",
    "neutral": "neutral", "neu": "neutral", "none": "neutral",
    "positive": "positive", "pos": "positive", "bullish": "positive",
    "very positive": "positive", "most positive": "positive",
}
STARS = re.compile(r"([1-5])\s*stars?")
GENERIC = re.compile(r"label_(\d+)")
# Generic LABEL_k names follow the common conventions: SST-2 (0 neg, 1 pos) and the
# 3-class sentiment models (0 neg, 1 neu, 2 pos). Any other count must be mapped explicitly.
GENERIC_ORDER = {2: ("negative", "positive"), 3: ("negative", "neutral", "positive")}


def parse_label_map(text: str | None) -> tuple[tuple[str, str], ...]:
    """`LABEL_0=negative,LABEL_1=positive` -> (("LABEL_0", "negative"), ...)."""
    if not text or not text.strip():
        return ()
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip().lower()
        if not sep or not key:
            raise ModelError(f"--label-map item {item.strip()!r} is not MODEL_LABEL=ours")
        if value not in SENTIMENT_LABELS:
            raise ModelError(f"--label-map {key}={value}: map to one of "
                             f"{', '.join(SENTIMENT_LABELS)}")
        pairs.append((key, value))
    return tuple(sorted(pairs))


def _auto_label(label: str, labels: list[str]) -> str | None:
    norm = " ".join(label.strip().lower().replace("_", " ").replace("-", " ").split())
    if norm in SYNONYMS:
        return SYNONYMS[norm]
    stars = STARS.fullmatch(norm)
    if stars:
        return ("negative", "negative", "neutral", "positive", "positive")[int(stars[1]) - 1]
    generic = GENERIC.fullmatch(label.strip().lower())
    order = GENERIC_ORDER.get(len(labels))
    if generic and order and all(GENERIC.fullmatch(x.strip().lower()) for x in labels):
        k = int(generic[1])
        return order[k] if k < len(order) else None
    return None


def label_mapping(id2label: dict[int, str], label_map: dict[str, str] | None = None,
                  model: str = "the model") -> dict[str, str]:
    """{model label: ours} for every label, or ModelError saying which --label-map to pass."""
    labels = [str(id2label[i]) for i in sorted(id2label)]
    given = dict(label_map or {})
    stray = sorted(set(given) - set(labels))
    if stray:
        raise ModelError(f"--label-map names {', '.join(stray)}, which {model} does not have; "
                         f"its labels are: {', '.join(labels)}")
    mapping: dict[str, str] = {}
    missing = []
    for label in labels:
        target = given.get(label) or _auto_label(label, labels)
        if target is None:
            missing.append(label)
        else:
            mapping[label] = target
    example = ",".join(f"{x}=negative|neutral|positive" for x in (missing or labels)[:3])
    if missing:
        raise ModelError(
            f"cannot map the labels {', '.join(missing)} of {model} (labels: "
            f"{', '.join(labels)}) to negative/neutral/positive; pass "
            f"--label-map '{example}' covering every unmapped label")
    if not {"negative", "positive"} <= set(mapping.values()):
        raise ModelError(f"labels of {model} map to {sorted(set(mapping.values()))}: a "
                         "sentiment model needs a negative and a positive class; pass "
                         f"--label-map '{example}'")
    return mapping


def fold_matrix(labels: list[str], mapping: dict[str, str]) -> np.ndarray:
    """(n_labels, 3) 0/1 matrix: model probabilities @ it = (neg, neu, pos)."""
    m = np.zeros((len(labels), len(SENTIMENT_LABELS)), dtype=np.float32)
    for i, label in enumerate(labels):
        m[i, SENTIMENT_LABELS.index(mapping[label])] = 1.0
    return m


class HFSentiment:
    """A sequence-classification model scoring sentences, pooled to the document."""

    needs_embeddings = False

    def __init__(self, ref: ModelRef, *, label_map: tuple[tuple[str, str], ...] = (),
                 dtype: str = "float32", batch_size: int = 32, pooling: str = "mean"):
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        from tasks.models.sentiment_base import pool_probs

        self.ref = ref
        self.name = ref.name
        self.dtype = dtype
        self.batch_size = batch_size
        self.pooling = pooling
        pool_probs(np.full((1, 3), 1 / 3), pooling)  # fail early on a bad pooling name
        try:  # the config alone first: labels are checked before the weights are read
            config = AutoConfig.from_pretrained(str(ref.path), trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot read the config of {ref.name!r}: "
                             f"{str(exc).splitlines()[0]}") from None
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        self.labels = [id2label[i] for i in sorted(id2label)]
        self.mapping = label_mapping(id2label, dict(label_map), ref.name)
        self.fold = fold_matrix(self.labels, self.mapping)
        self.model = load_pretrained(AutoModelForSequenceClassification, ref, dtype,
                                     "sequence-classification")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(ref.path), trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load the tokenizer of {ref.name!r}: "
                             f"{str(exc).strip().splitlines()[0]}") from None
        self.limit = input_limit(self.tokenizer, self.model.config)
        self.chunker = TokenChunker(self.tokenizer, self.limit - n_special_tokens(self.tokenizer))
        self._torch = torch
        self._pool = pool_probs
        self._lock = threading.Lock()

    def provenance(self) -> dict[str, Any]:
        params = {"kind": "sequence-classification", "label_map": self.mapping,
                  "pooling": self.pooling, "unit": "sentence", "input_tokens": self.limit,
                  "dtype": self.dtype}
        return {"name": self.name, "revision": self.ref.revision,
                "params": json.dumps(params, sort_keys=True)}

    def unit_probs(self, texts: list[str]) -> np.ndarray:
        """(n, 3) probabilities of each text (each fits the model), batched by length."""
        torch = self._torch
        out = np.zeros((len(texts), len(SENTIMENT_LABELS)), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for idx in length_batches([len(t) for t in texts], self.batch_size):
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=False,
                                     return_tensors="pt")
                logits = self.model(**enc).logits.float()
                out[idx] = torch.softmax(logits, dim=-1).numpy() @ self.fold
        return out

    def score(self, docs: list[Document]) -> list[Document]:
        from tasks.models.sentiment_base import set_sentiment

        flat = [s for d in docs for s in d.sentences if s.strip()]
        fits = dict(zip(flat, (n <= self.chunker.budget for n in self.chunker.count(flat)),
                        strict=True))
        units = [[p for s in d.sentences if s.strip()
                  for p in ([s] if fits[s] else self.chunker.split(s))] for d in docs]
        probs = self.unit_probs([u for us in units for u in us])
        start = 0
        for doc, us in zip(docs, units, strict=True):
            n = len(us)
            set_sentiment(doc, self._pool(probs[start : start + n], self.pooling) if n else None)
            start += n
        return docs
