"""The team's entity set: 30 headline-first news items (title and lead), every entity they
name, labelled twice (GUIDELINES.md in `news_entities/`), for `bench.entity_eval --articles`.

20 HuffPost items (News Category Dataset v3, CC BY 4.0: their text ships in
`news_entities/huffpost_items.jsonl`) and 10 Reuters-21578 stories (research use: keyed by
id, read from ../shared). None is in the document-sentiment set, none is BBC News, and
nothing was tuned on them.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from tasks.training.news_docs import REUTERS, _unwire

SET_DIR = Path(__file__).resolve().parent / "news_entities"
LABELS_FILE = SET_DIR / "labels.jsonl"
HUFFPOST_TEXT = SET_DIR / "huffpost_items.jsonl"
TYPES = {"person": "PER", "organization": "ORG", "place": "LOC", "misc": "MISC",
         "market": "MARKET"}


def read_labels(path: Path = LABELS_FILE) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def reuters_stories(ids: set[str], paths: list[Path] = REUTERS) -> dict[str, dict]:
    """Title and body of the Reuters-21578 stories `ids` ("reuters:NEWID")."""
    out = {}
    for path in paths:
        for record in re.findall(r"<REUTERS\b.*?</REUTERS>", path.read_text(encoding="latin-1"),
                                 re.DOTALL):
            newid = "reuters:" + re.search(r'NEWID="(\d+)"', record).group(1)
            if newid in ids:
                title = re.search(r"<TITLE>(.*?)</TITLE>", record, re.DOTALL).group(1)
                body = re.search(r"<BODY>(.*?)</BODY>", record, re.DOTALL).group(1)
                out[newid] = {"title": " ".join(html.unescape(title).split()),
                              "text": _unwire(body)}
    return out


def items(with_reuters: bool = True) -> list[dict]:
    """The labelled items with their text: id, source, title, text, entities. Reuters items
    need ../shared; without it (or `with_reuters=False`) only the HuffPost items."""
    labels = read_labels()
    texts = {}
    for line in HUFFPOST_TEXT.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts[row["id"]] = {"title": row["title"], "text": " ".join(row["lead"])}
    wanted = {r["id"] for r in labels if r["source"] == "reuters"}
    if with_reuters and all(p.is_file() for p in REUTERS):
        texts.update(reuters_stories(wanted))
    return [{**r, **texts[r["id"]]} for r in labels if r["id"] in texts]


def _key(name: str) -> str:
    name = re.sub(r"['’]s$", "", name.strip()).casefold()
    return re.sub(r"^the\s+", "", name)


def score(rows: list[list[dict]], gold: list[list[dict]]) -> dict[str, float]:
    """(name, type) precision and recall of entity rows against the labels, and how many
    gold entities got two rows or more (split). A row names a gold entity when its name is
    the entity's name or one of its aliases (case, "the" and a possessive aside)."""
    n_rows = n_gold = right = right_name = found = found_name = split = 0
    for predicted, labelled in zip(rows, gold, strict=True):
        keys = [{_key(g["name"]), *map(_key, g.get("aliases", []))} for g in labelled]
        hits: dict[int, int] = {}
        n_rows, n_gold = n_rows + len(predicted), n_gold + len(labelled)
        typed_hit, named_hit = set(), set()
        for row in predicted:
            k = next((i for i, ks in enumerate(keys) if _key(row["name"]) in ks), None)
            if k is None:
                continue
            hits[k] = hits.get(k, 0) + 1
            if hits[k] > 1:
                continue  # a second row for one entity is not right
            right_name += 1
            named_hit.add(k)
            if TYPES.get(row["type"]) == labelled[k]["type"]:
                right += 1
                typed_hit.add(k)
        found, found_name = found + len(typed_hit), found_name + len(named_hit)
        split += sum(v > 1 for v in hits.values())
    return {"rows": n_rows, "entities": n_gold,
            "precision": round(right / max(1, n_rows), 4),
            "recall": round(found / max(1, n_gold), 4),
            "name precision": round(right_name / max(1, n_rows), 4),
            "name recall": round(found_name / max(1, n_gold), 4),
            "split entities": split}
