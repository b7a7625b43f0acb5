"""The team's labelled news documents: complete, consistently split, and what the card says.

Reads only the committed files (`tasks/training/news_docs/`): the labels, and the HuffPost
text that its CC BY 4.0 licence lets the repository carry.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from tasks.training import news_docs

ROWS = list(news_docs.read_labels().values())
CARD = (news_docs.SET_DIR / "README.md").read_text(encoding="utf-8")


def test_the_set_is_large_and_spans_its_sources():
    assert len(ROWS) >= 1500  # the floor
    sources = Counter(r["source"] for r in ROWS)
    assert set(sources) == {"huffpost", "reuters", "cnndm"}
    assert all(n >= 100 for n in sources.values())
    # multi-topic: the HuffPost part holds a dozen categories of 15 items or more
    topics = Counter(r["topic"] for r in ROWS if r["source"] == "huffpost")
    assert sum(n >= 15 for n in topics.values()) >= 12


def test_every_row_is_well_formed_and_settled():
    ids = [r["id"] for r in ROWS]
    assert len(set(ids)) == len(ids)
    for r in ROWS:
        assert r["label"] in news_docs.LABELS and r["clarity"] in ("clear", "borderline")
        assert r["reading_1"] in news_docs.LABELS and r["reading_2"] in news_docs.LABELS
        if r["reading_1"] == r["reading_2"]:
            assert r["settled_by"] == "agreed" and r["label"] == r["reading_1"]
        else:  # a disagreement is settled by the third reading, never left open
            assert r["settled_by"] == "settled"
        assert r["id"].startswith(r["source"] + ":")
        assert r["round"] in (1, 2, 3)


def test_the_entity_benchs_items_are_held_out():
    from tasks.training.news_entities import read_labels

    assert not {r["id"] for r in read_labels()} & {r["id"] for r in ROWS}


def test_splits_come_from_the_id_alone():
    for r in ROWS:
        assert r["split"] == news_docs.split_of(r["id"])
    share = Counter(r["split"] for r in ROWS)
    assert 0.55 < share["train"] / len(ROWS) < 0.75
    assert share["dev"] >= 150 and share["test"] >= 250
    # each split has all three labels, and clear polar items to measure the target on
    for split in ("train", "dev", "test"):
        part = [r for r in ROWS if r["split"] == split]
        assert set(Counter(r["label"] for r in part)) == set(news_docs.LABELS)
        assert sum(r["clarity"] == "clear" and r["label"] != "neutral" for r in part) >= 50


def test_the_card_states_the_agreement_the_labels_give():
    figures = news_docs.agreement(ROWS)
    for group, name in (("all", "all"), ("huffpost", "HuffPost"), ("reuters", "Reuters"),
                        ("cnndm", "CNN/DM")):
        row = re.search(rf"^\| {re.escape(name)} \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \|$", CARD,
                        re.M)
        assert row, f"no agreement row for {name} in the card"
        assert int(row[1].replace(",", "")) == figures[group]["items"]
        assert float(row[2]) == pytest.approx(figures[group]["agreement"], abs=5e-4)
        assert float(row[3]) == pytest.approx(figures[group]["kappa"], abs=5e-4)


def test_kappa_is_cohens():
    """Against a hand-worked case: 10 items, 8 agreed; p_e = (.5*.4 + .3*.4 + .2*.2)."""
    a = ["negative"] * 5 + ["neutral"] * 3 + ["positive"] * 2
    b = ["negative"] * 4 + ["neutral"] * 4 + ["positive"] * 2
    b[4], b[5] = "neutral", "negative"  # two disagreements
    observed, kappa = news_docs.cohen_kappa(a, b)
    assert observed == pytest.approx(0.8)
    expected = (5 * 5 + 3 * 3 + 2 * 2) / 100  # marginals: a 5/3/2, b 5/3/2
    assert kappa == pytest.approx((0.8 - expected) / (1 - expected))


def test_huffpost_text_ships_with_its_attribution_and_nothing_else_does():
    lines = news_docs.HUFFPOST_TEXT.read_text(encoding="utf-8").splitlines()
    text = {json.loads(line)["id"]: json.loads(line) for line in lines}
    huffpost = {r["id"] for r in ROWS if r["source"] == "huffpost"}
    assert set(text) == huffpost
    for row in text.values():  # CC BY 4.0: who wrote it and where it was published
        assert row["headline"] and row["short_description"] and row["link"].startswith("http")
        assert "authors" in row
    # research-use text (Reuters, CNN/DM) is keyed, not copied: no file here holds it
    shipped = " ".join(p.read_text(encoding="utf-8") for p in news_docs.SET_DIR.iterdir()
                       if p.suffix in (".jsonl", ".md"))
    assert "Shr loss" not in shipped and "(CNN)" not in shipped


def test_document_metrics_and_band():
    """doc_metrics counts what it says, and the fitted band is the one with the best F1."""
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[.8, .1, .1], [.3, .6, .1], [.2, .6, .2], [.1, .5, .4], [.1, .1, .8],
                      [.2, .2, .6]])
    meta = [{"clarity": c} for c in ("clear", "clear", "clear", "borderline", "clear",
                                     "borderline")]
    m = news_docs.doc_metrics(probs, y, meta, 0.25)
    # scores -0.7, -0.2, 0, 0.3, 0.7, 0.4: labels neg, neu, neu, pos, pos, pos
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["clear_polar_rows"] == 3 and m["clear_polar_label"] == pytest.approx(2 / 3)
    assert m["clear_polar_sign"] == pytest.approx(1.0)
    band = news_docs.fit_band(probs, y)
    best = max(news_docs.macro_f1(news_docs.labels_of(probs, b), y)
               for b in np.round(np.arange(0, 0.91, 0.01), 2))
    assert news_docs.macro_f1(news_docs.labels_of(probs, band), y) == pytest.approx(best)
