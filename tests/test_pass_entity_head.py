"""Per-mention sentiment from the shared pass: the entity head reads the token states that
the sentence's own pass already made for the other heads, so scoring a name runs no second
encoder pass, and training computes the very features serving does.

The head here is built by the test (random weights, fixed seed) into a copy of the shipped
model folder, so these tests hold whatever head the shipped model carries: each test runs on
both kinds, the MLP over pooled states and the mention layer (`tasks.models.mention_layer`).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tasks.models.entity_sentiment import ENTITY_WEIGHTS, PassEntitySentiment
from tasks.models.onnx_backend import _lora_class
from tasks.models.sentiment import LORA_DIR, LoraSentiment
from tasks.training.entity_data import Mention

ITEMS = [("Tesco gains as Sainsbury slides.", ((0, 5), (15, 24))),
         ("Tony Blair met EU leaders in Brussels on Monday.", ((0, 10), (15, 17), (29, 37))),
         ("Shares of Rolls-Royce fell 3 pct after the profit warning.", ((10, 21),))]


@pytest.fixture(scope="module", params=["mlp", "mention_layer"])
def folder(request, tmp_path_factory):
    """The shipped model folder with a random entity head of the served shape."""
    import torch
    from safetensors.torch import save_file

    from tasks.models.entity_sentiment import build_entity_head
    from tasks.training.train_entity_head import head_config

    out = tmp_path_factory.mktemp("model") / "sentiment-lora"
    shutil.copytree(LORA_DIR, out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if request.param == "mlp":
        entry = {"features": {"span_layers": [-2, -1], "sentence_mean": True},
                 "head": {"input_dim": 3 * 384, "hidden": 32, "activation": "gelu"}}
    else:
        encoder = LoraSentiment(LORA_DIR, "minilm-lora")._encoder
        entry = head_config(encoder.config, 32, depth=2)
    config["entity_head"] = {**entry, "temperature": 1.3, "neutral_band": None}
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    torch.manual_seed(3)
    head = build_entity_head(config["entity_head"])
    if request.param == "mention_layer":  # trained layer weights, a marker that matters
        head.init_from(encoder.encoder.layer)
        torch.nn.init.normal_(head.marker, std=1.0)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()},
              str(out / ENTITY_WEIGHTS))
    return out


def test_onnx_and_torch_heads_agree(folder):
    torch_probs = PassEntitySentiment(LoraSentiment(folder, "minilm-lora")).probs(ITEMS)
    onnx_probs = PassEntitySentiment(_lora_class()(folder, "minilm-lora")).probs(ITEMS)
    for a, b, (_, spans) in zip(torch_probs, onnx_probs, ITEMS, strict=True):
        assert a.shape == b.shape == (len(spans), 3)
        assert np.allclose(a.sum(axis=1), 1.0, atol=1e-5)
        assert np.abs(a - b).max() < 0.05  # the int8 pass against fp32


def test_scoring_names_runs_no_second_pass(folder):
    """After the pass has run the sentences (the run's embed and sentiment steps), the head
    reads its kept states: no sentence is encoded again."""
    model = _lora_class()(folder, "minilm-lora")
    model.outputs([t for t, _ in ITEMS])
    runs = model.cache.misses
    calls = []
    compute = model._compute
    model._compute = lambda sentences: calls.append(sentences) or compute(sentences)
    head = PassEntitySentiment(model)
    head.probs(ITEMS)
    assert calls == [] and model.cache.misses == runs
    assert model.states.hits == len(ITEMS) and model.states.misses == 0


def test_a_sentence_whose_states_were_dropped_runs_again_with_the_same_numbers(folder):
    model = _lora_class()(folder, "minilm-lora")
    kept = PassEntitySentiment(model)
    model.outputs([t for t, _ in ITEMS])
    first = kept.probs(ITEMS)
    model.states.clear()
    again = PassEntitySentiment(model).probs(ITEMS)  # a fresh head: no cached results
    assert model.states.misses == len(ITEMS)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)


def test_a_name_scores_the_same_alone_or_beside_another_name(folder):
    """Each mention's features are its own tokens' and its sentence's: adding another
    mention (a watchlist name) to the item changes no other mention's probabilities."""
    head = PassEntitySentiment(LoraSentiment(folder, "minilm-lora"))
    text, spans = ITEMS[1]
    both = head.probs([(text, spans)])[0]
    alone = head.probs([(text, spans[:1])])[0]
    assert np.allclose(both[0], alone[0], atol=1e-6)


def test_training_reads_the_features_serving_reads(folder):
    """The trainer's entity logits (padded batch, peft model) equal the served head's on the
    same weights (each sentence alone, merged adapter, float16 states)."""
    import torch
    from safetensors.torch import load_file

    from tasks.models.entity_sentiment import build_entity_head, is_layered
    from tasks.training.train_entity_head import States
    from tasks.training.train_news_sentiment import NewsModel

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))["entity_head"]
    mentions = [Mention(text, a, b, 0, "test") for text, spans in ITEMS for a, b in spans]
    if is_layered(config):  # the head alone on the frozen pass's states
        states = States(folder, config["features"]["span_layers"], progress=False)
        states.add([m.text for m in mentions])
        head = build_entity_head(config)
        head.load_state_dict(load_file(str(folder / ENTITY_WEIGHTS)))
        with torch.no_grad():
            trained = head.eval()(*states.batch(mentions)).numpy()
    else:
        model = NewsModel(folder, hidden=64, entity_hidden=32)
        model.entity_head.load_state_dict(load_file(str(folder / ENTITY_WEIGHTS)))
        trained = model.eval_entities(mentions, model.mention_spans(mentions))
    served = np.concatenate(PassEntitySentiment(LoraSentiment(folder, "minilm-lora"))
                            .logits([(m.text, ((m.start, m.end),)) for m in mentions]))
    assert trained.shape == served.shape == (len(mentions), 3)
    assert np.abs(trained - served).max() < 0.02
    assert torch.is_grad_enabled()  # evaluation left training mode as it found it
