"""Sentence encoders by name: a sentence-transformers model, or "minilm-lora", the adapted
encoder of the built-in sentiment model, whose one pass per sentence gives both the
summariser's vectors and the sentiment logits. Each has `encode(sentences)`, `dim` and `ref`.
"""

from __future__ import annotations

from tasks.models.encoder import Encoder, load_encoder
from tasks.models.registry import ModelRef, resolve_encoder
from tasks.models.sentiment import LORA_NAME, LoraSentiment, adapted_encoder_ref, load_sentiment


def load_sentence_encoder(name: str) -> Encoder | LoraSentiment:
    """The torch encoder a name stands for, once per process (the onnx forms:
    `tasks.models.chosen.ChosenModels.load_encoder`)."""
    return load_sentiment(LORA_NAME) if name == LORA_NAME else load_encoder(name)


def sentence_encoder_ref(name: str) -> ModelRef:
    """The weights a name stands for, without loading them (for provenance)."""
    return adapted_encoder_ref() if name == LORA_NAME else resolve_encoder(name)
