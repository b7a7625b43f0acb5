"""The declared data flow (issue 24): what each step reads and writes depends on the chosen
models, and the run checks it before any work.

The shared encoder pass: with the built-in LoRA sentiment model the embed step runs its
adapted encoder once over the lead and keeps the logits (`sentence_logits`), which the
sentiment step declares it needs; other sentiment models neither need nor get them.
"""

from __future__ import annotations

import pytest

from tasks.models.names import ModelNames
from tasks.pipeline import STEPS, PipelineError, active_steps, check_needs
from tasks.steps.base import StepSettings

STEP = {s.name: s for s in STEPS}


def _settings(**models) -> StepSettings:
    return StepSettings(models=ModelNames(**models))


def test_the_default_run_declares_the_shared_pass():
    settings = _settings()
    assert settings.models.shared_pass
    assert "sentence_logits" in STEP["embed"].provides_for(settings)
    assert "sentence_logits" in STEP["sentiment"].needs_for(settings)
    assert [s.name for s in active_steps(settings)][:5] == [
        "clean", "language", "minhash", "embed", "summarize"]


def test_check_needs_fails_when_the_shared_pass_has_no_embed_step():
    settings = _settings()
    without_embed = [s for s in STEPS if s.name != "embed"]
    with pytest.raises(PipelineError, match="sentiment.*sentence_logits"):
        check_needs(without_embed, settings=settings)
    with pytest.raises(PipelineError, match="sentiment.*sentence_logits"):
        active_steps(settings, without_embed)
    # ... and when the embed step comes too late
    late = [*without_embed[:-1], STEP["embed"], without_embed[-1]]
    with pytest.raises(PipelineError, match="sentiment.*sentence_logits"):
        check_needs(late, settings=settings)


@pytest.mark.parametrize("models", [
    {"sentiment": "minilm-head"},  # reads base MiniLM embeddings, not the LoRA logits
    {"sentiment": "some/hf-classifier"},  # a Hugging Face classifier: its own pass
    {"summarizer": "some/seq2seq"},  # nothing reads embeddings: no embed step at all
])
def test_no_shared_pass_no_logits_declared(models):
    settings = _settings(**models)
    assert not settings.models.shared_pass
    assert "sentence_logits" not in STEP["embed"].provides_for(settings)
    assert "sentence_logits" not in STEP["sentiment"].needs_for(settings)
    check_needs([s for s in STEPS if s.name != "embed"], settings=settings)


# --- the lead window: one home, checked at the start -----------------------------------------


def test_the_lead_window_has_one_home():
    from tasks.models.lead import LEAD_SENTENCES
    from tasks.models.sentiment import LoraSentiment
    from tasks.models.summarizers import ExtractiveParams

    assert ModelNames().embed_window == LEAD_SENTENCES
    assert LoraSentiment.read_sentences == LEAD_SENTENCES
    assert ExtractiveParams().read_sentences == LEAD_SENTENCES
    ModelNames().check()  # agrees: no error


def test_a_sentiment_read_window_other_than_the_embed_window_fails_at_start(monkeypatch):
    from tasks.models.registry import ModelError
    from tasks.models.sentiment import LoraSentiment

    monkeypatch.setattr(LoraSentiment, "read_sentences", 10)
    with pytest.raises(ModelError, match="reads 10 sentences but the embed step encodes 15"):
        active_steps(_settings())
    # not sharing a pass, the window is the sentiment model's own business
    active_steps(_settings(summarizer="some/seq2seq"))


def test_a_summariser_reading_past_the_embed_window_fails_at_start():
    from tasks.models.registry import ModelError

    with pytest.raises(ModelError, match="summariser 'extractive' reads 20"):
        active_steps(_settings(summarizer_options=(("read_sentences", 20),)))
    active_steps(_settings(summarizer_options=(("read_sentences", 5),)))  # within: fine
    # the embedding-head model has every sentence embedded
    active_steps(_settings(sentiment="minilm-head", summarizer_options=(("read_sentences", 20),)))
