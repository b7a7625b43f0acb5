"""Per-mention sentiment labels: NewsMTSC and SEntFiN's entities, split by hash of the text.

Splits (independent of file order):
- SEntFiN entity held-out: int(sha256(text.strip()).hexdigest(), 16) % 10 == 0, never trained
  on. Rows in the document model's held-out split (label != mixed, text_bucket >= 80) are not
  trained on either.
- Validation (temperature, band, model choice): text_bucket(text) % 10 == 5 of the NewsMTSC
  train sentences and of the SEntFiN training pool. NewsMTSC dev files are only evaluated.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

LABELS = ("negative", "neutral", "positive")
LICENCES = {"newsmtsc": "NewsMTSC (Hamborg & Donnay, EACL 2021): MIT",
            "sentfin": "SEntFiN 1.0 (Sinha et al., 2022): MIT"}
HELDOUT_RULE = "SEntFiN: int(sha256(text.strip()).hexdigest(), 16) % 10 == 0 -> entity held-out"
VAL_RULE = "text_bucket(text) % 10 == 5 -> validation (NewsMTSC train, SEntFiN pool)"


def text_bucket(text: str) -> int:
    """0-99, as `tasks.training.train_head.text_bucket`."""
    return int(hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:8], 16) % 100


def entity_heldout(text: str) -> bool:
    return int(hashlib.sha256(text.strip().encode("utf-8")).hexdigest(), 16) % 10 == 0


def is_val(text: str) -> bool:
    return text_bucket(text) % 10 == 5


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Mention:
    text: str
    start: int
    end: int
    label: int
    source: str  # newsmtsc | sentfin
    seen_by_current: bool = False  # sentfin: the current adapter trained on the doc label


def read_newsmtsc(path: Path) -> list[Mention]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            assert r["sentence"][r["from"]:r["to"]] == r["mention"], r["id"]
            rows.append(Mention(r["sentence"], r["from"], r["to"], int(r["polarity"]) + 1,
                                "newsmtsc"))
    return rows


def sentfin_rows(path: Path):
    """(headline, document label, {entity: label}) per SEntFiN row."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for row in reader:
            if len(row) >= 3 and row[0].strip():
                yield row[0], row[1].strip(), json.loads(row[2])


def read_sentfin(path: Path) -> tuple[dict[str, list[Mention]], int]:
    """SEntFiN entities as mentions: {"train", "val", "heldout"} and how many had no span."""
    out: dict[str, list[Mention]] = {"train": [], "val": [], "heldout": []}
    missing = 0
    for text, doc_label, entities in sentfin_rows(path):
        bucket = text_bucket(text)
        agreed = doc_label in LABELS
        if entity_heldout(text):
            part = "heldout"
        elif agreed and bucket >= 80:
            continue  # the project's document held-out split: never trained on
        else:
            part = "val" if is_val(text) else "train"
        seen = agreed and bucket < 80 and bucket % 20 != 0
        for name, label in entities.items():
            found = re.search(re.escape(name.strip()), text, flags=re.IGNORECASE)
            if found is None or label not in LABELS:
                missing += 1
                continue
            out[part].append(Mention(text, found.start(), found.end(), LABELS.index(label),
                                     "sentfin", seen))
    return out, missing


def entity_data(train_dir: Path, limit: int | None) -> tuple[dict[str, list[Mention]], dict]:
    news = read_newsmtsc(train_dir / "newsmtsc_train.jsonl")
    sentfin, missing = read_sentfin(train_dir / "sentfin.tsv")
    sets = {
        "newsmtsc_train": [m for m in news if not is_val(m.text)],
        "newsmtsc_val": [m for m in news if is_val(m.text)],
        "sentfin_train": sentfin["train"],
        "sentfin_val": sentfin["val"],
        "newsmtsc_dev_rw": read_newsmtsc(train_dir / "newsmtsc_dev_rw.jsonl"),
        "newsmtsc_dev_mt": read_newsmtsc(train_dir / "newsmtsc_dev_mt.jsonl"),
        "sentfin_heldout": sentfin["heldout"],
    }
    if limit:
        sets = {k: v[:limit] for k, v in sets.items()}
    notes = {"sentfin_entities_without_span": missing,
             "rows": {k: len(v) for k, v in sets.items()}}
    return sets, notes


def contrast_pairs(mentions: list[Mention], n: int, seed: int, opposite: float = 1.0
                   ) -> list[Mention]:
    """`n` sentences joined from two training headlines that name one entity each ("A gains
    as B slides"): two mentions whose labels come from their own headline, so the other
    clause's tone must not decide them. A share `opposite` of the pairs has one good and one
    bad news; the rest draws both labels at random (same, neutral, or opposite again), so the
    joined form itself does not teach "the two differ"."""
    by_text: dict[str, list[Mention]] = {}
    for m in mentions:
        by_text.setdefault(m.text, []).append(m)
    single = [ms[0] for ms in by_text.values() if len(ms) == 1]
    by_label = {k: [m for m in single if m.label == k] for k in (0, 1, 2)}
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < opposite:
            a, b = rng.choice(by_label[2]), rng.choice(by_label[0])
        else:
            a, b = (rng.choice(by_label[rng.choice((0, 1, 2))]) for _ in range(2))
            if a.text == b.text:
                continue
        if rng.random() < 0.5:
            a, b = b, a
        first = a.text.strip().rstrip(".")
        joint = rng.choice((" as ", " while ", "; ", ", ", " but "))
        second = b.text.strip()
        second = second[0].lower() + second[1:] if joint in (" as ", " while ", " but ") \
            and second[:1].isupper() and not second[:2].isupper() and b.start > 0 else second
        text = first + joint + second
        shift = len(first) + len(joint) - (len(b.text) - len(b.text.lstrip()))
        out.append(Mention(text, a.start, a.end, a.label, "contrast"))
        out.append(Mention(text, b.start + shift, b.end + shift, b.label, "contrast"))
    return out

