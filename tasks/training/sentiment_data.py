"""The news and finance sentiment sets in ../shared/train: readers and fixed splits.

Every split is a hash of the text (`text_bucket`), so it does not depend on file order, seed or
which other files are present; training and `bench.sentiment_eval` import the same rules.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tasks.training.train_head import text_bucket

SENTFIN_HELDOUT_PERCENT = 20
SENTFIN_SPLIT_RULE = (
    "SEntFiN rows whose entities agree (label != mixed); text_bucket(text) >= "
    f"{100 - SENTFIN_HELDOUT_PERCENT} -> held out, else train"
)
CALIB_RULE = "train-part rows with text_bucket(text) % 20 == 0 (never trained on)"
LICENCES = {
    "sentfin": "SEntFiN 1.0 (Sinha et al., 2022): MIT",
    "tfns": "Twitter Financial News Sentiment (zeroshot): MIT",
}
LABELS = ("negative", "neutral", "positive")


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows of a TSV with a header and quoted fields (tweets hold newlines)."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        return [(row[0], row[1].strip()) for row in reader if len(row) >= 2 and row[0].strip()]


def sentfin_split(rows: list[tuple[str, str]]) -> tuple[list, list]:
    """SEntFiN headlines with one label for all their entities: (train, held-out)."""
    agreed = [r for r in rows if r[1] in LABELS]
    cut = 100 - SENTFIN_HELDOUT_PERCENT
    return ([r for r in agreed if text_bucket(r[0]) < cut],
            [r for r in agreed if text_bucket(r[0]) >= cut])


def calib_split(rows: list[tuple[str, str]]) -> tuple[list, list]:
    """A training part's (train, calibration) rows: 1 in 20 buckets calibrates."""
    return ([r for r in rows if text_bucket(r[0]) % 20],
            [r for r in rows if text_bucket(r[0]) % 20 == 0])
