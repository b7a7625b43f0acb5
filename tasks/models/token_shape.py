"""What casing says about each token: the features the entity tagger reads beside the
encoder's states.

The shared MiniLM is uncased ("Apple" and "apple" are one token id), so the tagger gets each
word's shape from the text itself: its capitals, digits and punctuation, where it stands, and
whether the whole text is written as a headline (Title Case, or capitals), where capitals say
little. A "word" is what the tokenizer's pre-tokenizer splits (whitespace and punctuation), so
features are the same at training (CoNLL tokens joined by spaces) and at run time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

SHAPE_FEATURES = (
    "initial_capital",  # "Blair", "EU"
    "all_capitals",  # two or more letters, all capitals: "EU", "SOCCER"
    "inner_capital",  # a capital after a lower-case letter: "easyJet", "McDonald"
    "all_lower",  # letters, all lower case
    "has_digit",
    "all_digits",
    "punctuation",  # no letter or digit
    "one_letter",  # "J" of "J. Smith"
    "text_start",  # the first word of the text
    "after_stop",  # the first word after ". ", "! ", "? " or ": "
    "continues_word",  # no space before it ("'s" of "Blair's", "S." of "U.S.")
    "title_case_text",  # the text is written in Title Case
    "capitals_text",  # the text is written in capitals
    "bias",
)
SHAPE_DIM = len(SHAPE_FEATURES)
_ALPHA_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SMALL = frozenset([
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "and", "or", "but", "by", "with",
    "from", "as", "vs", "v",
])


def first_pieces(word_ids: Sequence[int | None]) -> list[int]:
    """Index of each pre-tokenizer word's first token, in order."""
    seen, out = set(), []
    for i, w in enumerate(word_ids):
        if w is not None and w not in seen:
            seen.add(w)
            out.append(i)
    return out


def word_spans(offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]
               ) -> list[tuple[int, int]]:
    """Character range of each pre-tokenizer word, in order."""
    spans: dict[int, list[int]] = {}
    for (a, b), w in zip(offsets, word_ids, strict=True):
        if w is not None:
            s = spans.setdefault(w, [a, b])
            s[0], s[1] = min(s[0], a), max(s[1], b)
    return [tuple(spans[w]) for w in sorted(spans)]


def text_style(text: str) -> tuple[bool, bool]:
    """(Title Case, capitals): how a headline writes every word, so capitals prove nothing."""
    letters = [c for c in text if c.isalpha()]
    capitals = len(letters) >= 6 and sum(c.isupper() for c in letters) >= 0.8 * len(letters)
    words = [w for w in _ALPHA_WORD.findall(text) if w.lower() not in _SMALL]
    title = (not capitals and len(words) >= 3
             and sum(w[0].isupper() for w in words) >= 0.8 * len(words))
    return title, capitals


def word_shape(word: str) -> list[float]:
    letters = [c for c in word if c.isalpha()]
    upper = sum(c.isupper() for c in letters)
    inner = any(a.islower() and b.isupper() for a, b in zip(word, word[1:], strict=False))
    return [float(bool(letters) and word[0].isupper()),
            float(len(letters) >= 2 and upper == len(letters)),
            float(inner),
            float(bool(letters) and upper == 0),
            float(any(c.isdigit() for c in word)),
            float(word.isdigit()),
            float(not any(c.isalnum() for c in word)),
            float(len(word) == 1 and word.isalpha())]


def token_shapes(text: str, offsets: Sequence[tuple[int, int]],
                 word_ids: Sequence[int | None]) -> np.ndarray:
    """(tokens, SHAPE_DIM) features: each token carries its pre-tokenizer word's shape;
    special tokens (word id None) are all zero but the bias."""
    title, capitals = text_style(text)
    out = np.zeros((len(offsets), SHAPE_DIM), dtype=np.float32)
    order = sorted({w for w in word_ids if w is not None})
    spans = dict(zip(order, word_spans(offsets, word_ids), strict=True))
    first_word = order[0] if order else None
    rows: dict[int, list[float]] = {}
    for k, w in enumerate(order):
        a, b = spans[w]
        before = text[:a].rstrip()
        after_stop = k > 0 and before.endswith((".", "!", "?", ":")) and a > len(before)
        rows[w] = [*word_shape(text[a:b]), float(w == first_word), float(after_stop),
                   float(a > 0 and not text[a - 1].isspace()), float(title), float(capitals)]
    for i, w in enumerate(word_ids):
        if w is not None:
            out[i, :-1] = rows[w]
        out[i, -1] = 1.0
    return out
