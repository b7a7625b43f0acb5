"""ONNX export of the fine-tuned sentiment model (merged LoRA encoder + mean pooling + head).

The graph has two outputs from one encoder pass: the head's logits and the L2-normalised
mean-pooled sentence vector, which the extractive summariser reads (one pass for both models).

transformers 5 builds its attention mask with code the TorchScript exporter cannot follow
(it traces the padding pattern of the example batch as constants). The graph here builds the
additive 4-D mask itself, which transformers passes through unchanged, so batch size,
sequence length and padding all stay dynamic in the exported model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from tasks.io.atomic import atomic_path
from tasks.models.sentiment import LoraSentiment, mean_pool

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("logits", "embeddings")
OPSET = 17


def _graph(model: LoraSentiment):
    import torch

    class LogitsGraph(torch.nn.Module):
        """(input_ids, attention_mask) -> (raw head logits, sentence vectors), exactly
        `LoraSentiment.outputs`."""

        def __init__(self):
            super().__init__()
            self.encoder = model._encoder
            self.head = model._head

        def forward(self, input_ids, attention_mask):
            keep = attention_mask[:, None, None, :].to(torch.float32)
            additive = (1.0 - keep) * torch.finfo(torch.float32).min
            hidden = self.encoder(input_ids=input_ids, attention_mask=additive).last_hidden_state
            pooled = mean_pool(hidden, attention_mask)
            return self.head(pooled), torch.nn.functional.normalize(pooled, dim=-1)

    return LogitsGraph().eval()


def export_sentiment(model: LoraSentiment, path: Path) -> Path:
    """Write `model` as an ONNX file at `path` (temporary name, then rename: never half)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = model.tokenizer(["An example sentence.", "Another, longer example sentence."],
                              padding=True, return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"}, "embeddings": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(_graph(model), (example["input_ids"], example["attention_mask"]),
                          str(tmp), input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return path


def onnx_logits(session, model: LoraSentiment, sentences: list[str]) -> np.ndarray:
    """(n, 3) logits from an onnxruntime session, tokenised as `model` does."""
    if not sentences:
        return np.zeros((0, len(model.labels)), dtype=np.float32)
    enc = model.tokenizer(sentences, padding=True, truncation=True,
                          max_length=model.max_length, return_tensors="np")
    feeds = {name: enc[name].astype(np.int64) for name in INPUT_NAMES}
    return session.run(["logits"], feeds)[0]
