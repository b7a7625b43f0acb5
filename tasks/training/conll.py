"""CoNLL-2003 English for the entity tagger: sentences, their headline copies, token labels.

The files (`../shared/train/conll2003/`, README there) hold one token and its BIO tag a line.
Reuters wrote most of them as sentences; news today writes its headlines in Title Case, so each
sentence also trains as a Title Case copy and a capitals copy (what casing says changes, the
uncased encoder's input does not). Annotations are free for research; the text is Reuters
RCV1, under Reuters' research terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.models.entity_tagger import TAGS

SOURCE = ("CoNLL-2003 English (Tjong Kim Sang & De Meulder, 2003): annotations free for "
          "research; text Reuters RCV1, under Reuters' terms for research use")
IGNORE = -100  # tokens that carry no label: special tokens, a word's later pieces
_SMALL = frozenset([
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "and", "or", "but", "by", "with",
    "from", "as",
])


@dataclass(frozen=True, slots=True)
class Sentence:
    """Words and their BIO tags. CoNLL's words are written one space apart; a sentence taken
    from running text (`joined`) marks the words written right after the one before ("'"
    and "s" of "Trump's"), so it is written, and its word shapes read, as the text was."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    joined: tuple[bool, ...] | None = None

    @property
    def text(self) -> str:
        return self.write(self.words)

    def write(self, words: Sequence[str]) -> str:
        """`words` (these words, or a casing of them) written as this sentence is."""
        if self.joined is None:
            return " ".join(words)
        return "".join(w if i == 0 or j else " " + w
                       for i, (w, j) in enumerate(zip(words, self.joined, strict=True)))

    def spans(self) -> list[tuple[int, int]]:
        """Each word's character range in `text`."""
        out, pos = [], 0
        for i, w in enumerate(self.words):
            if i and not (self.joined and self.joined[i]):
                pos += 1
            out.append((pos, pos + len(w)))
            pos += len(w)
        return out


def read_conll(path: Path) -> list[Sentence]:
    """The sentences of a CoNLL-2003 file, in file order (document markers dropped)."""
    out, words, tags = [], [], []
    for line in [*Path(path).read_text(encoding="utf-8").splitlines(), ""]:
        parts = line.split()
        if not parts:
            if words:
                out.append(Sentence(tuple(words), tuple(tags)))
            words, tags = [], []
        elif parts[0] != "-DOCSTART-":
            words.append(parts[0])
            tags.append(parts[-1])
    return out


def title_case(words: Sequence[str], joined: Sequence[bool] | None = None
               ) -> tuple[str, ...]:
    """As a headline writer would: each word capitalised, small words not (but the first);
    words already in capitals ("EU") and the rest of a written word ("s" of "Trump's")
    kept."""
    out = []
    for i, w in enumerate(words):
        if w.isupper() or not w[:1].isalpha() or (joined and joined[i]):
            out.append(w)
        elif i > 0 and w.lower() in _SMALL:
            out.append(w.lower())
        else:
            out.append(w[0].upper() + w[1:])
    return tuple(out)


def capitals(words: Sequence[str]) -> tuple[str, ...]:
    return tuple(w.upper() for w in words)


def is_capitals_headline(sentence: Sentence) -> bool:
    """A CoNLL wire headline or dateline: every letter in capitals, some words."""
    letters = [c for w in sentence.words for c in w if c.isalpha()]
    return len(letters) >= 6 and all(c.isupper() for c in letters)


def token_labels(sentence: Sentence, offsets: Sequence[tuple[int, int]],
                 word_ids: Sequence[int | None]) -> list[int]:
    """A label index per token: the first piece of each pre-tokenizer word gets its CoNLL
    word's tag (I- when it is not that word's first part: "U", ".", "S", "." of "U.S."), every
    other token IGNORE."""
    starts = [a for a, _ in sentence.spans()]
    labels, seen_word, seen_conll = [], set(), set()
    for (a, _b), w in zip(offsets, word_ids, strict=True):
        if w is None or w in seen_word:
            labels.append(IGNORE)
            continue
        seen_word.add(w)
        k = max(i for i, s in enumerate(starts) if s <= a)
        tag = sentence.tags[k]
        if k in seen_conll and tag != "O":
            tag = "I-" + tag[2:]
        seen_conll.add(k)
        labels.append(TAGS.index(tag))
    return labels
