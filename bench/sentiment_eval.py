"""Sentiment quality on data the models never trained on, models side by side.

Sets (labels by each model's own rule: the neutral band where it has one, else argmax):
- SST-2 dev (872 movie-review sentences, negative/positive): the sign of `sentiment_score`.
- Financial PhraseBank low-agreement held-out part (`tasks.training.train_head.fpb_split`), TFNS
  validation split (2,388 finance tweets), SEntFiN held-out part (`tasks.training.sentiment_data`):
  3-class accuracy, macro-F1, recall, confusion.
- The news check (`tests/data/news_headlines.tsv`, written for this project): plainly
  negative and positive headlines; the share of each whose score has the right sign.
- The team's news documents (`tasks.training.news_docs`, test split; `--doc-split dev` for
  the split choices were made on): whole documents (title and text, cleaned by the clean
  step) scored as runs score them; accuracy, macro-F1 and, on items labelled clear and
  polar, the label and the score's sign, overall, per source and per topic.
- With `--pooling-grid`: documents composed of held-out units (a SEntFiN held-out headline as
  title, FPB held-out sentences as body) scored with each pooling (see `pooling_documents`).

Each text is one single-unit document through the model's `score`, as the pipeline scores.
Reads ../shared/eval and ../shared/train beside the checkout (not in the repo).

    python -m bench.sentiment_eval                          # built-in default, torch and onnx
    python -m bench.sentiment_eval --lora old=/tmp/old-lora --pooling-grid
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EVAL_DIR = SHARED / "eval"
TRAIN_DIR = SHARED / "train"
NEWS_CHECK = REPO / "tests" / "data" / "news_headlines.tsv"
TARGETS = {"tfns_valid": 0.86, "sentfin_heldout": 0.85, "sst2_dev": 0.87, "fpb_heldout": 0.70,
           "news_negative": 0.90, "news_positive": 0.90}


def require_shared() -> None:
    """Fail in one line when the evaluation data is not beside the checkout."""
    needed = (EVAL_DIR / "sst2" / "dev.tsv", EVAL_DIR / "fpb_lowagree.tsv",
              TRAIN_DIR / "tfns_valid.tsv", TRAIN_DIR / "sentfin.tsv")
    missing = [p for p in needed if not p.is_file()]
    if missing:
        sys.exit(f"bench.sentiment_eval reads evaluation data from {SHARED} (beside the "
                 f"checkout); not found: {', '.join(map(str, missing))}")


def load_sets() -> dict[str, tuple[list[str], np.ndarray]]:
    """Every evaluation set: texts and label indices (SST-2 and the news check: 0/1)."""
    from tasks.record import SENTIMENT_LABELS
    from tasks.training.sentiment_data import read_labelled, sentfin_split
    from tasks.training.train_head import fpb_split, read_tsv

    def three(rows):
        return [t for t, _ in rows], np.array([SENTIMENT_LABELS.index(y) for _, y in rows])

    dev = read_tsv(EVAL_DIR / "sst2" / "dev.tsv")
    news = read_labelled(NEWS_CHECK)
    return {
        "sst2_dev": ([t for t, _ in dev], np.array([int(y) for _, y in dev])),
        "fpb_heldout": three(fpb_split(read_tsv(EVAL_DIR / "fpb_lowagree.tsv"))[1]),
        "tfns_valid": three(read_labelled(TRAIN_DIR / "tfns_valid.tsv")),
        "sentfin_heldout": three(sentfin_split(read_labelled(TRAIN_DIR / "sentfin.tsv"))[1]),
        "news_check": ([t for t, _ in news], np.array([int(y == "positive") for _, y in news])),
    }


def score_units(model, texts: list[str]) -> tuple[np.ndarray, list[str]]:
    """(n, 3) probabilities and labels of `texts`, each a single-unit document."""
    from tasks.models.encoder import load_encoder
    from tasks.record import Document
    from tasks.steps.embed import embed_sentences

    docs = [Document(doc_id=str(i), source="bench", raw_text=t, text=t, sentences=[t])
            for i, t in enumerate(texts)]
    if getattr(model, "needs_embeddings", False):
        embed_sentences(docs, load_encoder())
    model.score(docs)
    return (np.array([d.sentiment_probs for d in docs], dtype=np.float64),
            [d.sentiment for d in docs])


def evaluate(model, sets: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, Any]:
    """Figures of one model on every set, with the probabilities kept for pooling."""
    from tasks.record import SENTIMENT_LABELS
    from tasks.training.train_head import three_class_metrics

    out: dict[str, Any] = {"model": model.provenance(), "probs": {}}
    for name, (texts, y) in sets.items():
        t0 = time.perf_counter()
        probs, labels = score_units(model, texts)
        out["probs"][name] = probs
        score = probs[:, 2] - probs[:, 0]
        if name in ("sst2_dev", "news_check"):
            sign_ok = (score > 0).astype(int) == y
            out[name] = {"rows": len(y), "accuracy": float(sign_ok.mean())}
            if name == "news_check":
                out["news_negative"] = {"rows": int((y == 0).sum()),
                                        "accuracy": float(sign_ok[y == 0].mean())}
                out["news_positive"] = {"rows": int((y == 1).sum()),
                                        "accuracy": float(sign_ok[y == 1].mean())}
                out["news_label_accuracy"] = float(np.mean(
                    [lab == ("positive" if t else "negative") for lab, t in zip(labels, y,
                                                                                 strict=True)]))
                out["news_errors"] = [(texts[i], round(float(score[i]), 3), labels[i])
                                      for i in np.flatnonzero(~sign_ok)]
        else:
            pred = np.array([SENTIMENT_LABELS.index(lab) for lab in labels])
            onehot = np.eye(3)[pred]  # the model's own labels, scored as probabilities
            out[name] = three_class_metrics(onehot, y)
        out[name]["seconds"] = round(time.perf_counter() - t0, 1)
    out["consistency_violations"] = _consistency(out["probs"], model)
    return out


def _consistency(probs: dict[str, np.ndarray], model) -> int:
    """Rows whose label points against the score's sign (0 by construction with a band)."""
    band = getattr(model, "band", None)
    if band is None:
        return -1  # argmax models: not guaranteed, not counted
    from tasks.models.sentiment_base import label_indices

    bad = 0
    for p in probs.values():
        labels, score = label_indices(p, band), p[:, 2] - p[:, 0]
        bad += int(((labels == 2) & (score <= 0)).sum() + ((labels == 0) & (score >= 0)).sum()
                   + ((labels == 1) & (np.abs(score) >= band) & (band > 0)).sum())
    return bad


def pooling_documents(seed: int = 7) -> list[dict[str, Any]]:
    """Documents composed from held-out units, with the label a reader would give them.

    Polar documents: a polar SEntFiN held-out headline as title (or none), and a body of 2 FPB
    held-out sentences of the same polarity among 6 neutral ones -> that polarity. Neutral
    documents: a neutral headline (or none), and 8 neutral sentences, or 6 neutral with one
    positive and one negative -> neutral. 200 of each kind.
    """
    from tasks.training.sentiment_data import read_labelled, sentfin_split
    from tasks.training.train_head import fpb_split, read_tsv

    rng = np.random.default_rng(seed)
    heads = sentfin_split(read_labelled(TRAIN_DIR / "sentfin.tsv"))[1]
    body = fpb_split(read_tsv(EVAL_DIR / "fpb_lowagree.tsv"))[1]
    pools = {lab: [t for t, y in body if y == lab] for lab in ("negative", "neutral", "positive")}
    titles = {lab: [t for t, y in heads if y == lab] for lab in ("negative", "neutral", "positive")}

    def pick(lab: str, k: int) -> list[str]:
        return [pools[lab][i] for i in rng.choice(len(pools[lab]), k, replace=False)]

    docs = []
    for titled in (True, False):
        for lab in ("negative", "positive"):
            for _ in range(100):
                sentences = pick(lab, 2) + pick("neutral", 6)
                rng.shuffle(sentences)
                title = titles[lab][rng.integers(len(titles[lab]))] if titled else None
                docs.append({"title": title, "sentences": sentences, "label": lab})
        for mixed in (False, True):
            for _ in range(100):
                sentences = (pick("neutral", 6) + pick("positive", 1) + pick("negative", 1)
                             if mixed else pick("neutral", 8))
                rng.shuffle(sentences)
                title = titles["neutral"][rng.integers(len(titles["neutral"]))] if titled else None
                docs.append({"title": title, "sentences": sentences, "label": "neutral"})
    return docs


POOLING_GRID = [("mean", {}), ("polar", {})] + [
    ("news", {"title_weight": tw, "lead_sentences": 2, "lead_weight": lw, "polar": pol})
    for tw in (0.0, 0.25, 0.5, 0.75) for lw in (1.0, 2.0) for pol in (0.0, 1.0)]


def pooling_grid(model, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Document accuracy (and per-kind) of each pooling on `docs`, one encoder pass."""
    from tasks.models.sentiment_base import label_indices, pool_probs
    from tasks.record import SENTIMENT_LABELS

    units = sorted({u for d in docs for u in ([d["title"]] if d["title"] else []) + d["sentences"]})
    probs, _ = score_units(model, units)
    index = {u: i for i, u in enumerate(units)}
    band = getattr(model, "band", None)
    y = np.array([SENTIMENT_LABELS.index(d["label"]) for d in docs])
    rows = []
    for pooling, params in POOLING_GRID:
        pooled = np.array([
            pool_probs(probs[[index[u] for u in ([d["title"]] if d["title"] else [])
                              + d["sentences"]]], pooling, bool(d["title"]), params)
            for d in docs])
        pred = pooled.argmax(axis=1) if band is None else label_indices(pooled, band)
        ok = pred == y
        titled = np.array([bool(d["title"]) for d in docs])
        rows.append({"pooling": pooling, "params": params, "accuracy": float(ok.mean()),
                     "titled": float(ok[titled].mean()), "untitled": float(ok[~titled].mean()),
                     "polar_docs": float(ok[y != 1].mean()),
                     "neutral_docs": float(ok[y == 1].mean())})
    return rows


ROWS = [("TFNS validation accuracy", "tfns_valid", "accuracy"),
        ("TFNS validation macro-F1", "tfns_valid", "macro_f1"),
        ("SEntFiN held-out accuracy", "sentfin_heldout", "accuracy"),
        ("SEntFiN held-out macro-F1", "sentfin_heldout", "macro_f1"),
        ("SST-2 dev accuracy (sign)", "sst2_dev", "accuracy"),
        ("FPB low-agree held-out accuracy", "fpb_heldout", "accuracy"),
        ("FPB low-agree held-out macro-F1", "fpb_heldout", "macro_f1"),
        ("news check negative, right sign", "news_negative", "accuracy"),
        ("news check positive, right sign", "news_positive", "accuracy")]


def format_comparison(results: dict[str, dict[str, Any]]) -> str:
    """Models side by side (one column each), with the issue's targets."""
    names = list(results)
    width = max(14, *(len(n) + 2 for n in names))
    lines = [f"{'metric':<36}" + "".join(f"{n:>{width}}" for n in names) + f"{'target':>9}"]
    for title, key, field in ROWS:
        cells = "".join(f"{results[n][key][field]:>{width}.1%}" for n in names)
        target = f"≥{TARGETS[key]:.0%}" if key in TARGETS and field == "accuracy" else ""
        lines.append(f"{title:<36}{cells}{target:>9}")
    violations = [results[n]["consistency_violations"] for n in names]
    lines.append(f"{'labels against the score (by rule)':<36}" + "".join(
        f"{v if v >= 0 else 'n/a':>{width}}" for v in violations))
    first = results[names[0]]
    lines.append("rows: " + ", ".join(f"{k} {first[k]['rows']}" for k in
                                      ("tfns_valid", "sentfin_heldout", "sst2_dev", "fpb_heldout",
                                       "news_negative", "news_positive")))
    lines += [f"{n}: {results[n]['model']['name']} {results[n]['model']['revision']}"
              for n in names]
    return "\n".join(lines)


def format_confusions(result: dict[str, Any]) -> str:
    from tasks.record import SENTIMENT_LABELS

    lines = []
    for key in ("tfns_valid", "sentfin_heldout", "fpb_heldout"):
        lines.append(f"{key} confusion (rows true, cols predicted: {' / '.join(SENTIMENT_LABELS)})")
        lines += [f"  {lab:<10}" + "".join(f"{n:>7}" for n in row)
                  for lab, row in zip(SENTIMENT_LABELS, result[key]["confusion"], strict=True)]
    return "\n".join(lines)


def load_variant(spec: str):
    """`NAME` (a built-in, torch), `NAME@onnx`, or `LABEL=FOLDER[@onnx]` (a LoRA folder)."""
    from tasks.models.onnx_backend import _lora_class, load_onnx_sentiment
    from tasks.models.sentiment import LoraSentiment, load_sentiment

    backend = "onnx" if spec.endswith("@onnx") else "torch"
    spec = spec.removesuffix("@onnx")
    if "=" in spec:
        label, folder = spec.split("=", 1)
        model = (_lora_class()(Path(folder), label) if backend == "onnx"
                 else LoraSentiment(Path(folder), label))
        return model
    return load_onnx_sentiment(spec) if backend == "onnx" else load_sentiment(spec)


def document_groups(meta: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Row masks: all, each source, each source's topics with 15 or more rows."""
    from collections import Counter

    groups = {"all": np.ones(len(meta), dtype=bool)}
    for source in sorted({m["source"] for m in meta}):
        groups[source] = np.array([m["source"] == source for m in meta])
    topics = Counter((m["source"], m["topic"]) for m in meta)
    for (source, topic), n in sorted(topics.items()):
        if n >= 15:
            groups[f"{source}/{topic}"] = np.array([(m["source"], m["topic"]) == (source, topic)
                                                    for m in meta])
    return groups


def evaluate_documents(model, split: str = "test") -> dict[str, Any]:
    """The document figures of one model on the team's labelled news documents."""
    from tasks.record import SENTIMENT_LABELS
    from tasks.training import news_docs
    from tasks.training.news_docs import doc_metrics, news_documents

    items = news_docs.labelled_items(split)
    docs = model.score(news_documents(items))
    probs = np.array([d.sentiment_probs for d in docs], dtype=np.float64)
    pred = np.array([SENTIMENT_LABELS.index(d.sentiment) for d in docs])
    y = np.array([SENTIMENT_LABELS.index(i["label"]) for i in items])
    out = {"split": split, "groups": {}}
    for name, mask in document_groups(items).items():
        meta = [i for i, k in zip(items, mask, strict=True) if k]
        # the labels as the rows hold them (each document's own band)
        out["groups"][name] = doc_metrics(probs[mask], y[mask], meta, None, pred=pred[mask])
    out["confusion"] = [[int(((y == a) & (pred == b)).sum()) for b in range(3)] for a in range(3)]
    out["neutral_share"] = float((pred == 1).mean())
    return out


def format_documents(results: dict[str, dict[str, Any]]) -> str:
    """Document figures side by side: accuracy / macro-F1 / clear polar label / sign."""
    names = [n for n in results if "documents" in results[n]]
    if not names:
        return ""
    first = results[names[0]]["documents"]
    lines = [f"team news documents, {first['split']} split: accuracy / macro-F1 / clear polar "
             "label / clear polar sign (rows)",
             f"{'group':<28}" + "".join(f"{n:>34}" for n in names)]

    def pct(v):
        return "  -  " if v is None else f"{v:5.1%}"

    for group, g in first["groups"].items():
        cells = []
        for n in names:
            m = results[n]["documents"]["groups"][group]
            cells.append(f"{pct(m['accuracy'])} / {pct(m['macro_f1'])} / "
                         f"{pct(m['clear_polar_label'])} / {pct(m['clear_polar_sign'])}")
        lines.append(f"{group + ' (' + str(g['rows']) + ')':<28}" + "".join(f"{c:>34}"
                                                                          for c in cells))
    lines.append("neutral share of the labels given: " + ", ".join(
        f"{n} {results[n]['documents']['neutral_share']:.1%}" for n in names))
    lines.append(f"(gold: {first['groups']['all']['rows']} rows; targets on test: accuracy "
                 "≥ 78 %, macro-F1 ≥ 75 %, clear polar label ≥ 90 %)")
    return "\n".join(lines)


def entity_label_check(result: dict[str, Any], sets: dict[str, tuple[list[str], np.ndarray]],
                       band: float | None) -> list[dict[str, Any]]:
    """Texts where the finder names exactly one entity: the document label against that
    entity's label (the `entities` column, ONNX as runs use it) on the same texts. SST-2
    and the news check are two-class: a label counts as right when its sign is. `band`: the
    document model's neutral band (None: arg-max)."""
    from tasks.models.chosen import ChosenModels
    from tasks.models.entity_finder import load_finder
    from tasks.models.sentiment_base import label_indices
    from tasks.record import SENTIMENT_LABELS, Document
    from tasks.steps.entities import entities_of

    finder, model = load_finder(), ChosenModels().load_entity_model()
    rows = []
    for name, (texts, y) in sets.items():
        docs = [Document(doc_id=str(i), source="bench", raw_text=t, text=t, sentences=[t])
                for i, t in enumerate(texts)]
        entities_of(docs, finder, model)
        one = [i for i, d in enumerate(docs) if len(d.entities) == 1]
        probs = result["probs"][name][one]
        ent = np.array([SENTIMENT_LABELS.index(docs[i].entities[0]["sentiment"]) for i in one])
        doc = probs.argmax(axis=1) if band is None else label_indices(probs, band)
        gold = y[one]
        ent_score = np.array([docs[i].entities[0]["score"] for i in one])
        mean = (probs[:, 2] - probs[:, 0] + ent_score) / 2  # the two scores averaged
        if name in ("sst2_dev", "news_check"):  # 0/1 gold: right when the sign is
            doc_ok = (probs[:, 2] - probs[:, 0] > 0).astype(int) == gold
            ent_ok = (ent_score > 0).astype(int) == gold
            mean_ok = (mean > 0).astype(int) == gold
        else:
            doc_ok, ent_ok = doc == gold, ent == gold
            mean_ok = label_indices(np.stack([(1 - mean) / 2, np.zeros_like(mean),
                                              (1 + mean) / 2], axis=1), band or 0.0) == gold
        rows.append({"set": name, "texts": len(texts), "one_entity": len(one),
                     "doc_label": float(doc_ok.mean()) if one else None,
                     "entity_label": float(ent_ok.mean()) if one else None,
                     "mean_score": float(mean_ok.mean()) if one else None})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append",
                        help="NAME (built-in, torch fp32), NAME@onnx (int8), LABEL=FOLDER or "
                             "LABEL=FOLDER@onnx (a LoRA folder); repeatable. Default: "
                             "minilm-lora and minilm-lora@onnx")
    parser.add_argument("--pooling-grid", action="store_true",
                        help="also score composed documents with each pooling")
    parser.add_argument("--entity-label", action="store_true",
                        help="also compare, on texts naming exactly one entity, the document "
                             "label with that entity's label")
    parser.add_argument("--doc-split", default="test", choices=("train", "dev", "test", "none"),
                        help="the team's news documents split to score (none: skip)")
    parser.add_argument("--errors", type=int, default=10, help="news-check errors to list")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    require_shared()
    sets = load_sets()
    results = {}
    for spec in args.model or ["minilm-lora", "minilm-lora@onnx"]:
        t0 = time.perf_counter()
        model = load_variant(spec)
        results[spec] = evaluate(model, sets)
        if args.doc_split != "none":
            results[spec]["documents"] = evaluate_documents(model, args.doc_split)
        if args.entity_label:
            results[spec]["entity_label"] = entity_label_check(
                results[spec], sets, getattr(model, "band", None))
        if args.pooling_grid:
            results[spec]["pooling"] = pooling_grid(model, pooling_documents())
        print(f"[{spec}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    print(format_comparison(results))
    print(format_documents(results))
    for spec, result in results.items():
        for row in result.get("entity_label", []):
            print(f"{spec} one-entity texts, {row['set']}: {row['one_entity']} of "
                  f"{row['texts']}; document label {row['doc_label']:.1%}, entity label "
                  f"{row['entity_label']:.1%}, the two scores averaged "
                  f"{row['mean_score']:.1%}" if row["one_entity"] else
                  f"{spec} one-entity texts, {row['set']}: none")
    for spec, result in results.items():
        print(f"\n## {spec}\n{format_confusions(result)}")
        errors = result["news_errors"][: args.errors]
        print(f"news check: {len(result['news_errors'])} wrong sign; label accuracy "
              f"{result['news_label_accuracy']:.1%}")
        print("\n".join(f"  {score:+.3f} {label:<8} {text}" for text, score, label in errors))
        if "pooling" in result:
            print("pooling on composed documents (accuracy: all / titled / untitled / polar "
                  "docs / neutral docs)")
            for row in result["pooling"]:
                print(f"  {row['pooling']:<6} {json.dumps(row['params']):<72} "
                      f"{row['accuracy']:.1%} / {row['titled']:.1%} / {row['untitled']:.1%} / "
                      f"{row['polar_docs']:.1%} / {row['neutral_docs']:.1%}")
    if args.json:
        for result in results.values():
            result.pop("probs", None)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    main()
