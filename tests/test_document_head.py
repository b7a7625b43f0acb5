"""The document head: what it reads of a document, that it is the shipped model's label rule,
and that its metadata carries the team's set with its terms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tasks.models.document_head import FEATURES, document_features, feature_dim
from tasks.models.sentiment import LORA_DIR, LORA_NAME, LoraSentiment, builtin_metadata
from tasks.record import Document

DIM = 8


def _units(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    vectors = torch.nn.functional.normalize(torch.randn(n, DIM, generator=g,
                                                        dtype=torch.float64), dim=-1)
    return probs, vectors


def test_features_read_title_lead_mean_and_the_strongest_sentences():
    probs, vectors = _units(5)
    texts = ["Title", "One.", "Two.", "Three.", "Four."]
    x = document_features(probs, vectors, titled=True, texts=texts)
    assert x.shape == (feature_dim(DIM),)
    title_v, lead_v, mean_v = x[:DIM], x[DIM:2 * DIM], x[2 * DIM:3 * DIM]
    assert torch.equal(title_v, vectors[0]) and torch.equal(lead_v, vectors[1])
    assert torch.allclose(mean_v, vectors[1:].mean(dim=0))
    p = x[3 * DIM:]
    assert torch.equal(p[:3], probs[0]) and torch.equal(p[3:6], probs[1])
    assert torch.allclose(p[6:9], probs[1:].mean(dim=0))
    assert p[12] == probs[1:, 2].max() and p[13] == probs[1:, 0].max()
    assert p[14:17].tolist() == [1.0, 1.0, 4 / 15]
    assert p[17:].tolist() == [0.0, 0.0, 0.0]  # no results table
    # one sentence, no title: the title part is zeros and the flags say so
    one = document_features(probs[:1], vectors[:1], titled=False, texts=["One."])
    assert torch.count_nonzero(one[:DIM]) == 0 and one[-6:-3].tolist() == [0.0, 1.0, 1 / 15]
    # a title alone: no body
    alone = document_features(probs[:1], vectors[:1], titled=True, texts=["Title"])
    assert torch.count_nonzero(alone[DIM:3 * DIM]) == 0
    assert alone[-6:-3].tolist() == [1.0, 0, 0]
    # a head trained before the figure features reads the same row without them
    assert torch.equal(document_features(probs, vectors, True, texts, figures=False), x[:-3])
    assert feature_dim(DIM, figures=False) == feature_dim(DIM) - 3


@pytest.mark.parametrize(("lines", "change"), [
    (["Shr 22 cts vs 12 cts", "Net 3,243,000 vs 1,656,000", "Revs 28.4 mln vs 21.5 mln"], 1),
    (["Shr 18 cts vs 39 cts", "Net 507,000 vs 762,000", "Sales 11.3 mln vs 11.7 mln"], -1),
    # a loss narrowed is up; a loss is below any profit; units differ between the cells
    (["Shr loss 1.20 dlrs vs loss 1.97 dlrs", "Net loss 6,248,000 vs loss 10.2 mln"], 1),
    (["Oper shr loss 15 cts vs profit 57 cts", "Oper net loss 151,000 vs profit 570,000"], -1),
    (["Shr six cts vs eight cts"], -1),  # words for numbers; no net line: shares decide
    (["Group net 1.07 billion vs 1.24 billion"], -1),
    (["Oper shr 33 cts vs 33 cts"], 0),
    # net decides over revenue, and the first (the title's) period over the year's
    (["Net 1,000 vs 2,000", "Revs 9 mln vs 5 mln", "Year", "Net 9,000 vs 2,000"], -1),
    (["Revs 33.1 mln vs not given", "Shr 1.05 dlrs vs 1.20 dlrs"], -1),  # no prior: next
    (["Avg shrs 7,195,720 vs 7,115,248"], None),  # share counts are not results
    (["Profits rose to 5 mln dlrs from 3 mln dlrs, the company said."], None),  # prose
])
def test_a_results_table_says_which_way_the_figures_went(lines, change):
    from tasks.models.reported_figures import figure_features, reported_change

    assert reported_change(["The company said:", *lines]) == change
    expected = [0.0] * 3 if change is None else [1.0, float(change > 0), float(change < 0)]
    assert figure_features(lines) == expected


def test_polar_mean_weights_opinionated_sentences():
    probs = torch.tensor([[0.05, 0.9, 0.05], [0.8, 0.1, 0.1]], dtype=torch.float64)
    x = document_features(probs, torch.zeros(2, DIM, dtype=torch.float64), titled=False,
                          texts=["Calm.", "Bad."])
    mean_p, polar_p = x[3 * DIM + 6:3 * DIM + 9], x[3 * DIM + 9:3 * DIM + 12]
    assert polar_p[0] > mean_p[0]  # the negative sentence counts for more than half


@pytest.fixture(scope="module")
def model() -> LoraSentiment:
    return LoraSentiment(LORA_DIR, LORA_NAME)


def test_the_shipped_model_labels_documents_with_its_head(model):
    assert model.doc_head is not None and model.doc_head.entry["features"] == FEATURES
    assert model.band == model.doc_head.band  # one band: the one fitted on documents
    prov = model.provenance()
    assert f"doc-head-sha256:{model.doc_head.digest}" in prov["revision"]
    params = json.loads(prov["params"])
    assert params["document_head"]["neutral_band"] == model.band
    # the encoder's revision (the embeddings' provenance, the ONNX cache) is the pass alone
    assert "doc-head" not in model.ref.revision


def test_the_metadata_names_the_news_set_and_its_terms(model):
    meta = builtin_metadata(LORA_NAME, model.revision)
    assert meta is not None, "the installed config.json describes the installed weights"
    news = meta["data"]["news_docs"]
    assert news["items"]["train"] > 900 and "CC BY 4.0" in news["licence"]
    assert "Reuters-21578" in news["licence"] and "CNN/DailyMail" in news["licence"]
    assert "document head" in meta["label_rule"] and meta["neutral_band"] == model.band


def test_a_document_is_scored_the_same_alone_and_in_any_batch(model):
    rng = np.random.default_rng(3)
    sentences = ["Shares of the retailer fell 12 percent after it cut its forecast.",
                 "The company said sales in its stores dropped in the quarter.",
                 "Analysts had expected a smaller decline.",
                 "The chief executive will step down at the end of the year."]

    def doc(i: int, order) -> Document:
        s = [sentences[k] for k in order]
        return Document(doc_id=str(i), source="t", raw_text=" ".join(s), text=" ".join(s),
                        sentences=s, title="Retailer cuts forecast as sales slide")

    alone = model.score([doc(0, [0, 1, 2, 3])])[0]
    batch = [doc(i, rng.permutation(4)) for i in range(1, 6)]
    mixed = model.score([*batch[:2], doc(0, [0, 1, 2, 3]), *batch[2:]])[2]
    assert mixed.sentiment_probs == alone.sentiment_probs
    assert mixed.sentiment == alone.sentiment


def test_a_headline_alone_reads_as_a_one_sentence_text(model):
    """A titled document with no body goes through the head as a single sentence would (the
    head never learned 'a title missing its story')."""
    text = "Carmaker to cut 3,000 jobs as demand slumps"
    headline = Document(doc_id="h", source="t", raw_text="", text="", sentences=[], title=text)
    sentence = Document(doc_id="s", source="t", raw_text=text, text=text, sentences=[text])
    model.score([headline, sentence])
    assert headline.sentiment_probs == pytest.approx(sentence.sentiment_probs, abs=1e-9)
    assert headline.sentiment == sentence.sentiment == "negative"
