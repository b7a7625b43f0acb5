"""Small inputs for the dedup, Dask and schedule tests, read from ../shared/eval (not copied)."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import SHARED


def short_articles(n: int) -> list[dict[str, str]]:
    """The `n` shortest CNN/DailyMail dev articles as {"id", "text"} (cheap to digest)."""
    with (SHARED / "eval" / "cnndm" / "dev.jsonl").open() as fh:
        rows = [json.loads(line) for line in fh]
    rows.sort(key=lambda r: (len(r["article"].split()), r["id"]))
    return [{"id": r["id"], "text": r["article"]} for r in rows[:n]]


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
