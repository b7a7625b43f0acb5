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
from typing import Any

from tasks.record import Document, Reject, excerpt
from tasks.steps.base import BaseStep, StepSettings

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


class DetectLanguage(BaseStep):
    """Each document's language; with `non_english="reject"`, the documents the English models
    cannot serve become `not_english` rejects (`und`, too short or unsure to tell, is kept)."""

    name = "language"
    needs = ("text",)
    provides = ("language", "language_score")

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        found = [detect_language(doc.text) for doc in docs]
        return [{"language": lang.code, "language_score": lang.score} for lang in found]

    def screen(self, doc: Document, settings: StepSettings) -> Reject | None:
        if settings.non_english == "reject" and doc.language not in ("en", UNDETERMINED):
            return Reject(doc.source, "not_english",
                          f"language {doc.language} (p={doc.language_score:.2f}); the models "
                          "read English", excerpt(doc.text), doc.doc_id)
        return None


STEP = DetectLanguage()
