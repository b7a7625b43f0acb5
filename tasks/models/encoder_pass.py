"""The torch pieces of the MiniLM pass every built-in head reads: the bare encoder, the
mean pooling the sentence head and the vectors use, and the word states the entity tagger
reads. One home for them, so the serving models, the ONNX export and training agree."""

from __future__ import annotations

from pathlib import Path


def tagger_features(hidden_states, layers, words, shapes):
    """(1, words, features): the first pieces' states of `layers`, then their shapes."""
    import torch

    states = torch.cat([hidden_states[k][0, words] for k in layers], dim=-1)
    return torch.cat([states, shapes], dim=-1).unsqueeze(0)


def mean_pool(hidden, mask):
    """Mean of the token vectors that are not padding: the pooling LoRA training used."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def load_base_encoder(path: Path):
    """MiniLM as a bare transformers BertModel (no pooler: mean pooling replaces it), quietly."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the unused pooler weights trigger a load report
    try:
        return AutoModel.from_pretrained(str(path), add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(level)
