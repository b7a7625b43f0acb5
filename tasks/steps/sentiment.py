"""The `sentiment` step: a label, a score and three probabilities per document.

The models (built-in LoRA MiniLM, the embedding head, any Hugging Face classifier) and the
pooling of sentences into a document live in `tasks.models`.
"""

from __future__ import annotations

from tasks.record import Document
from tasks.steps.base import BaseStep, StepSettings


class Sentiment(BaseStep):
    """Document sentiment from its title and the sentences the models read."""

    name = "sentiment"
    needs = ("sentences", "title")
    provides = ("sentiment", "sentiment_score", "sentiment_probs")

    def needs_for(self, settings: StepSettings) -> tuple[str, ...]:
        # In the shared pass the embed step has run the lead through this very model: the
        # step reads those logits and vectors and runs only the titles (`LoraSentiment.score`).
        return (*self.needs, "sentence_logits", "embeddings") if settings.models.shared_pass \
            else self.needs

    def setup(self, settings: StepSettings) -> None:
        settings.models.load_sentiment()

    def process(self, docs: list[Document], settings: StepSettings) -> None:
        settings.models.load_sentiment().score(docs)


STEP = Sentiment()
