"""The `summarize` step: a summary per document from the chosen summariser.

A short text (a headline, a fragment) is its own summary: any summariser could only repeat
or distort it. The summarisers themselves live in `tasks.models.summarizers`.
"""

from __future__ import annotations

from typing import Any

from tasks.models.summarizers import READS_EMBEDDINGS
from tasks.record import Document
from tasks.steps.base import BaseStep, StepSettings

SHORT_TEXT_WORDS = 25  # under this many words (or one sentence) a text is its own summary


def is_short_text(doc: Document) -> bool:
    """A headline or fragment: one sentence, or fewer than `SHORT_TEXT_WORDS` words."""
    return len(doc.sentences) <= 1 or len(doc.text.split()) < SHORT_TEXT_WORDS


class Summarize(BaseStep):
    """Summaries; a short text's `summary_method` is "whole_text"."""

    name = "summarize"
    needs = ("sentences",)
    provides = ("summary", "summary_sentence_ids", "summary_chunks", "summary_method")
    model_roles = ("summarizer",)

    def model_needs(self, settings: StepSettings) -> dict[str, str]:
        # The extractive summariser ranks the lead by the embed step's vectors.
        if settings.models.summarizer in READS_EMBEDDINGS:
            return {"embeddings": f"the summariser {settings.models.summarizer!r}"}
        return {}

    def setup(self, settings: StepSettings) -> None:
        settings.models.load_summarizer()

    def provenance(self, settings: StepSettings) -> dict[str, Any]:
        return {"summarizer": settings.models.load_summarizer().provenance()}

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        long_docs = []
        for doc in docs:
            if is_short_text(doc):
                doc.summary = " ".join(s.strip() for s in doc.sentences)
                doc.summary_sentence_ids = list(range(len(doc.sentences)))
                doc.summary_chunks = None
                doc.summary_method = "whole_text"
            else:
                long_docs.append(doc)
        if long_docs:
            self.require_model_needs(long_docs, settings)  # never encoded here
            summarizer = settings.models.load_summarizer()
            summarizer.summarize(long_docs)
            for doc in long_docs:
                doc.summary_method = doc.summary_method or summarizer.name
        return self.written(docs, settings)


STEP = Summarize()
