"""The extractive summariser on the real MiniLM encoder: what it picks and what it never picks."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tasks.models.chosen import ChosenModels
from tasks.models.encoder import load_encoder  # noqa: E402
from tasks.models.registry import DEFAULT_ENCODER, ModelError
from tasks.models.sentiment import LORA_NAME
from tasks.models.summarizers import (
    ExtractiveParams,
    ExtractiveSummarizer,
    Summarizer,
    load_summarizer,
    rejection_reason,
)
from tasks.record import Document  # noqa: E402
from tasks.steps.embed import embed_sentences  # noqa: E402

BYLINE = "By . Daily Mail Reporter . PUBLISHED: 10:02 EST, 3 March 2015 | UPDATED: 11:15 EST."
CLICK = "Click here to read more about the council's flood defence plans and how to apply."
ARTICLE = [
    BYLINE,
    "Hundreds of homes in the Somerset Levels were evacuated on Tuesday after the River Parrett "
    "burst its banks following three days of torrential rain.",
    "Emergency services used boats to rescue elderly residents from the village of Moorland, "
    "where water rose to more than four feet in some streets.",
    "The Environment Agency said it had issued 14 severe flood warnings across the region and "
    "expected river levels to keep rising until Thursday.",
    "Local councillor Janet Hughes said the village had been abandoned by the government, "
    "which she accused of ignoring repeated calls to dredge the river.",
    CLICK,
    "A rest centre has been opened at the village hall in nearby Burrowbridge, where volunteers "
    "are handing out blankets and hot meals.",
    "Train services between Taunton and Bristol were suspended after water covered the tracks "
    "near Bridgwater.",
    "The Met Office has forecast further heavy rain for the south west over the weekend.",
    "Insurers estimate that the cost of the damage could run to tens of millions of pounds.",
]


def _doc(sentences: list[str], doc_id: str = "d") -> Document:
    return Document(doc_id=doc_id, source="test", raw_text=" ".join(sentences),
                    text=" ".join(sentences), sentences=list(sentences))


@pytest.fixture(scope="module")
def summarizer() -> Summarizer:
    return load_summarizer()


def test_article_summary_is_ordered_verbatim_and_clean(summarizer: Summarizer) -> None:
    (doc,) = summarizer.summarize([_doc(ARTICLE)])
    ids = doc.summary_sentence_ids
    assert 2 <= len(ids) <= 4
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(0 <= i < len(ARTICLE) for i in ids)
    picked = [ARTICLE[i] for i in ids]
    assert doc.summary == " ".join(picked)
    assert BYLINE not in picked and CLICK not in picked
    assert all(rejection_reason(s) is None for s in picked)
    assert doc.summary_chunks is None
    # A news summary starts with the lead, not with the furniture above it.
    assert ids[0] == 1


def test_boilerplate_rules() -> None:
    assert rejection_reason(BYLINE) is not None
    assert rejection_reason(CLICK) is not None
    assert rejection_reason("Scroll down for video") is not None
    assert rejection_reason("He was 88.") == "too short"
    assert rejection_reason("Score: 3-1, 2-0, 4-4, 1-1, 0-0, 2-2 (45, 67, 88, 90)") is not None
    assert rejection_reason("Tragic: The man was thrown off his motorbike by the car.") == (
        "photo caption"
    )
    assert rejection_reason("John Smith (left) and his wife Mary at their home in Leeds") == (
        "photo caption"
    )
    assert rejection_reason(" ".join(["word"] * 120) + ".") == "too long"
    # Quotes introduced with a colon are prose, not caption labels.
    assert rejection_reason("He said: 'We will rebuild the village whatever it costs us.'") is None
    assert rejection_reason(ARTICLE[1]) is None


def test_short_documents_are_their_own_summary(summarizer: Summarizer) -> None:
    one = "The bridge reopened on Monday after a two-year, £40m restoration."
    two = [one, "Traffic is expected to be heavy all week."]
    d1, d2 = summarizer.summarize([_doc([one], "one"), _doc(two, "two")])
    assert d1.summary == one and d1.summary_sentence_ids == [0]
    assert d2.summary == " ".join(two) and d2.summary_sentence_ids == [0, 1]


def test_fragments_only_document_falls_back_to_the_lead(summarizer: Summarizer) -> None:
    fragments = ["Markets.", "Oil up.", "Gold down.", "Bonds flat.", "Yen steady."]
    (doc,) = summarizer.summarize([_doc(fragments, "fragments")])
    assert doc.summary_sentence_ids == [0, 1, 2]
    assert doc.summary == "Markets. Oil up. Gold down."


def test_empty_document_gets_no_summary(summarizer: Summarizer) -> None:
    empty = _doc([], "empty")
    full = _doc(ARTICLE, "full")
    out = summarizer.summarize([empty, full])
    assert out[0].summary is None and out[0].summary_sentence_ids == []
    assert out[1].summary is not None


def test_summary_reads_the_vectors_the_run_feeds(summarizer: Summarizer, monkeypatch) -> None:
    """The embed step hands the summariser the run's vectors (`ChosenModels().load_encoder()`:
    the adapted LoRA encoder on the default backend), and the summary must follow them: it may
    not encode again, nor pick what it would pick without them."""
    names = ChosenModels()
    encoder = names.load_encoder()
    assert names.encoder == LORA_NAME and names.needs_embeddings
    inside = summarizer.summarize([_doc(ARTICLE, "a")])[0]  # encodes the lead itself

    run, steered = embed_sentences([_doc(ARTICLE, "run"), _doc(ARTICLE, "steered")], encoder,
                                   names.embed_window,
                                   keep_logits=encoder is names.load_sentiment())
    assert run.embeddings.shape == (len(ARTICLE), encoder.dim)
    # Vectors that make sentence 3 repeat sentence 1 (MMR then drops it) and sentence 4 share
    # the topic of the rest: with them the picks must move from 3 to 4.
    a, b = np.eye(encoder.dim, dtype=np.float32)[:2]
    steered.embeddings = np.stack([a if i in (1, 3) else b for i in range(len(ARTICLE))])

    def encode_again(self):
        raise AssertionError("the summariser encoded sentences it was handed vectors for")

    monkeypatch.setattr(ExtractiveSummarizer, "_encoder", encode_again)
    steered_out, run_out = summarizer.summarize([steered, run])  # one batch: no mix-up
    assert run_out.summary_sentence_ids == inside.summary_sentence_ids == [1, 2, 3]
    assert run_out.summary == inside.summary
    assert steered_out.summary_sentence_ids == [1, 2, 4]


def test_mismatched_embeddings_are_an_error(summarizer: Summarizer) -> None:
    doc = embed_sentences([_doc(ARTICLE)], load_encoder(DEFAULT_ENCODER))[0]
    doc.embeddings = doc.embeddings[:-1]  # one sentence of the lead has no vector
    with pytest.raises(ValueError, match="embeddings"):
        summarizer.summarize([doc])


def test_load_summarizer_caches_and_rejects_unknown_names() -> None:
    assert load_summarizer() is load_summarizer("extractive")
    a = load_summarizer("extractive", target_sentences=2, redundancy=0.5)
    assert a is load_summarizer("extractive", redundancy=0.5, target_sentences=2)
    assert a is not load_summarizer()
    assert isinstance(a, ExtractiveSummarizer) and a.params.target_sentences == 2
    with pytest.raises(ModelError, match="extractive"):
        load_summarizer("no-such-summariser")
    with pytest.raises(ModelError):
        load_summarizer("extractive", target_sentences=7)
    with pytest.raises(ModelError):
        load_summarizer("extractive", no_such_param=1)


def test_target_sentences_is_respected() -> None:
    four = load_summarizer("extractive", target_sentences=4)
    two = load_summarizer("extractive", target_sentences=2)
    assert len(four.summarize([_doc(ARTICLE)])[0].summary_sentence_ids) == 4
    assert len(two.summarize([_doc(ARTICLE)])[0].summary_sentence_ids) == 2


def test_provenance(summarizer: Summarizer) -> None:
    prov = summarizer.provenance()
    assert set(prov) == {"name", "revision", "params"}
    assert prov["name"] == "extractive"
    # The default reads the sentiment model's adapted encoder: base weights + adapter + head.
    base = load_encoder(DEFAULT_ENCODER).ref.revision
    assert prov["revision"].startswith(base + ";adapter-sha256:")
    params = json.loads(prov["params"])
    assert {"target_sentences", "position_half_life", "relevance_weight", "redundancy",
            "encoder", "read_sentences"} <= set(params)
    assert params["encoder"] == "minilm-lora" and params["read_sentences"] == 15
    plain = ExtractiveSummarizer(ExtractiveParams(encoder=DEFAULT_ENCODER)).provenance()
    assert plain["revision"] == base
    assert summarizer.needs_embeddings is True
