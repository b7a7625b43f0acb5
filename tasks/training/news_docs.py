"""The team's document-level news sentiment set: which items, how they read, how they split.

The items are public news from ../shared (HuffPost News Category headlines with their
description, Reuters-21578 stories, the CNN/DailyMail dev articles), chosen by a hash of their
id so the choice does not depend on file order; the labels are the team's own
(`tasks/training/news_docs/labels.jsonl`, guidelines and data card beside it). Each item is
a document as a run sees it: a title (none for CNN/DM) and a body.

    python -m tasks.training.news_docs items OUT.jsonl   # the pool to label, with text
    python -m tasks.training.news_docs agreement         # Cohen's kappa of the two readings
    python -m tasks.training.news_docs huffpost          # write huffpost_items.jsonl
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tasks.models.sentiment_base import label_indices
from tasks.record import Document
from tasks.training.train_head import text_bucket

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
HUFFPOST = SHARED / "train" / "news_category_v3.jsonl"
REUTERS = [SHARED / "train" / "reuters21578" / f"reut2-00{k}.sgm" for k in (1, 2, 4)]
CNNDM = SHARED / "eval" / "cnndm" / "dev.jsonl"
SET_DIR = Path(__file__).resolve().parent / "news_docs"
LABELS_FILE = SET_DIR / "labels.jsonl"
HUFFPOST_TEXT = SET_DIR / "huffpost_items.jsonl"  # CC BY 4.0: the text ships
# The entity bench's items (tasks.training.news_entities), held out of this set.
ENTITY_BENCH = SET_DIR.parent / "news_entities" / "labels.jsonl"

LABELS = ("negative", "neutral", "positive")
# How many items of each HuffPost category (the rest from "other"), and of each Reuters topic.
HUFFPOST_QUOTA = {"POLITICS": 600, "ENTERTAINMENT": 420, "U.S. NEWS": 380, "WORLD NEWS": 420,
                  "SPORTS": 209, "CRIME": 193, "BUSINESS": 65, "MONEY": 49, "ENVIRONMENT": 100,
                  "MEDIA": 120, "TECH": 38, "SCIENCE": 34, "WEIRD NEWS": 100, "other": 140}
REUTERS_QUOTA = {"earn": 420, "acq": 286, "other": 900}
SPLIT_RULE = ("text_bucket(id) = sha256(id) first 8 hex digits mod 100: "
              "< 65 train, 65-79 dev, >= 80 test")
LICENCES = {
    "huffpost": "News Category Dataset v3 (Misra, 2022): CC BY 4.0; headline and description "
                "ship with the labels",
    "reuters": "Reuters-21578, Distribution 1.0 (Lewis): research use; labels ship keyed by "
               "NEWID, the text does not",
    "cnndm": "CNN/DailyMail (Hermann et al., 2015; See et al., 2017): research use; labels "
             "ship keyed by the article id, the text does not",
}


def split_of(item_id: str) -> str:
    """The fixed split of an item, from its id alone (`text_bucket`, as every split here)."""
    b = text_bucket(item_id)
    return "train" if b < 65 else "dev" if b < 80 else "test"


def _order(item_id: str) -> str:
    return hashlib.sha256(b"pick:" + item_id.encode("utf-8")).hexdigest()


def _take(items: list[dict], key: str, quota: dict[str, int]) -> list[dict]:
    """Items in hash order, at most quota[group] per group (unknown groups count as other)."""
    taken: Counter = Counter()
    out = []
    for item in sorted(items, key=lambda i: _order(i["id"])):
        group = item[key] if item[key] in quota else "other"
        if taken[group] < quota[group]:
            taken[group] += 1
            out.append(item)
    return out


def huffpost_items(path: Path = HUFFPOST, quota: dict[str, int] | None = HUFFPOST_QUOTA
                   ) -> list[dict]:
    """HuffPost items with a headline and a description: `quota` per category in hash
    order (None: every one)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        slug = r["link"].rstrip("/").rsplit("/", 1)[-1]
        rows.append({"id": f"huffpost:{slug}", "source": "huffpost",
                     "topic": r["category"].lower(), "title": r["headline"].strip(),
                     "text": r["short_description"].strip(), "date": r["date"]})
    rows = [r for r in rows if r["title"] and r["text"]]
    return rows if quota is None else _take(rows, "topic",
                                            {k.lower(): v for k, v in quota.items()})


def _unwire(text: str) -> str:
    """Reuters body as prose: entities decoded, control characters and the trailer gone,
    hard-wrapped lines joined into paragraphs."""
    text = html.unescape(text)
    text = re.sub(r"[\x00-\x08\x0b-\x1f]", "", text)
    text = re.sub(r"\s*Reuter\s*$", "", text.strip())
    paragraphs = re.split(r"\n\s{3,}|\n\s*\n", text)
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def reuters_items(paths: list[Path] = REUTERS, quota: dict[str, int] | None = REUTERS_QUOTA
                  ) -> list[dict]:
    """Reuters-21578 stories with a title and 25 words or more: `quota` per topic in hash
    order (None: every one)."""
    rows = []
    for path in paths:
        for record in re.findall(r"<REUTERS\b.*?</REUTERS>", path.read_text(encoding="latin-1"),
                                 re.DOTALL):
            body = re.search(r"<BODY>(.*?)</BODY>", record, re.DOTALL)
            title = re.search(r"<TITLE>(.*?)</TITLE>", record, re.DOTALL)
            if not (body and title):
                continue
            newid = re.search(r'NEWID="(\d+)"', record).group(1)
            topics = re.findall(r"<D>(.*?)</D>", re.search(r"<TOPICS>(.*?)</TOPICS>", record,
                                                         re.DOTALL).group(1))
            text = _unwire(body.group(1))
            if len(text.split()) < 25:  # a bare table line, not a story
                continue
            rows.append({"id": f"reuters:{newid}", "source": "reuters",
                         "topic": topics[0] if topics else "none",
                         "title": " ".join(html.unescape(title.group(1)).split()),
                         "text": text})
    return rows if quota is None else _take(rows, "topic", quota)


def cnndm_items(path: Path = CNNDM) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{"id": f"cnndm:{r['id']}", "source": "cnndm", "topic": r["source"].lower(),
             "title": None, "text": r["article"].strip()} for r in rows]


def entity_bench_ids() -> set[str]:
    """The ids of the entity bench's 30 items, which no training set holds."""
    return {json.loads(line)["id"] for line in ENTITY_BENCH.read_text(
        encoding="utf-8").splitlines() if line.strip()}


def all_items() -> list[dict]:
    """The labelled pool, with text (needs ../shared). The entity bench's items
    (`tasks.training.news_entities`) are held out of it."""
    held_out = entity_bench_ids()
    items = [i for i in huffpost_items() + reuters_items() + cnndm_items()
             if i["id"] not in held_out]
    ids = [i["id"] for i in items]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate item ids in the pool")
    return items


def read_labels(path: Path = LABELS_FILE) -> dict[str, dict]:
    """id -> the settled label row (label, clarity, both readings, split)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {r["id"]: r for r in rows}


def labelled_items(split: str | None = None) -> list[dict]:
    """The pool joined with its settled labels (items without a label are left out)."""
    labels = read_labels()
    out = []
    for item in all_items():
        row = labels.get(item["id"])
        if row and (split is None or row["split"] == split):
            out.append({**item, "label": row["label"], "clarity": row["clarity"],
                        "split": row["split"]})
    return out


def cohen_kappa(a: list[str], b: list[str]) -> tuple[float, float]:
    """(observed agreement, Cohen's kappa) of two readings of the same items."""
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in LABELS) / (n * n)
    return observed, (observed - expected) / (1 - expected)


def agreement(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Agreement of the first two readings, overall and per source."""
    out = {}
    for group in ("all", *LICENCES):
        part = [r for r in rows if group in ("all", r["source"])]
        if not part:
            continue
        observed, kappa = cohen_kappa([r["reading_1"] for r in part],
                                      [r["reading_2"] for r in part])
        out[group] = {"items": len(part), "agreement": round(observed, 4),
                      "kappa": round(kappa, 4)}
    return out


def write_huffpost_text(path: Path = HUFFPOST_TEXT) -> int:
    """The labelled HuffPost items' text and attribution (CC BY 4.0), beside the labels."""
    labels = read_labels()
    raw = {}
    for line in HUFFPOST.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        raw[f"huffpost:{r['link'].rstrip('/').rsplit('/', 1)[-1]}"] = r
    rows = [{"id": i, **{k: raw[i][k] for k in ("headline", "short_description", "category",
                                                 "authors", "date", "link")}}
            for i in labels if i.startswith("huffpost:")]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return len(rows)


def news_documents(items: list[dict]) -> list[Document]:
    """The labelled items as the pipeline's clean step leaves them."""
    from tasks.steps.clean import clean_document  # the step's own code, as runs clean

    return [clean_document(Document(doc_id=i["id"], source=i["source"], raw_text=i["text"],
                                    title=i["title"])) for i in items]


def macro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    f1s = []
    for c in range(3):
        tp = float(((pred == c) & (y == c)).sum())
        p = tp / max((pred == c).sum(), 1)
        r = tp / max((y == c).sum(), 1)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(f1s))


def labels_of(probs: np.ndarray, band: float | None) -> np.ndarray:
    return probs.argmax(axis=1) if band is None else label_indices(probs, band)


def fit_band(probs: np.ndarray, y: np.ndarray) -> float:
    """The neutral band on documents: the one (0.00-0.90) with the best macro-F1 on dev.
    Always a band, never arg-max, so a row's label follows its score (`label_indices`)."""
    grid = np.round(np.arange(0.0, 0.91, 0.01), 2)
    f1s = [macro_f1(label_indices(probs, float(band)), y) for band in grid]
    return float(grid[int(np.argmax(f1s))])


def doc_metrics(probs: np.ndarray, y: np.ndarray, meta: list[dict],
                band: float | None, pred: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, and on clear polar items the label and the score's sign. `pred`:
    the labels the model gave (else by `band` from `probs`)."""
    pred = labels_of(probs, band) if pred is None else pred
    score = probs[:, 2] - probs[:, 0]
    clear_polar = np.array([m["clarity"] == "clear" for m in meta]) & (y != 1)
    sign_ok = np.where(y == 2, score > 0, score < 0)
    return {"rows": int(len(y)), "accuracy": float((pred == y).mean()),
            "macro_f1": macro_f1(pred, y),
            "clear_polar_rows": int(clear_polar.sum()),
            "clear_polar_label": float((pred == y)[clear_polar].mean()) if clear_polar.any()
            else None,
            "clear_polar_sign": float(sign_ok[clear_polar].mean()) if clear_polar.any()
            else None}


def main(argv: list[str]) -> int:
    if argv == ["agreement"]:
        rows = list(read_labels().values())
        print(json.dumps(agreement(rows), indent=2))
        return 0
    if argv == ["huffpost"]:
        print(write_huffpost_text(), "items written to", HUFFPOST_TEXT)
        return 0
    if len(argv) != 2 or argv[0] != "items":
        print(__doc__, file=sys.stderr)
        return 2
    items = all_items()
    Path(argv[1]).write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items),
                             encoding="utf-8")
    print(Counter(i["source"] for i in items), Counter(split_of(i["id"]) for i in items))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
