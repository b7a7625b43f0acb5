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
