"""Language of a cleaned text, so that input the English models cannot serve is flagged.

py3langid ships its model inside the wheel (no network). Detection reads only the start of
the text: that bounds the time on huge documents, and py3langid's length-scaled softmax
grows flat (low confidence) on very long inputs anyway. Short texts make any detector guess,
so below `MIN_LETTERS` letters, or under `MIN_CONFIDENCE`, the answer is `und`
(undetermined) rather than a confident-looking wrong code.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

UNDETERMINED = "und"  # ISO 639-2 code for "undetermined", the usual tag for this case
MIN_LETTERS = 20  # fewer letters than this: a headline fragment, a number, a name
MIN_CONFIDENCE = 0.8  # on 2,579 short English FPB sentences, no wrong code scored this high
SAMPLE_CHARS = 2000

_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Language:
    """ISO 639-1 code (or `und`) and the detector's probability (None when not detected)."""

    code: str
    score: float | None


@functools.lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> Language:
    """The language of `text` (read from its first `SAMPLE_CHARS` characters)."""
    sample = text[:SAMPLE_CHARS]
    if sum(c.isalpha() for c in sample) < MIN_LETTERS:
        return Language(UNDETERMINED, None)
    ident = _identifier()
    with _LOCK:  # the identifier is plain numpy, but keep threads from racing its lazy state
        code, score = ident.classify(sample)
    score = round(float(score), 4)
    if score < MIN_CONFIDENCE:
        return Language(UNDETERMINED, score)
    return Language(code, score)
