"""The models a run chose: their names (frozen and picklable, so any process loads its own),
the loaders that load each once per process, and the start-up checks that they fit together
(the shared pass, the read windows)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tasks.models.encoder import Encoder
from tasks.models.entity_sentiment import EntitySentiment, PassEntitySentiment
from tasks.models.lead import LEAD_SENTENCES
from tasks.models.registry import DEFAULT_ENCODER, ModelError
from tasks.models.sentence_encoders import load_sentence_encoder
from tasks.models.sentiment import (
    DEFAULT_SENTIMENT,
    LORA_NAME,
    LoraSentiment,
    load_sentiment,
)
from tasks.models.sentiment import (
    READS_EMBEDDINGS as SENTIMENT_READS_EMBEDDINGS,
)
from tasks.models.sentiment_base import SentimentModel
from tasks.models.summarizers import (
    DEFAULT_SUMMARIZER,
    ExtractiveParams,
    Summarizer,
    load_summarizer,
)
from tasks.models.summarizers import (
    READS_EMBEDDINGS as SUMMARIZER_READS_EMBEDDINGS,
)

if TYPE_CHECKING:
    from tasks.models.onnx_backend import OnnxEncoder

DEFAULT_BACKEND = "onnx"  # the product's default (DigestConfig.backend) and the benches'


@dataclass(frozen=True, slots=True)
class ChosenModels:
    """The models the steps use: names, not objects, so any process can load its own; it
    loads them (`load_*`, once per process) and checks them together (`check`)."""

    summarizer: str = DEFAULT_SUMMARIZER
    sentiment: str = DEFAULT_SENTIMENT
    # Options of Hugging Face models, as sorted (name, value) pairs: frozen, hashable and
    # picklable like the names (revision, dtype, generation overrides; label_map as pairs).
    summarizer_options: tuple[tuple[str, Any], ...] = ()
    sentiment_options: tuple[tuple[str, Any], ...] = ()
    # "onnx": the MiniLM encoder and the LoRA sentiment model on ONNX Runtime
    # (tasks.models.onnx_backend), or "torch"; other models keep their own backend.
    backend: str = DEFAULT_BACKEND
    # The embed step's encoder, whose sentence vectors the extractive summariser reads
    # (a sentence-encoder name, or "minilm-lora": the LoRA model's adapted encoder); None:
    # chosen from the sentiment model (`encoder`).
    summarizer_encoder: str | None = None

    @property
    def encoder(self) -> str:
        """The encoder of the embed step: `summarizer_encoder` when chosen; else, with the
        built-in LoRA sentiment model, its adapted encoder (one pass gives the summariser's
        vectors and the sentiment logits: `shared_pass`); else the base MiniLM, which the
        embedding-head model was trained on, so that a Hugging Face sentiment model never
        loads the built-in adapter."""
        if self.summarizer_encoder is not None:
            return self.summarizer_encoder
        return LORA_NAME if self.sentiment == LORA_NAME else DEFAULT_ENCODER

    @property
    def embed_window(self) -> int | None:
        """How many leading sentences the embed step encodes: the lead
        (`tasks.models.lead.LEAD_SENTENCES`, which the summariser and the LoRA sentiment
        model read too), or all for the embedding-head model (it pools every sentence)."""
        return None if self.sentiment in SENTIMENT_READS_EMBEDDINGS else LEAD_SENTENCES

    def check(self) -> None:
        """Fail, before any work, when the models that share the embed step's pass would read
        other sentences than it encodes (known from the names and classes, nothing loaded).

        In the shared pass the sentiment model must read exactly the embed window (else its
        logits of the lead are not the ones it pools, and it would quietly run the lead
        again); the extractive summariser must read no more than the window."""
        if self.sentiment in SENTIMENT_READS_EMBEDDINGS and self.encoder != DEFAULT_ENCODER:
            raise ModelError(f"the sentiment model {self.sentiment!r} reads the embeddings of "
                             f"{DEFAULT_ENCODER!r}, the encoder it was trained on; the "
                             f"summariser's encoder cannot be {self.encoder!r} with it")
        window = self.embed_window
        if self.shared_pass and LoraSentiment.read_sentences != window:
            raise ModelError(
                f"the sentiment model {self.sentiment!r} reads {LoraSentiment.read_sentences} "
                f"sentences but the embed step encodes {window} for both models; they must "
                "agree (tasks/models/lead.py LEAD_SENTENCES)")
        if self.needs_embeddings and self.summarizer in SUMMARIZER_READS_EMBEDDINGS:
            # (an option of None is no option: `load_summarizer` drops it)
            read = (dict(self.summarizer_options).get("read_sentences")
                    or ExtractiveParams().read_sentences)
            if window is not None and (read is None or read > window):
                raise ModelError(
                    f"the summariser {self.summarizer!r} reads {read or 'all'} sentences but "
                    f"the embed step encodes {window}; it must read at most the embed window "
                    "(tasks/models/lead.py LEAD_SENTENCES)")

    @property
    def shared_pass(self) -> bool:
        """Whether the embed step's one encoder pass also gives the sentiment logits: the
        sentiment model is the built-in LoRA model and its adapted encoder is the embed
        step's encoder. The embed step then keeps the logits (`sentence_logits`) and the
        sentiment step runs only the titles; both steps read this, and declare it."""
        return (self.needs_embeddings and self.sentiment == LORA_NAME
                and self.encoder == LORA_NAME)

    @property
    def needs_embeddings(self) -> bool:
        """Whether a model reads the shared sentence embeddings (known from the names)."""
        return (self.summarizer in SUMMARIZER_READS_EMBEDDINGS
                or self.sentiment in SENTIMENT_READS_EMBEDDINGS)

    def load_encoder(self) -> Encoder | OnnxEncoder:
        """This process's sentence encoder on the chosen backend (loaded once per process):
        for the adapted encoder, the very sentiment model object the sentiment step uses."""
        if self.backend == "onnx":
            from tasks.models.onnx_backend import load_onnx_encoder, load_onnx_sentiment

            if self.encoder == LORA_NAME:
                return load_onnx_sentiment(LORA_NAME)
            return load_onnx_encoder(self.encoder)
        return load_sentence_encoder(self.encoder)

    def load_summarizer(self) -> Summarizer:
        """This process's summariser (loaded once per process and options); the extractive
        one reads the run's encoder."""
        options = dict(self.summarizer_options)
        if self.summarizer in SUMMARIZER_READS_EMBEDDINGS:
            options["encoder"] = self.encoder
        return load_summarizer(self.summarizer, **options)

    def load_entity_model(self) -> EntitySentiment | PassEntitySentiment:
        """This process's per-entity sentiment model on the chosen backend (loaded once)."""
        return _load_entity_model(self.backend)

    def load_sentiment(self) -> SentimentModel:
        """This process's sentiment model (loaded once per process and options)."""
        if self.backend == "onnx" and not self.sentiment_options:
            from tasks.models.onnx_backend import load_onnx_sentiment

            return load_onnx_sentiment(self.sentiment)
        return load_sentiment(self.sentiment, **dict(self.sentiment_options))


@lru_cache(maxsize=2)
def _load_entity_model(backend: str) -> EntitySentiment | PassEntitySentiment:
    """The shared model's entity head when it has one (no second pass), else
    `minilm-entity`."""
    from tasks.models.entity_finder import load_finder

    shared = load_finder(backend).model
    if getattr(shared, "entity_config", None):
        return PassEntitySentiment(shared)
    if backend == "onnx":
        from tasks.models.onnx_backend import load_onnx_entity_model

        return load_onnx_entity_model()
    return EntitySentiment()
