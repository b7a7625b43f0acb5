"""The ONNX Runtime backend agrees with torch (embeddings, labels, flow output) and is cached.

Tolerances: fp32 ONNX reproduces torch (embeddings atol 1e-5, logits atol 1e-4, identical
labels). int8 (dynamic, per-channel MatMul weights) is an approximation: embeddings cosine
mean >= 0.99 and min >= 0.95 on CNN/DM sentences; sentiment labels identical on >= 98% of the
rows torch is confident about (top probability >= 0.7) and on >= 92% of all rows of a sample
where many FPB sentences sit on a class boundary (bench/RESULTS.md has the accuracies).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from flows.config import DigestConfig
from tasks.models import onnx_backend
from tasks.models.encoder import load_encoder
from tasks.models.registry import resolve_encoder
from tasks.models.sentiment import LORA_NAME, load_sentiment
from tasks.training.train_head import read_tsv

from .conftest import FIXTURES
from .corpus import articles

NEWS_HEADLINES = FIXTURES.parent / "news_headlines.tsv"


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    from tasks.steps.sentences import split_sentences

    out = [s for r in articles() for s in split_sentences(r["text"])]
    return out[:150]


@pytest.fixture(scope="module")
def labelled() -> list[str]:
    """The news-check headlines and the SST-2- and FPB-style fixture sentences (~300)."""
    from tasks.training.sentiment_data import read_labelled

    news = [t for t, _ in read_labelled(NEWS_HEADLINES)]
    return (news + [t for t, _ in read_tsv(FIXTURES / "sst2_like.tsv")]
            + [t for t, _ in read_tsv(FIXTURES / "fpb_like.tsv")])


@pytest.mark.slow  # loads both backends of both models: seconds each
@pytest.mark.parametrize("quant", ["fp32", "int8"])
def test_onnx_embeddings_match_torch(sentences, quant):
    ref = load_encoder("minilm").encode(sentences)
    got = onnx_backend.load_onnx_encoder("minilm", quant).encode(sentences)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cos = (got * ref).sum(axis=1)
    if quant == "fp32":
        assert np.abs(got - ref).max() < 1e-5
    else:
        assert cos.mean() >= 0.99 and cos.min() >= 0.95, (cos.mean(), cos.min())


@pytest.mark.slow
def test_onnx_sentiment_labels_match_torch(labelled):
    torch_probs = load_sentiment(LORA_NAME).sentence_probs(labelled)
    fp32 = onnx_backend.load_onnx_sentiment(LORA_NAME, "fp32")
    assert np.abs(fp32.logits(labelled) - load_sentiment(LORA_NAME).logits(labelled)).max() < 1e-4
    int8 = onnx_backend.load_onnx_sentiment(LORA_NAME, "int8").sentence_probs(labelled)
    same = int8.argmax(axis=1) == torch_probs.argmax(axis=1)
    confident = torch_probs.max(axis=1) >= 0.7
    assert confident.sum() >= 80  # the sample has enough clear rows to mean something
    assert same[confident].mean() >= 0.98, same[confident].mean()
    assert same.mean() >= 0.92, same.mean()


@pytest.mark.slow  # exports MiniLM into a fresh cache
def test_export_is_cached_and_reused(tmp_path, monkeypatch, sentences):
    monkeypatch.setenv(onnx_backend.CACHE_ENV, str(tmp_path / "cache"))
    first = onnx_backend.OnnxEncoder(resolve_encoder("minilm"), "fp32")
    assert first.path.is_relative_to(tmp_path / "cache")
    stamp = first.path.stat().st_mtime_ns
    built: list[str] = []
    original = first._build_fp32

    second = onnx_backend.OnnxEncoder.__new__(onnx_backend.OnnxEncoder)
    second._build_fp32 = lambda out: (built.append(str(out)), original(out))
    second.__init__(resolve_encoder("minilm"), "fp32")
    assert built == [] and second.path == first.path
    assert second.path.stat().st_mtime_ns == stamp
    assert np.array_equal(first.encode(sentences[:5]), second.encode(sentences[:5]))
    # nothing half-written is left next to the cached file
    assert sorted(p.name for p in first.path.parent.iterdir()) == [".lock", "encoder-fp32.onnx"]


def test_cached_sentiment_graph_skips_the_torch_model(tmp_path, monkeypatch, labelled):
    """Only the first load (no cached graph) merges the LoRA weights in torch, to export."""
    monkeypatch.setenv(onnx_backend.CACHE_ENV, str(tmp_path))
    from tasks.models.sentiment import LORA_DIR, LoraSentiment

    cls = onnx_backend._lora_class()
    loads: list[int] = []
    original = LoraSentiment.load_weights
    monkeypatch.setattr(LoraSentiment, "load_weights",
                        lambda self: (loads.append(1), original(self))[1])
    first = cls(LORA_DIR, LORA_NAME, "fp32")
    assert loads == [1] and first._encoder is None  # exported, then the torch copy freed
    second = cls(LORA_DIR, LORA_NAME, "fp32")
    assert loads == [1] and second.path == first.path
    assert np.array_equal(first.logits(labelled[:8]), second.logits(labelled[:8]))


def test_cached_file_builds_once_and_never_leaves_a_partial_file(tmp_path, monkeypatch):
    monkeypatch.setenv(onnx_backend.CACHE_ENV, str(tmp_path))
    calls = []

    def failing(out):
        out.write_bytes(b"half")
        raise RuntimeError("export crashed")

    with pytest.raises(RuntimeError):
        onnx_backend.cached_file("k", "model.onnx", failing)
    folder = onnx_backend.cache_root() / "k"
    assert not (folder / "model.onnx").exists()
    assert [p.name for p in folder.iterdir()] == [".lock"]
    for _ in range(2):
        path = onnx_backend.cached_file("k", "model.onnx",
                                        lambda out: (calls.append(out), out.write_bytes(b"ok")))
    assert len(calls) == 1 and path.read_bytes() == b"ok"


def test_flow_with_onnx_backend_matches_torch(prefect_harness, tmp_path):
    from flows.digest import digest

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n"
                           for r in articles()[:6]), encoding="utf-8")
    rows = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / backend
        digest(DigestConfig(input=src, output=out, show_progress=False, backend=backend))
        rows[backend] = sorted(pq.read_table(out / "documents").to_pylist(),
                               key=lambda r: r["doc_id"])
    torch_rows, onnx_rows = rows["torch"], rows["onnx"]
    assert [r["doc_id"] for r in onnx_rows] == [r["doc_id"] for r in torch_rows]
    assert [r["text"] for r in onnx_rows] == [r["text"] for r in torch_rows]
    # summaries: the same sentences for most documents, overlapping for all
    same = [o["summary_sentences"] == t["summary_sentences"]
            for o, t in zip(onnx_rows, torch_rows, strict=True)]
    assert sum(same) >= len(same) - 1
    for o, t in zip(onnx_rows, torch_rows, strict=True):
        assert set(o["summary_sentences"]) & set(t["summary_sentences"])
        # int8 moves a sentence's probabilities by up to 0.25 (test_news_sentiment); the
        # document head reads several units at once, so one document may move as much
        assert o["sentiment_score"] == pytest.approx(t["sentiment_score"], abs=0.25)
    moves = [abs(o["sentiment_score"] - t["sentiment_score"])
             for o, t in zip(onnx_rows, torch_rows, strict=True)]
    assert sum(moves) / len(moves) < 0.1
    prov = onnx_rows[0]["provenance"]
    assert prov["encoder"]["revision"] == torch_rows[0]["provenance"]["encoder"]["revision"]
    for model in ("encoder", "sentiment_model"):
        params = json.loads(prov[model]["params"])
        assert params["backend"] == "onnx" and params["quantization"] == "int8"
    assert json.loads(torch_rows[0]["provenance"]["encoder"]["params"])["backend"] == "torch"
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
