"""Fit text to a transformer's input limit, measured in that model's own tokens, losslessly.

Models silently truncate what does not fit; here nothing is cut. Sentences are packed whole
into chunks of at most `budget` tokens; a single sentence longer than the budget is split at
token boundaries. Every packed chunk is re-counted (joining sentences can tokenise differently
than counting them apart), and any chunk over the budget is split again.
"""

from __future__ import annotations

from typing import Any


class TokenChunker:
    """Packs text units (sentences, summaries) into chunks of at most `budget` tokens.

    `prefix` (T5's "summarize: ") is counted with each chunk, as the model will see it.
    """

    def __init__(self, tokenizer: Any, budget: int, prefix: str = ""):
        self.tokenizer = tokenizer
        # Counting a whole document is deliberate here: silence the tokenizer's one-time
        # "longer than the maximum ... indexing errors" warning, which would mislead.
        warned = getattr(tokenizer, "deprecation_warnings", None)
        if isinstance(warned, dict):
            warned["sequence-length-is-longer-than-the-specified-maximum"] = True
        self.prefix = prefix
        self.budget = budget - (len(self._ids(prefix)) if prefix else 0)
        if self.budget < 8:
            raise ValueError(f"token budget {self.budget} is too small to chunk text into")

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def measure(self, texts: list[str]) -> list[int]:
        """Tokens of each text as the model's input (prefix included), less the budget's share
        of the prefix, so that a chunk fits when measure() <= budget."""
        if not self.prefix:
            return self.count(texts)
        extra = len(self._ids(self.prefix))
        return [n - extra for n in self.count([self.prefix + t for t in texts])]

    def count(self, texts: list[str]) -> list[int]:
        """Tokens of each text, special tokens excluded."""
        if not texts:
            return []
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def _windows(self, text: str, step: int) -> list[str]:
        ids = self._ids(text)
        pieces = (self.tokenizer.decode(ids[i : i + step], clean_up_tokenization_spaces=False)
                  for i in range(0, len(ids), step))
        return [p for p in (p.strip() for p in pieces) if p]

    def split(self, text: str) -> list[str]:
        """`text` itself if it fits, else consecutive pieces that each fit (nothing dropped)."""
        return self.pack([text])

    def pack(self, units: list[str]) -> list[str]:
        """Consecutive units joined by spaces into as few chunks as fit, in order."""
        units = [u.strip() for u in units if u and u.strip()]
        groups: list[list[str]] = []
        current: list[str] = []
        used = 0
        for unit, n in zip(units, self.count(units), strict=True):
            if n > self.budget:  # one over-long unit: token windows of its own
                if current:
                    groups.append(current)
                    current, used = [], 0
                groups.extend([w] for w in self._windows(unit, self.budget))
                continue
            if current and used + n + 1 > self.budget:
                groups.append(current)
                current, used = [], 0
            current.append(unit)
            used += n + 1  # +1: the joining space can become its own token
        if current:
            groups.append(current)
        return self._verified(groups, step=self.budget)

    def _verified(self, groups: list[list[str]], step: int) -> list[str]:
        texts = [" ".join(g) for g in groups]
        out: list[str] = []
        for group, text, n in zip(groups, texts, self.measure(texts), strict=True):
            if n <= self.budget:
                out.append(text)
            elif len(group) > 1:
                half = len(group) // 2
                out.extend(self._verified([group[:half], group[half:]], step))
            else:  # decoding then re-encoding a window grew it: use smaller windows
                smaller = max(1, step * 3 // 4)
                out.extend(self._verified([[w] for w in self._windows(text, smaller)], smaller))
        return out
