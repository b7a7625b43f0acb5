"""Small inputs for the dedup, Dask, resume, publish and schedule tests.

Read from the committed fixture tests/data/fixtures/articles.jsonl: eight invented news
articles of 300-810 words (`id`, `title`, `url`, `text`, `highlights`; Apache-2.0, see
tests/data/README.md), so the tests need nothing beside the checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import FIXTURES

ARTICLES = FIXTURES / "articles.jsonl"


def articles() -> list[dict[str, str]]:
    """Every fixture article, in file order, with all its fields."""
    with ARTICLES.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def short_articles(n: int) -> list[dict[str, str]]:
    """The `n` shortest fixture articles as {"id", "text"} (cheap to digest)."""
    rows = sorted(articles(), key=lambda r: (len(r["text"].split()), r["id"]))
    if len(rows) < n:
        raise ValueError(f"{ARTICLES} holds {len(rows)} articles, not {n}")
    return [{"id": r["id"], "text": r["text"]} for r in rows[:n]]


def light_edit(text: str, n_edits: int, tag: str = "x") -> str:
    """A copy with `n_edits` evenly spaced words changed, as a re-published story would be."""
    words = text.split()
    step = len(words) // (n_edits + 1)
    for k in range(1, n_edits + 1):
        words[k * step] = f"{words[k * step]}{tag}"
    return " ".join(words)


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# A sentence that repeats across documents, as wire furniture does (run once per run).
WIRE = "The figures were published by the national statistics office on Tuesday morning."


def varied_documents() -> list[dict[str, str]]:
    """72 documents of every shape the models see, from the committed fixtures: windows of
    1-12 sentences of the eight articles (some titled, some carrying the same wire sentence),
    the eight headline-first articles, headlines with a one-line body, and a near-duplicate."""
    from tasks.steps.sentences import split_sentences

    rows: list[dict[str, str]] = []
    for a, art in enumerate(articles()):
        sentences = split_sentences(art["text"])
        start = 0
        for k in range(5):
            size = 1 + (a * 5 + k) % 12
            part = sentences[start : start + size] or sentences[:size]
            start += size
            row = {"id": f"a{a}-{k}", "text": " ".join(part)}
            if k % 2 == 0:
                row["title"] = art["title"]
            if k % 3 == 1:
                row["text"] = f"{WIRE} {row['text']}"
            rows.append(row)
    for path in sorted((FIXTURES.parent / "headline_first").glob("*.txt")):
        title, _, body = path.read_text(encoding="utf-8").partition("\n\n")
        rows.append({"id": f"h-{path.stem}", "title": title.strip(), "text": body.strip()})
    with (FIXTURES.parent / "news_headlines.tsv").open(encoding="utf-8") as fh:
        headlines = [line.split("\t")[0] for line in fh.read().splitlines()[1:]]
    for i, headline in enumerate(headlines[:23]):
        rows.append({"id": f"t{i}", "title": headline,
                     "text": f"{headline}. More details were expected later in the day."})
    rows.append({"id": "near-copy", "text": light_edit(articles()[0]["text"], 2)})
    return rows
