"""Entity finding learned from labels: a token head over the shared encoder pass.

The head reads, for every token, the encoder's states (the layers its config names) and the
token's shape (`tasks.models.token_shape`: the uncased encoder cannot see capitals), and gives
a BIO tag over PER / ORG / LOC / MISC (CoNLL-2003's types). Only the first piece of each
pre-tokenizer word is read: a word is tagged as a whole, and "3G" or "easyJet" cannot be cut
in two. `decode` turns tags into character spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tasks.models.token_shape import first_pieces, word_spans

TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
TYPES = ("PER", "ORG", "LOC", "MISC")
TAGGER_WEIGHTS = "entity_tagger.safetensors"


def build_tagger(config: dict[str, Any]):
    """The head config describes: [states | shape] -> hidden (GELU) -> a bidirectional GRU
    over the words -> tag logits."""
    import torch

    class Tagger(torch.nn.Module):
        def __init__(self, dim: int, hidden: int, rnn: int, dropout: float):
            super().__init__()
            self.proj = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU())
            self.rnn = torch.nn.GRU(hidden, rnn, batch_first=True, bidirectional=True) \
                if rnn else None
            self.drop = torch.nn.Dropout(dropout)  # training only
            self.out = torch.nn.Linear(2 * rnn if rnn else hidden, len(TAGS))

        def forward(self, x):  # (batch, words, dim)
            h = self.drop(self.proj(x))
            if self.rnn is not None:
                h = self.drop(self.rnn(h)[0])
            return self.out(h)

    return Tagger(int(config["input_dim"]), int(config["hidden"]), int(config.get("rnn", 0)),
                  float(config.get("dropout", 0.0)))


def decode(tags: Sequence[int]) -> list[tuple[int, int, str]]:
    """(first word, end word exclusive, TYPE) per entity from one tag index per word. An I-
    tag that does not continue an entity of its type starts one (as conlleval reads it)."""
    out: list[list] = []
    prev = "O"
    for i, t in enumerate(tags):
        tag = TAGS[t]
        if tag == "O":
            prev = tag
            continue
        kind = tag[2:]
        if tag.startswith("I-") and prev != "O" and prev[2:] == kind:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1, kind])
        prev = tag
    return [tuple(s) for s in out]


def viterbi_tags(logits: np.ndarray) -> list[int]:
    """Best tag per word under BIO: an I-X only after B-X or I-X (arg-max otherwise)."""
    n = len(logits)
    if n == 0:
        return []
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - logits.max(1, keepdims=True)
    allowed = np.ones((len(TAGS), len(TAGS)), dtype=bool)  # prev -> next
    for j, tag in enumerate(TAGS):
        if tag.startswith("I-"):
            allowed[:, j] = [p in ("B-" + tag[2:], tag) for p in TAGS]
    start_ok = np.array([not t.startswith("I-") for t in TAGS])
    score = np.where(start_ok, logp[0], -np.inf)
    back = np.zeros((n, len(TAGS)), dtype=np.int64)
    for i in range(1, n):
        cand = np.where(allowed, score[:, None], -np.inf)  # (prev, next)
        back[i] = cand.argmax(0)
        score = cand.max(0) + logp[i]
    best = [int(score.argmax())]
    for i in range(n - 1, 0, -1):
        best.append(int(back[i][best[-1]]))
    return best[::-1]


def load_tagger(folder, config: dict[str, Any]):
    """The tagger head in a model folder (config.json `entity_tagger`), or None without one."""
    from pathlib import Path

    from safetensors.torch import load_file

    section = config.get("entity_tagger")
    if not section:
        return None
    path = Path(folder) / section.get("weights", TAGGER_WEIGHTS)
    if not path.is_file():
        from tasks.models.registry import ModelError

        raise ModelError(f"{folder}: config.json names an entity tagger but {path.name} is "
                         "missing")
    module = build_tagger(section)
    module.load_state_dict(load_file(str(path)))
    return module.float().eval()


def tagger_inputs(tokenizer, text: str, max_length: int) -> dict[str, Any]:
    """What one text's pass needs for tagging: token ids, each word's first piece, its shape
    and its character range (a text without words reads its [CLS] token, tags ignored)."""
    from tasks.models.token_shape import token_shapes

    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
    word_ids = enc.word_ids()
    offsets = [tuple(x) for x in enc["offset_mapping"]]
    pieces = first_pieces(word_ids)
    shapes = token_shapes(text, offsets, word_ids)
    spans = word_spans(offsets, word_ids)
    return {"ids": list(enc["input_ids"]), "words": np.asarray(pieces or [0], dtype=np.int64),
            "shapes": shapes[pieces or [0]], "spans": spans, "offsets": offsets}
