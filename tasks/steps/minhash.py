"""The `minhash` step: MinHash signatures of cleaned text (word 5-grams).

The near-duplicate index that reads them is tasks.io.near_duplicates.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from datasketch import MinHash

from tasks.record import Document
from tasks.steps.base import BaseStep, StepSettings

NUM_PERM = 128
SHINGLE_WORDS = 5
SEED = 1
PARAMS = f"num_perm={NUM_PERM};shingle_words={SHINGLE_WORDS};seed={SEED};tokens=lower\\w+"

_WORD = re.compile(r"\w+")
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=SEED)  # permutations computed once, shared


def shingles(text: str, k: int = SHINGLE_WORDS) -> set[bytes]:
    """Lower-cased word k-grams: robust to re-wrapping, punctuation and case edits."""
    words = _WORD.findall(text.lower())
    if len(words) <= k:
        return {" ".join(words).encode("utf-8")} if words else set()
    return {" ".join(words[i:i + k]).encode("utf-8") for i in range(len(words) - k + 1)}


def signature(text: str) -> np.ndarray:
    """MinHash signature (NUM_PERM uint32 values) of `text`'s shingles."""
    mh = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=_TEMPLATE.permutations)
    mh.update_batch(shingles(text))
    return mh.hashvalues.astype(np.uint32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.count_nonzero(a == b)) / len(a)


def no_words(sig: np.ndarray) -> bool:
    """The signature of an empty shingle set (every value still at its maximum)."""
    return bool((sig == np.iinfo(np.uint32).max).all())


class MinHashSign(BaseStep):
    """Near-duplicate signatures of the cleaned text, computed where the batch runs; the
    writer checks them against the index in input order (`tasks.io.near_duplicates`)."""

    name = "minhash"
    needs = ("text",)
    provides = ("minhash",)

    def enabled(self, settings: StepSettings) -> bool:
        return settings.near_duplicates

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        return [{"minhash": signature(doc.text)} for doc in docs]


STEP = MinHashSign()
