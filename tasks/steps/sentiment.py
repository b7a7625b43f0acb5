"""The `sentiment` step: a label, a score and three probabilities per document.

The models (built-in LoRA MiniLM, the embedding head, any Hugging Face classifier) and the
pooling of sentences into a document live in `tasks.models`.
"""

from __future__ import annotations

from typing import Any

from tasks.models.sentiment import READS_EMBEDDINGS
from tasks.record import Document
from tasks.steps.base import BaseStep, StepSettings


class Sentiment(BaseStep):
    """Document sentiment from its title and the sentences the models read."""

    name = "sentiment"
    needs = ("sentences", "title")
    provides = ("sentiment", "sentiment_score", "sentiment_probs")
    model_roles = ("sentiment_model",)

    def model_needs(self, settings: StepSettings) -> dict[str, str]:
        # In the shared pass the embed step has run the lead through this very model: the
        # step reads those logits and vectors and runs only the titles (`LoraSentiment.score`).
        # An embedding-head model reads the embed step's vectors.
        model = f"the sentiment model {settings.models.sentiment!r}"
        if settings.models.shared_pass:
            return {"sentence_logits": model, "embeddings": model}
        if settings.models.sentiment in READS_EMBEDDINGS:
            return {"embeddings": model}
        return {}

    def setup(self, settings: StepSettings) -> None:
        settings.models.load_sentiment()

    def provenance(self, settings: StepSettings) -> dict[str, Any]:
        return {"sentiment_model": settings.models.load_sentiment().provenance()}

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        self.require_model_needs([d for d in docs if d.sentences], settings)
        settings.models.load_sentiment().score(docs)
        return self.written(docs, settings)


STEP = Sentiment()
