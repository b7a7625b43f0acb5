"""ONNX export of the fine-tuned sentiment model (merged LoRA encoder + mean pooling + head).

The graph's outputs come from one encoder pass: the head's logits, the L2-normalised
mean-pooled sentence vector, which the extractive summariser reads, and, when the model has an
entity tagger, its tag logits per word (inputs: each word's first piece and its shape).

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
from tasks.models.encoder_pass import mean_pool, tagger_features
from tasks.models.sentiment import LoraSentiment

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("logits", "embeddings")
TAGGER_INPUTS = ("words", "shapes")
TAGGER_OUTPUT = "tags"
STATES_OUTPUT = "states"
OPSET = 17


def _graph(model: LoraSentiment):
    import torch

    tagger = model._tagger
    layers = list(model.tagger_config["layers"]) if tagger is not None else []
    entity = model.entity_config
    state_layers = list(entity["features"]["span_layers"]) if entity else []

    class LogitsGraph(torch.nn.Module):
        """(input_ids, attention_mask[, words, shapes]) -> (raw head logits, sentence vectors
        [, tag logits[, the entity head's token states]]), exactly `LoraSentiment._compute`."""

        def __init__(self):
            super().__init__()
            self.encoder = model._encoder
            self.head = model._head
            self.tagger = tagger

        def forward(self, input_ids, attention_mask, words=None, shapes=None):
            keep = attention_mask[:, None, None, :].to(torch.float32)
            additive = (1.0 - keep) * torch.finfo(torch.float32).min
            res = self.encoder(input_ids=input_ids, attention_mask=additive,
                               output_hidden_states=self.tagger is not None)
            pooled = mean_pool(res.last_hidden_state, attention_mask)
            out = (self.head(pooled), torch.nn.functional.normalize(pooled, dim=-1))
            if self.tagger is None:
                return out
            out = (*out, self.tagger(tagger_features(res.hidden_states, layers, words,
                                                     shapes))[0])
            if state_layers:
                out = (*out, torch.stack([res.hidden_states[k][0] for k in state_layers]))
            return out

    return LogitsGraph().eval()


def export_sentiment(model: LoraSentiment, path: Path) -> Path:
    """Write `model` as an ONNX file at `path` (temporary name, then rename: never half)."""
    import torch

    from tasks.models.entity_tagger import tagger_inputs

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"}, "embeddings": {0: "batch"}}
    inputs, outputs = list(INPUT_NAMES), list(OUTPUT_NAMES)
    if model._tagger is None:
        example = model.tokenizer(["An example sentence.", "Another, longer example sentence."],
                                  padding=True, return_tensors="pt")
        args = (example["input_ids"], example["attention_mask"])
    else:  # one sentence: tags are read per sentence, as every row runs
        x = tagger_inputs(model.tokenizer, "Tony Blair met EU leaders in Brussels.",
                          model.max_length)
        ids = torch.tensor([x["ids"]])
        args = (ids, torch.ones_like(ids), torch.from_numpy(x["words"]),
                torch.from_numpy(x["shapes"]))
        inputs += TAGGER_INPUTS
        outputs.append(TAGGER_OUTPUT)
        axes.update({"words": {0: "words"}, "shapes": {0: "words"}, "tags": {0: "words"}})
        if model.entity_config:
            outputs.append(STATES_OUTPUT)
            axes[STATES_OUTPUT] = {1: "tokens"}
    with warnings.catch_warnings(), torch.inference_mode(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(_graph(model), args, str(tmp), input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
    return path


def onnx_logits(session, model: LoraSentiment, sentences: list[str]) -> np.ndarray:
    """(n, 3) logits from an onnxruntime session, tokenised as `model` does: padded batches,
    or each sentence alone where the graph also tags words (as runs call it)."""
    from tasks.models.entity_tagger import tagger_inputs

    if not sentences:
        return np.zeros((0, len(model.labels)), dtype=np.float32)
    if TAGGER_INPUTS[0] in {i.name for i in session.get_inputs()}:
        rows = []
        for sentence in sentences:
            x = tagger_inputs(model.tokenizer, sentence, model.max_length)
            ids = np.asarray([x["ids"]], dtype=np.int64)
            rows.append(session.run(["logits"], {
                "input_ids": ids, "attention_mask": np.ones_like(ids),
                "words": x["words"], "shapes": x["shapes"]})[0][0])
        return np.stack(rows)
    enc = model.tokenizer(sentences, padding=True, truncation=True,
                          max_length=model.max_length, return_tensors="np")
    feeds = {name: enc[name].astype(np.int64) for name in INPUT_NAMES}
    return session.run(["logits"], feeds)[0]
