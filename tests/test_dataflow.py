"""The declared data flow (issue 24): what each step reads and writes depends on the chosen
models, and the run checks it before any work.

The shared encoder pass: with the built-in LoRA sentiment model the embed step runs its
adapted encoder once over the lead and keeps the logits (`sentence_logits`), which the
sentiment step declares it needs; other sentiment models neither need nor get them.
"""

from __future__ import annotations

import json

import pytest

from tasks.models.chosen import ChosenModels
from tasks.pipeline import STEPS, PipelineError, active_steps, check_needs
from tasks.steps.base import StepSettings

STEP = {s.name: s for s in STEPS}


def _settings(**models) -> StepSettings:
    return StepSettings(models=ChosenModels(**models))


def test_the_default_run_declares_the_shared_pass():
    settings = _settings()
    assert settings.models.shared_pass
    assert "sentence_logits" in STEP["embed"].provides_for(settings)
    assert "sentence_logits" in STEP["sentiment"].needs_for(settings)
    # the document head reads the same pass's vectors too (tasks.models.document_head)
    assert "embeddings" in STEP["sentiment"].needs_for(settings)
    assert [s.name for s in active_steps(settings)][:5] == [
        "clean", "language", "minhash", "embed", "summarize"]


def test_check_needs_fails_when_the_shared_pass_has_no_embed_step():
    settings = _settings()
    # (the summariser, which reads the embeddings too, is left out: its own test is below)
    without_embed = [s for s in STEPS if s.name not in ("embed", "summarize")]
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
    without_embed = [s for s in STEPS if s.name != "embed"]
    if settings.models.needs_embeddings:  # a model reads the vectors: embed must run first
        with pytest.raises(PipelineError, match="needs embeddings .read by the"):
            check_needs(without_embed, settings=settings)
    else:
        check_needs(without_embed, settings=settings)


@pytest.mark.parametrize("models, step, reader", [
    ({}, "summarize", "the summariser 'extractive'"),
    ({"summarizer": "some/seq2seq", "sentiment": "minilm-head"}, "sentiment",
     "the sentiment model 'minilm-head'"),
])
def test_a_model_that_reads_embeddings_needs_the_embed_step(models, step, reader):
    """Needs come from the chosen models: without the embed step the run fails at start,
    naming the step, the field and the model, instead of the model computing the vectors
    itself on another backend."""
    settings = _settings(**models)
    assert "embeddings" in STEP[step].needs_for(settings)
    steps = [s for s in STEPS if s.name not in ("embed", "sentiment")] + \
        ([STEP["sentiment"]] if step == "sentiment" else [])
    message = f"step '{step}' needs embeddings \\(read by {reader}\\)"
    with pytest.raises(PipelineError, match=message):
        check_needs(steps, settings=settings)
    check_needs([s for s in STEPS if s.name != "entities"], settings=settings)


@pytest.mark.parametrize("models, step, reader", [
    ({"summarizer": "extractive", "sentiment": "some/hf-classifier"}, "summarize",
     "the summariser 'extractive'"),
    ({}, "sentiment", "the sentiment model 'minilm-lora'"),
])
def test_a_step_list_built_by_hand_without_embed_gets_rejects_not_a_second_pass(
        models, step, reader, monkeypatch):
    """Past the start check (a bench or a test running steps by hand), a model's missing
    input is still an error, each document a `<step>_failed` reject naming the model and the
    field; the model never encodes the sentences itself."""
    from tasks.models import encoder, summarizers
    from tasks.pipeline import run_step
    from tasks.record import Document
    from tasks.steps.base import Batch

    def no_encoding(*args, **kwargs):
        raise AssertionError("a model encoded the sentences itself")

    monkeypatch.setattr(summarizers, "load_sentence_encoder", no_encoding)
    monkeypatch.setattr(encoder, "load_encoder", no_encoding)
    settings = _settings(**models)
    text = ("Shares rose on Monday as investors bought banks. Bonds fell for a third day. "
            "Gold held near its record. Oil slid after the producers met. The dollar gained "
            "against the yen and the euro.")  # long enough to be summarised
    docs = [Document(doc_id=k, source="t", raw_text=text, title="Markets move") for k in "ab"]
    batch = Batch(seq=0, docs=docs)
    for s in STEPS[:STEPS.index(STEP[step]) + 1]:
        if s.name not in ("embed", "summarize") or s.name == step:
            batch = run_step(s, batch, settings)
    assert batch.docs == []
    assert {r.reason for r in batch.rejects} == {f"{step}_failed"}
    assert all(reader in r.detail and "embed" in r.detail for r in batch.rejects)


# --- the lead window: one home, checked at the start -----------------------------------------


def test_the_lead_window_has_one_home():
    from tasks.models.lead import LEAD_SENTENCES
    from tasks.models.sentiment import LoraSentiment
    from tasks.models.summarizers import ExtractiveParams

    assert ChosenModels().embed_window == LEAD_SENTENCES
    assert LoraSentiment.read_sentences == LEAD_SENTENCES
    assert ExtractiveParams().read_sentences == LEAD_SENTENCES
    ChosenModels().check()  # agrees: no error


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


# --- one pass per sentence; nothing loaded that the run does not use ------------------------

LEAD = [f"The council approved plan number {i} for the new library and the park near the "
        f"river on Tuesday." for i in range(20)]


def _docs() -> list:
    from tasks.record import Document

    bodies = [LEAD, LEAD[:6], LEAD[3:9] + ["Shares of the builder rose on the news."]]
    return [Document(doc_id=f"d{i}", source="t", raw_text=" ".join(b),
                     title=f"Council backs library plan {i}") for i, b in enumerate(bodies)]


def test_the_default_run_encodes_each_sentence_once(monkeypatch):
    """The default models on the default backend: every sentence the summariser and the
    sentiment model read goes through the encoder exactly once, in the embed step's pass
    (the lead) or the sentiment step's (the titles), never twice."""
    from collections import Counter

    from tasks.models.lead import LEAD_SENTENCES
    from tasks.models.onnx_backend import OnnxEncoder
    from tasks.pipeline import process_batch
    from tasks.steps.base import Batch

    settings = StepSettings(near_duplicates=False, entities=False)
    models = settings.models
    model = models.load_sentiment()
    assert models.shared_pass and models.load_encoder() is model
    # Every encoder a run could use, counted: the sentiment model's and the base MiniLM's.
    calls: list[list[str]] = []
    for cls in (type(model), OnnxEncoder):
        real = cls._compute
        monkeypatch.setattr(cls, "_compute", lambda self, sentences, _real=real:
                            calls.append(list(sentences)) or _real(self, sentences))
    model.cache.clear()
    docs = _docs()
    out = process_batch(Batch(seq=0, docs=docs, n_items=len(docs)), settings)
    assert len(out.docs) == 3 and all(d.sentiment and d.summary for d in out.docs)
    seen = [s for call in calls for s in call]
    assert max(Counter(seen).values()) == 1  # no sentence encoded twice, by any model
    lead = {s for d in out.docs for s in d.sentences[:LEAD_SENTENCES]}
    # two encoder calls: the embed step's (the leads), the sentiment step's (the titles)
    assert [set(c) for c in calls] == [lead, {d.title for d in out.docs}]
    assert out.timings["embed"] > 0 and "sentiment" in out.timings


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A random-weight three-label Hugging Face classifier (as tests/test_hf_models.py)."""
    from . import tiny_models as tiny
    from .corpus import ARTICLES

    bpe = tiny.train_tokenizer(tiny.news_articles(ARTICLES), "<s> $A </s>")
    return tiny.build_classifier(tmp_path_factory.mktemp("clf") / "clf3", bpe,
                                 {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_hugging_face_sentiment_model_never_loads_the_builtin_adapter(
        tiny_classifier, monkeypatch, backend):
    """The summariser's encoder is its own setting: with a Hugging Face sentiment model it
    is the base MiniLM, and nothing asks for the built-in LoRA model, cached or not."""
    from flows.digest import load_models
    from tasks.models import onnx_backend, sentiment
    from tasks.models.registry import DEFAULT_ENCODER, resolve_encoder
    from tasks.models.sentiment import LORA_NAME
    from tasks.pipeline import process_batch
    from tasks.steps.base import Batch

    asked: list[str] = []
    for module in (sentiment, onnx_backend):
        real = module._load_sentiment
        monkeypatch.setattr(module, "_load_sentiment",
                            lambda name, *a, _real=real: asked.append(name) or _real(name, *a))
    settings = StepSettings(models=ChosenModels(sentiment=str(tiny_classifier), backend=backend),
                            near_duplicates=False, entities=False)
    models = settings.models
    assert models.encoder == DEFAULT_ENCODER and not models.shared_pass
    provenance = load_models.fn(settings)
    docs = _docs()
    out = process_batch(Batch(seq=0, docs=docs, n_items=len(docs)), settings)
    assert len(out.docs) == 3 and all(d.sentiment and d.summary for d in out.docs)
    assert asked and LORA_NAME not in asked
    base = resolve_encoder(DEFAULT_ENCODER).name
    assert provenance["encoder"]["name"] == base != LORA_NAME
    assert json.loads(provenance["summarizer"]["params"])["encoder"] == base
    # minilm-head keeps reading the base MiniLM's embeddings
    assert ChosenModels(sentiment="minilm-head").encoder == DEFAULT_ENCODER
    # ... and the built-in LoRA model keeps the shared pass (default runs unchanged)
    assert ChosenModels().encoder == LORA_NAME and ChosenModels().shared_pass


def test_the_summarizer_encoder_is_a_setting_checked_against_the_head():
    from tasks.models.registry import DEFAULT_ENCODER, ModelError

    base = ChosenModels(summarizer_encoder=DEFAULT_ENCODER)
    assert base.encoder == DEFAULT_ENCODER and not base.shared_pass
    assert "sentence_logits" not in STEP["sentiment"].needs_for(StepSettings(models=base))
    with pytest.raises(ModelError, match="minilm-head.*trained on"):
        ChosenModels(sentiment="minilm-head", summarizer_encoder="minilm-lora").check()


def test_no_step_reads_embeddings_no_encoder_is_loaded(monkeypatch):
    """A summariser that reads no embeddings and a sentiment model that runs its own pass:
    no embed step, and load-models neither loads nor records an encoder."""
    from flows.digest import load_models

    def refuse(self):
        raise AssertionError("the encoder was loaded")

    monkeypatch.setattr(ChosenModels, "load_encoder", refuse)
    monkeypatch.setattr(ChosenModels, "load_summarizer", lambda self: _NoSummarizer())
    settings = _settings(summarizer="some/seq2seq")
    assert "embed" not in [s.name for s in active_steps(settings)]
    provenance = load_models.fn(StepSettings(models=settings.models, entities=False))
    assert provenance["encoder"] is None
    assert provenance["sentiment_model"]["name"] == "minilm-lora"


class _NoSummarizer:
    name = "stub"

    def provenance(self) -> dict[str, str]:
        return {"name": "stub", "revision": "0", "params": "{}"}
