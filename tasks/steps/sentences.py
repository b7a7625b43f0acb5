"""Sentence splitting (pysbd, made fast and bounded for long paragraphs)."""

from __future__ import annotations

import functools
import re
import threading
from types import SimpleNamespace

import pysbd
from pysbd.lang.english import English

# pysbd hands pattern strings to `re` on every call, and with the cleaning patterns they
# overflow `re`'s 512-entry compile cache: recompiling took ~18% of splitting time
# (bench/RESULTS.md). CPython has no public knob for the cache size; where the private one
# exists, raise it (a few MB of compiled patterns at most).
if isinstance(getattr(re, "_MAXCACHE", None), int) and re._MAXCACHE < 4096:
    re._MAXCACHE = 4096


# pysbd's Segmenter keeps the text of the current call on the instance (`original_text`,
# read back when mapping sentences to spans), so one instance must not serve two threads at
# once. It is cheap to call but not to build, hence one shared instance behind a lock.
_SEGMENTER_LOCK = threading.Lock()


class _FastEnglish(English):
    """pysbd's English rules, with its abbreviation pass skipping what cannot apply.

    For every abbreviation that occurs anywhere in a line as a substring ("al", "is", "no",
    "p" occur in nearly every line), pysbd scans the line for each word starting with it and
    runs a substitution of the whole line per match, though every substitution needs the
    abbreviation followed by a period. Offering it only the abbreviations whose
    "<abbr>." occurs in the line (and every dotted one, such as "e.g", whose regex can match
    more than its literal text) gives the same splits in less than half the time
    (bench/RESULTS.md; tests/test_clean.py checks the splits against plain pysbd).
    """

    class AbbreviationReplacer(English.AbbreviationReplacer):
        def search_for_abbreviations_in_string(self, text):
            lowered = text.lower()
            rules = self.lang.Abbreviation
            keep = [a for a in rules.ABBREVIATIONS
                    if not a.strip().isalnum() or f"{a.strip()}." in lowered]
            full, self.lang = self.lang, SimpleNamespace(Abbreviation=SimpleNamespace(
                ABBREVIATIONS=keep, PREPOSITIVE_ABBREVIATIONS=rules.PREPOSITIVE_ABBREVIATIONS,
                NUMBER_ABBREVIATIONS=rules.NUMBER_ABBREVIATIONS))
            try:
                return super().search_for_abbreviations_in_string(text)
            finally:
                self.lang = full


def reference_segmenter() -> pysbd.Segmenter:
    """Plain pysbd English, as published: what `_FastEnglish` must agree with."""
    return pysbd.Segmenter(language="en", clean=False)


@functools.lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    """The process-wide English segmenter (built on first use)."""
    segmenter = reference_segmenter()
    segmenter.language_module = _FastEnglish
    return segmenter


# pysbd is super-linear on long paragraphs (measured: 225,000 chars of "Mr. Smith e.g. "
# took 104 s; 2 MB of plain prose did not finish in 6 min), so a paragraph longer than
# `_PARAGRAPH_CAP` is cut into pieces of at most `_PIECE_CHARS` first, at the last likely
# sentence end (a lower-case word, then . ! or ?, a space and a capital), else at a space.
# A sentence still longer than `MAX_SENTENCE_CHARS` (no punctuation at all) is cut at spaces:
# the models read ~256 tokens of a sentence, about 1,000 characters of English.
# The most characters of one document the models read (sentences past it are not split,
# embedded or scored; `text` keeps them): chosen by `python -m bench.extreme_lengths`.
MAX_MODEL_CHARS = 100_000
_PARAGRAPH_CAP = 8000
_PIECE_CHARS = 4000
MAX_SENTENCE_CHARS = 1000
_LIKELY_END = re.compile(r"(?<=[a-z]{3}[.!?])[\"'”’)\]]*[ ]+(?=[\"“‘(]?[A-Z])")


def _cut(text: str, limit: int, boundary: re.Pattern[str] | None) -> tuple[list[str], int]:
    """`text` in pieces of at most `limit` chars, and how many cuts fell inside a sentence."""
    pieces: list[str] = []
    forced = 0
    while len(text) > limit:
        window = text[: limit + 1]
        cut = -1
        if boundary is not None:
            ends = [m.end() for m in boundary.finditer(window, limit // 2)]
            cut = ends[-1] if ends else -1
        if cut <= 0:
            forced += 1
            cut = window.rfind(" ", limit // 2) + 1 or limit  # no space: a hard cut
        pieces.append(text[:cut].strip())
        text = text[cut:].lstrip()
    pieces.append(text)
    return [p for p in pieces if p], forced


# pysbd marks positions with these characters internally and deletes them from its output,
# and drops any sentence it altered: masked (same length) before it runs, and the sentences
# are cut from the original text at pysbd's boundaries, so no character is ever lost.
_PYSBD_SENTINELS = str.maketrans(dict.fromkeys("ȸȹ☉☈☇☄∯♨☏✂⎋ᓰᓱᓳᓴᓷᓸ⌬", "x"))


def _segment(segmenter: pysbd.Segmenter, piece: str) -> list[str]:
    """Sentences of one piece of a paragraph: pysbd's boundaries, the original's text."""
    masked = piece.translate(_PYSBD_SENTINELS)
    with _SEGMENTER_LOCK:
        parts = segmenter.segment(masked)
    bounds = [0]
    for part in parts:
        part = part.strip()
        start = masked.find(part, bounds[-1]) if part else -1
        if start >= 0 and start + len(part) > bounds[-1]:
            bounds.append(start + len(part))
    bounds.append(len(piece))
    return [piece[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False)
            if piece[a:b].strip()]


def split_sentences_counted(text: str) -> tuple[list[str], int]:
    """Sentences of `text` and the number of cuts made inside overlong sentences."""
    segmenter = _segmenter()
    sentences: list[str] = []
    forced = 0
    for paragraph in text.split("\n\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        pieces = [paragraph]
        if len(paragraph) > _PARAGRAPH_CAP:
            pieces, n = _cut(paragraph, _PIECE_CHARS, _LIKELY_END)
            forced += n
        for piece in pieces:
            for part in _segment(segmenter, piece):
                part = part.strip()
                if len(part) > MAX_SENTENCE_CHARS:
                    cut, n = _cut(part, MAX_SENTENCE_CHARS, None)
                    sentences.extend(cut)
                    forced += n
                elif part:
                    sentences.append(part)
    return sentences, forced


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`; a paragraph break always ends a sentence; none is longer than
    `MAX_SENTENCE_CHARS`."""
    return split_sentences_counted(text)[0]


