"""The team's name labels on today's news, mention by mention, for the entity tagger.

CoNLL-2003 is Reuters of 1996, written as sentences: it has no Twitter, no HBO and no Title
Case headlines. These are 1,200 news items (900 HuffPost headlines with their description,
300 Reuters-21578 capitals titles with their first sentences), split into the units the
entities step reads (title, then the first two sentences, as the clean step leaves them),
each name in them labelled with its CoNLL type by two independent readings, disagreements
settled by a third (`news_spans/GUIDELINES.md`, data card `news_spans/README.md`). None is one
of the entity bench's 30 items (`tasks.training.news_entities`).

The HuffPost units ship with the labels (CC BY 4.0); Reuters units are rebuilt from
../shared, and each label keeps its surface text so a changed rebuild is caught.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from tasks.training.conll import Sentence

SET_DIR = Path(__file__).resolve().parent / "news_spans"
LABELS_FILE = SET_DIR / "labels.jsonl"
TYPES = ("PER", "ORG", "LOC", "MISC")
SOURCE = ("textdigest news name labels (Apache-2.0) on News Category Dataset v3 (Misra, 2022; "
          "CC BY 4.0, the units ship) and Reuters-21578 (Lewis; research use, keyed by NEWID)")
HUFFPOST_ITEMS, REUTERS_ITEMS = 900, 300
# A word much as BERT's pre-tokenizer splits one: a run of letters and digits, or one other
# sign (the tagger's labels go to each pre-tokenizer word's first piece either way).
_WORD = re.compile(r"\w+|[^\w\s]")


def pick_order(item_id: str) -> str:
    return hashlib.sha256(b"spans:" + item_id.encode("utf-8")).hexdigest()


def pool() -> list[dict]:
    """The items to label, with their units (needs ../shared): the first HUFFPOST_ITEMS and
    REUTERS_ITEMS of each source in `pick_order`, the entity bench's items left out."""
    from tasks.training import news_docs

    held_out = news_docs.entity_bench_ids()
    every = (news_docs.huffpost_items(news_docs.HUFFPOST, quota=None)
             + news_docs.reuters_items(news_docs.REUTERS, quota=None))
    out = []
    for source, n in (("huffpost", HUFFPOST_ITEMS), ("reuters", REUTERS_ITEMS)):
        mine = sorted((i for i in every if i["source"] == source and i["id"] not in held_out),
                      key=lambda i: pick_order(i["id"]))[:n]
        out += [{"id": i["id"], "source": source, "units": units}
                for i, units in zip(mine, _units(mine), strict=True)]
    return out


def _units(items: list[dict]) -> list[list[str]]:
    """What the entities step reads of each item: the title and the first sentences."""
    from tasks.models.lead import ENTITY_SENTENCES
    from tasks.training.news_docs import news_documents

    return [[d.title, *d.sentences[:ENTITY_SENTENCES]] for d in news_documents(items)]


def locate(unit: str, mentions: list[dict]) -> list[tuple[int, int, str]] | None:
    """Character ranges of a reading's mentions (exact text, in order) in `unit`; None when
    one is not in it."""
    out, pos = [], 0
    for m in mentions:
        at = unit.find(m["text"], pos)
        if at < 0:
            at = unit.find(m["text"])
        if at < 0 or not m["text"] or m["type"] not in TYPES:
            return None
        out.append((at, at + len(m["text"]), m["type"]))
        pos = at + len(m["text"])
    return sorted(out) if len(set(out)) == len(out) else None  # a mention counted twice


def sentence(unit: str, names: list[tuple[int, int, str]]) -> Sentence:
    """A unit as a CoNLL sentence: its words as the tokenizer splits them ("Trump", "'",
    "s"), each tagged B-/I- by the name it overlaps (a ticker run into a capitals title's
    word stays with it), else O."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(unit)]
    tags = ["O"] * len(words)
    for a, b, kind in names:
        inside = [i for i, (x, y) in enumerate(words) if x < b and a < y]
        for k, i in enumerate(inside):
            tags[i] = ("B-" if k == 0 else "I-") + kind
    joined = tuple(i > 0 and words[i - 1][1] == x for i, (x, _) in enumerate(words))
    return Sentence(tuple(unit[x:y] for x, y in words), tuple(tags), joined)


def read_labels(path: Path = LABELS_FILE) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def sentences(path: Path = LABELS_FILE) -> list[Sentence]:
    """Every labelled unit as a tagged sentence. Reuters units are rebuilt from ../shared
    (left out when it is absent); a unit whose rebuilt text no longer holds its names'
    surface text is an error, not a silent mislabel."""
    from tasks.training import news_docs

    rows = read_labels(path)
    wanted = {r["id"] for r in rows if r["units"][0].get("text") is None}
    rebuilt: dict[str, list[str]] = {}
    if wanted and all(p.is_file() for p in news_docs.REUTERS):
        items = [i for i in news_docs.reuters_items(news_docs.REUTERS, quota=None)
                 if i["id"] in wanted]
        rebuilt = {i["id"]: units for i, units in zip(items, _units(items), strict=True)}
        if wanted - rebuilt.keys():
            raise ValueError(f"not in ../shared: {sorted(wanted - rebuilt.keys())[:5]}")
    out = []
    for row in rows:
        texts = rebuilt.get(row["id"]) if row["id"] in wanted else [
            u["text"] for u in row["units"]]
        if texts is None:
            continue  # a Reuters item without ../shared
        if len(texts) != len(row["units"]):
            raise ValueError(f"{row['id']}: rebuilt with {len(texts)} units, labelled "
                             f"{len(row['units'])}")
        for unit, text in zip(row["units"], texts, strict=True):
            if any(text[a:b] != surface for a, b, _, surface in unit["names"]):
                raise ValueError(f"{row['id']}: a name's text moved in its rebuilt unit")
            out.append(sentence(text, [(a, b, kind) for a, b, kind, _ in unit["names"]]))
    return out
