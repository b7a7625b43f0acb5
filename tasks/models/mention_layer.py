"""An entity head that reads the sentence again with the mention marked, from the pass's states.

Mean-pooling a mention's token states cannot tell whose news a sentence is: in "Ford beats
GM", both names' states were made without knowing which one is asked about. A second
encoder pass with the mention marked can (that is `minilm-entity`), at the cost of six
layers per sentence. This head spends one: it adds a learned marker vector to the mention's
tokens in the pass's layer-5 states and runs one more transformer layer (BERT's, initialised
from the trained encoder's last layer), so every token can attend to the marked mention.
Then [the mention's mean | the sentence's mean] of that layer and the mention's mean in the
pass's own last layer go through a small MLP to the three labels. A config's `entity_head`
names it with `head.kind: mention_layer` (`entity_sentiment.is_layered`).

The layer sees one sentence and one mention at a time (padding masked in training), so a
mention's score does not depend on its batch or on the other mentions asked about.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class Block(torch.nn.Module):
    """One post-LayerNorm transformer layer, as BERT's, with padding masked."""

    def __init__(self, dim: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.out = (torch.nn.Linear(dim, dim)
                                                      for _ in range(4))
        self.norm1 = torch.nn.LayerNorm(dim, eps=eps)
        self.up = torch.nn.Linear(dim, intermediate)
        self.down = torch.nn.Linear(intermediate, dim)
        self.norm2 = torch.nn.LayerNorm(dim, eps=eps)

    def init_from(self, layer) -> None:
        """Copy a BERT layer's weights (`encoder.layer[i]` of a transformers BertModel)."""
        pairs = {self.query: layer.attention.self.query, self.key: layer.attention.self.key,
                 self.value: layer.attention.self.value,
                 self.out: layer.attention.output.dense,
                 self.norm1: layer.attention.output.LayerNorm,
                 self.up: layer.intermediate.dense, self.down: layer.output.dense,
                 self.norm2: layer.output.LayerNorm}
        for mine, theirs in pairs.items():
            mine.load_state_dict(theirs.state_dict())

    def forward(self, h, real):
        b, t, d = h.shape

        def split(z):
            return z.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        scores = split(self.query(h)) @ split(self.key(h)).transpose(-1, -2)
        scores = scores / math.sqrt(d // self.heads) + (1.0 - real)[:, None, None, :] * -1e4
        context = (torch.softmax(scores, dim=-1) @ split(self.value(h)))
        h = self.norm1(h + self.out(context.transpose(1, 2).reshape(b, t, d)))
        return self.norm2(h + self.down(torch.nn.functional.gelu(self.up(h))))


class MentionLayerHead(torch.nn.Module):
    """The head (module docstring), `depth` layers (the encoder's last ones re-run) over the
    pass's states `depth` layers before its last. `forward(inputs, last, marks, real)`:
    (b, t, d) those states and the last layer's, (b, t) mention marks, (b, t) 1 on real
    tokens -> (b, 3) logits."""

    def __init__(self, dim: int, heads: int, intermediate: int, hidden: int,
                 eps: float = 1e-12, depth: int = 1, labels: int = 3):
        super().__init__()
        self.marker = torch.nn.Parameter(torch.zeros(dim))
        self.blocks = torch.nn.ModuleList(Block(dim, heads, intermediate, eps)
                                          for _ in range(depth))
        self.mlp = torch.nn.Sequential(torch.nn.Linear(3 * dim, hidden), torch.nn.GELU(),
                                       torch.nn.Dropout(0.0), torch.nn.Linear(hidden, labels))

    @classmethod
    def from_config(cls, head: dict[str, Any]) -> MentionLayerHead:
        return cls(int(head["input_dim"]), int(head["heads"]), int(head["intermediate"]),
                   int(head["hidden"]), float(head.get("eps", 1e-12)),
                   int(head.get("depth", 1)))

    def init_from(self, layers) -> None:
        """Start from the encoder's last `depth` layers (a BertModel's `encoder.layer`)."""
        for block, layer in zip(self.blocks, list(layers)[-len(self.blocks):], strict=True):
            block.init_from(layer)

    def forward(self, inputs, last, marks, real):
        h = inputs + marks.unsqueeze(-1) * self.marker
        for block in self.blocks:
            h = block(h, real)
        span = (marks * real).unsqueeze(-1)
        n_span = span.sum(dim=1).clamp(min=1e-9)
        n_real = real.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return self.mlp(torch.cat([(h * span).sum(dim=1) / n_span,
                                   (h * real.unsqueeze(-1)).sum(dim=1) / n_real,
                                   (last * span).sum(dim=1) / n_span], dim=-1))

    def score(self, layers, weights):
        """(k, 3) logits of k mentions of one sentence: `layers` (2, tokens, d) states of the
        pass (the head's input layer and the last), `weights` (k, tokens) each mention's
        marks (`entity_sentiment.span_matrix`). Each mention runs alone, so its row is the
        same whichever mentions are asked about with it."""
        inputs, last = layers[0].unsqueeze(0), layers[1].unsqueeze(0)
        return torch.cat([self.forward(inputs, last, w.unsqueeze(0), torch.ones_like(
            w.unsqueeze(0))) for w in weights])
