"""One encoder pass and the lead.

The embed step runs the sentiment model's adapted encoder once over a document's lead: the
summariser reads those vectors, and the sentiment step reuses the logits of the same pass,
so it runs only the titles. Both models read the title and the first `LEAD_SENTENCES`
sentences; the text column keeps everything.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tasks.models.chosen import ChosenModels
from tasks.models.lead import LEAD_SENTENCES
from tasks.models.sentiment import LORA_NAME
from tasks.pipeline import STEPS, process_batch
from tasks.record import Document
from tasks.steps.base import Batch, StepSettings

LEAD = [f"The council approved plan number {i} for the new library and the park near the "
        f"river on Tuesday." for i in range(LEAD_SENTENCES)]
TAIL = ["Residents were furious and devastated after the deadly collapse killed dozens.",
        "The disaster left families grieving, homeless and terrified of another catastrophe.",
        "Angry protesters condemned the shameful failure and the horrific loss of life."] * 4


def _doc(i: int, sentences: list[str]) -> Document:
    return Document(doc_id=f"d{i}", source="t", raw_text=" ".join(sentences),
                    title="Council backs new library plan")


@pytest.fixture(scope="module")
def settings() -> StepSettings:
    return StepSettings(models=ChosenModels(backend="torch"), near_duplicates=False)


def test_default_encoder_is_the_sentiment_model(settings: StepSettings) -> None:
    models = settings.models
    assert models.encoder == LORA_NAME
    assert models.load_encoder() is models.load_sentiment()
    assert ChosenModels(sentiment="minilm-head").encoder != LORA_NAME  # reads the base MiniLM


def test_sentiment_step_runs_only_the_titles(settings: StepSettings,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    model = settings.models.load_sentiment()
    docs = [_doc(0, LEAD + TAIL), _doc(1, LEAD[:4]), _doc(2, TAIL[:3])]
    two_pass = model.score(copy.deepcopy([d for d in process_batch(
        Batch(seq=0, docs=copy.deepcopy(docs)), settings,
        [s for s in STEPS if s.name in ("clean",)]).docs]))
    calls: list[int] = []
    real = type(model)._compute
    monkeypatch.setattr(type(model), "_compute",
                        lambda self, sentences: calls.append(len(sentences)) or real(self,
                                                                                      sentences))
    model.cache.clear()
    one_pass = process_batch(Batch(seq=0, docs=docs), settings).docs
    # The embed step: each distinct lead sentence once (15 + 3: the second document's four
    # repeat the first's); the sentiment step: the title (the same for all three).
    assert calls == [LEAD_SENTENCES + 3, 1]
    for a, b in zip(one_pass, two_pass, strict=True):
        assert a.sentiment == b.sentiment
        assert np.allclose(a.sentiment_probs, b.sentiment_probs, atol=1e-5)
    assert all(d.embeddings is None and d.sentence_logits is None for d in one_pass)


def test_models_read_the_lead(settings: StepSettings) -> None:
    """Negative sentences after the lead change neither the summary nor the sentiment."""
    full, lead = process_batch(Batch(seq=0, docs=[_doc(0, LEAD + TAIL), _doc(1, LEAD)]),
                               settings).docs
    assert len(full.sentences) == LEAD_SENTENCES + len(TAIL)  # the row keeps every sentence
    assert full.summary_sentence_ids == lead.summary_sentence_ids
    assert max(full.summary_sentence_ids) < LEAD_SENTENCES
    assert full.sentiment == lead.sentiment
    assert np.allclose(full.sentiment_probs, lead.sentiment_probs, atol=1e-5)
    # ... while the same tail inside the lead does change the sentiment.
    mixed = process_batch(Batch(seq=0, docs=[_doc(2, TAIL[:6] + LEAD)]), settings).docs[0]
    assert mixed.sentiment_score < lead.sentiment_score - 0.1  # the title weighs 0.75


def test_a_sentence_seen_before_in_the_run_runs_once(settings: StepSettings,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    model = settings.models.load_sentiment()
    calls: list[list[str]] = []
    real = type(model)._compute
    monkeypatch.setattr(type(model), "_compute",
                        lambda self, sentences: calls.append(list(sentences))
                        or real(self, sentences))
    model.cache.clear()
    wire = "The figures were released by the statistics office on Tuesday morning."
    docs = process_batch(Batch(seq=0, docs=[_doc(0, [*LEAD[:3], wire]),
                                            _doc(1, [wire, *TAIL[:2]])]), settings).docs
    assert sorted(calls[0]) == sorted({*LEAD[:3], wire, *TAIL[:2]})  # 6 distinct of 7
    # A later batch runs only what is new: the wire sentence and the title come from the cache
    later = _doc(2, [wire, "A new sentence arrived in the second batch of the run."])
    again = process_batch(Batch(seq=1, docs=[later]), settings).docs[0]
    assert calls[2:] == [["A new sentence arrived in the second batch of the run."]]
    model.cache.clear()  # ... and the cache changes nothing: the same document alone, fresh
    alone = process_batch(Batch(seq=0, docs=[_doc(1, [wire, *TAIL[:2]])]), settings).docs[0]
    assert docs[1].sentiment_probs == alone.sentiment_probs
    model.cache.clear()
    assert process_batch(Batch(seq=0, docs=[_doc(2, later.sentences)]),
                         settings).docs[0].sentiment_probs == again.sentiment_probs
