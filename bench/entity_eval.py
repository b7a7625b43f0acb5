"""Score target mentions with the built-in entity model as the pipeline does; print accuracy
and macro-F1.

    python -m bench.entity_eval --input ../shared/train/newsmtsc_dev_rw.jsonl \\
        [--predictions preds.jsonl] [--backend onnx|torch]
    python -m bench.entity_eval --sentfin ../shared/train/sentfin.tsv   # its held-out entities
    python -m bench.entity_eval --headlines tests/data/two_entity_headlines.jsonl
    python -m bench.entity_eval --articles   # the team's 30 labelled news items

Input: the NewsMTSC format, one JSON object a line with `sentence`, `from`, `to`, `mention`
and `polarity` (-1, 0, 1). Each mention runs alone through the entity model (ONNX int8 by
default, as `textdigest run`); its label follows the model's neutral band, as the
`entities` column's. `--predictions` writes one line per input row: `pred` (-1/0/1) and
`score` (p(positive) - p(negative)), with the row's `id` when it has one.

`--headlines`: one JSON object a line, `text` and `signs` ({name: 1 or -1}); runs the whole
`entities` step (finder and model) on each text as a title and counts the names found, the
signs right, and for two names of opposite news the right order and opposite signs.

`--main-subject`: the team's news documents (`tasks.training.news_docs`, `--split`) that
have a title and more than two sentences; for each number of `--sentences` read after the
title, the row of the first entity the title names (a word of its name is in the title: the
story's main subject; documents where every reading finds one) against the
document's label (the news for its main subject): accuracy, macro-F1, and on clear good or bad
news the sign of its score. How much of the article entity sentiment should pool.

`--articles`: the team's entity set (`tasks.training.news_entities`: 30 headline-first news
items, title and lead, every entity labelled twice); runs the pipeline's clean and entities
steps on each and scores the rows: (name, type) precision and recall, and entities split
into two rows. `--predictions` writes each item's rows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np


def read_rows(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        sentence, a, b = row["sentence"], int(row["from"]), int(row["to"])
        if "mention" in row and sentence[a:b] != row["mention"]:
            raise SystemExit(f"{path}:{number}: sentence[from:to] is {sentence[a:b]!r}, "
                             f"not the mention {row['mention']!r}")
        rows.append(row)
    return rows


def sentfin_rows(path: Path) -> list[dict]:
    """SEntFiN's held-out entities as NewsMTSC rows (`mixed` headlines included)."""
    from tasks.training.entity_data import read_sentfin

    heldout = read_sentfin(path)[0]["heldout"]
    return [{"id": f"sentfin-{i}", "sentence": m.text, "from": m.start, "to": m.end,
             "mention": m.text[m.start:m.end], "polarity": m.label - 1}
            for i, m in enumerate(heldout)]


def headline_counts(path: Path, model) -> dict[str, object]:
    """The `--headlines` figures (module docstring)."""
    from tasks.models.entity_finder import load_finder
    from tasks.record import Document
    from tasks.steps.entities import entities_of

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    docs = [Document(doc_id=str(i), source=str(path), raw_text=r["text"], title=r["text"])
            for i, r in enumerate(rows)]
    entities_of(docs, load_finder(), model)
    out = {"headlines": len(rows), "names": 0, "found": 0, "sign_right": 0, "opposite": 0,
           "order_right": 0, "opposite_signs": 0, "rows": []}
    for row, doc in zip(rows, docs, strict=True):
        scores = {e["name"]: e["score"] for e in doc.entities}
        got = {}
        for name, sign in row["signs"].items():
            out["names"] += 1
            hit = next((v for k, v in scores.items() if name.casefold() in k.casefold()), None)
            if hit is not None:
                out["found"] += 1
                got[name] = hit
                out["sign_right"] += (hit > 0) == (sign > 0) and hit != 0
        signs = row["signs"]
        if sorted(signs.values()) == [-1, 1]:
            out["opposite"] += 1
            good = next(k for k, v in signs.items() if v > 0)
            bad = next(k for k, v in signs.items() if v < 0)
            if good in got and bad in got:
                out["order_right"] += got[good] > got[bad]
                out["opposite_signs"] += got[good] > 0 > got[bad]
        out["rows"].append({"text": row["text"], "scores": {k: round(v, 3) for k, v in
                                                            got.items()}})
    return out


def article_counts(model, with_reuters: bool = True) -> dict[str, object]:
    """The `--articles` figures (module docstring), per source and overall."""
    from tasks.models.entity_finder import load_finder
    from tasks.steps.entities import entities_of
    from tasks.training.news_docs import news_documents
    from tasks.training.news_entities import items, score

    labelled = items(with_reuters)
    docs = news_documents(labelled)
    entities_of(docs, load_finder(), model)
    rows = [[{"name": e["name"], "type": e["type"]} for e in d.entities] for d in docs]
    out: dict[str, object] = {"all": score(rows, [i["entities"] for i in labelled])}
    for source in sorted({i["source"] for i in labelled}):
        pick = [k for k, i in enumerate(labelled) if i["source"] == source]
        out[source] = score([rows[k] for k in pick], [labelled[k]["entities"] for k in pick])
    out["rows"] = [{"id": i["id"], "entities": r} for i, r in zip(labelled, rows, strict=True)]
    return out


def main_subject_counts(model, split: str, sentences: list[int]) -> dict[str, object]:
    """The `--main-subject` figures (module docstring), per number of sentences read."""
    from tasks.models.entity_finder import load_finder
    from tasks.record import SENTIMENT_LABELS
    from tasks.steps.entities import entities_of
    from tasks.training.news_docs import labelled_items, macro_f1, news_documents

    items = [i for i in labelled_items(split) if (i.get("title") or "").strip()]
    longer = [i for i, d in zip(items, news_documents(items), strict=True)
              if len(d.sentences) > 2]
    words = lambda text: set(re.findall(r"\w+", text.casefold()))  # noqa: E731
    mains = {}
    for n in sentences:
        docs = entities_of(news_documents(longer), load_finder(), model, sentences=n)
        mains[n] = [next((e for e in d.entities if words(e["name"]) & words(d.title)), None)
                    for d in docs]
    both = [k for k in range(len(longer)) if all(mains[n][k] for n in sentences)]
    out: dict[str, object] = {"split": split, "documents": len(longer), "rows": len(both)}
    for n in sentences:
        pred, gold, signs = [], [], []
        for k in both:
            item, main = longer[k], mains[n][k]
            pred.append(SENTIMENT_LABELS.index(main["sentiment"]))
            gold.append(SENTIMENT_LABELS.index(item["label"]))
            if item["clarity"] == "clear" and item["label"] != "neutral":
                signs.append((main["score"] > 0) == (item["label"] == "positive")
                             and main["score"] != 0)
        p, y = np.array(pred), np.array(gold)
        out[f"sentences_{n}"] = {"accuracy": round(float((p == y).mean()), 4),
                                 "macro_f1": round(macro_f1(p, y), 4),
                                 "clear_polar_rows": len(signs),
                                 "clear_polar_sign": round(float(np.mean(signs)), 4)}
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="NewsMTSC-format JSONL")
    source.add_argument("--sentfin", type=Path,
                        help="SEntFiN TSV: score its held-out entities (hash split, "
                             "tasks.training.entity_data), each entity's first mention")
    source.add_argument("--headlines", type=Path,
                        help="JSONL of texts with the expected sign per name (docstring)")
    source.add_argument("--articles", action="store_true",
                        help="the team's 30 labelled news items: entity rows' (name, type) "
                             "precision and recall")
    source.add_argument("--main-subject", action="store_true",
                        help="the team's titled news documents longer than the title and two "
                             "sentences: the label of the entity the title names against the "
                             "document's label, reading --sentences after the title")
    p.add_argument("--split", default="dev", help="--main-subject: the team set's split")
    p.add_argument("--sentences", type=int, nargs="+", default=[0, 2, 5, 15],
                   help="--main-subject: sentences read after the title")
    p.add_argument("--predictions", type=Path, default=None)
    p.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    p.add_argument("--minilm-entity", action="store_true",
                   help="score with the separate minilm-entity model (its own second pass), "
                        "not the shared pass's entity head")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="a packaged entity model folder to score with (torch), instead of "
                        "the built-in one")
    args = p.parse_args(argv)

    from tasks.models.chosen import ChosenModels
    from tasks.models.sentiment_base import label_indices
    from tasks.training.train_head import three_class_metrics

    if args.model_dir:
        from tasks.models.entity_sentiment import EntitySentiment

        model, args.backend = EntitySentiment(args.model_dir), "torch"
    elif args.minilm_entity:
        from tasks.models.entity_sentiment import EntitySentiment
        from tasks.models.onnx_backend import load_onnx_entity_model

        model = load_onnx_entity_model() if args.backend == "onnx" else EntitySentiment()
    else:
        model = ChosenModels(backend=args.backend).load_entity_model()
    if args.main_subject:
        counts = main_subject_counts(model, args.split, args.sentences)
        json.dump(counts, sys.stdout)
        print()
        return counts
    if args.articles or args.headlines:
        counts = article_counts(model) if args.articles else headline_counts(args.headlines,
                                                                             model)
        if args.predictions:
            args.predictions.write_text("".join(json.dumps(r) + "\n" for r in counts["rows"]),
                                        encoding="utf-8")
        json.dump({k: v for k, v in counts.items() if k != "rows"}, sys.stdout)
        print()
        return counts
    rows = read_rows(args.input) if args.input else sentfin_rows(args.sentfin)
    probs = model.probs([(r["sentence"], ((int(r["from"]), int(r["to"])),)) for r in rows])
    probs = np.concatenate(probs) if probs else np.zeros((0, 3), dtype=np.float32)
    pred = (probs.argmax(axis=1) if model.band is None
            else label_indices(probs, model.band)) - 1  # 0/1/2 -> -1/0/1
    out = {"rows": len(rows), "backend": args.backend, "neutral_band": model.band}
    if rows and all("polarity" in r for r in rows):
        y = np.array([int(r["polarity"]) + 1 for r in rows])
        ruled = three_class_metrics(probs, y, model.band)  # the column's label rule
        out |= {"accuracy": ruled["accuracy"], "macro_f1": ruled["macro_f1"],
                "recall": ruled["recall"], "confusion": ruled["confusion"]}
    if args.predictions:
        with args.predictions.open("w", encoding="utf-8") as fh:
            for r, k, pr in zip(rows, pred, probs, strict=True):
                line = {"pred": int(k), "score": round(float(pr[2] - pr[0]), 6)}
                if "id" in r:
                    line = {"id": r["id"], **line}
                fh.write(json.dumps(line) + "\n")
    json.dump(out, sys.stdout)
    print()
    return out


if __name__ == "__main__":
    main()
