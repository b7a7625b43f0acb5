"""A small, varied input folder for tests that need a real digest output to look at.

Articles (the seed, and a few of the invented news articles in tests/data/fixtures), a
document with hostile markup and a URL in its title, dates from both a wire header and a
`date` field, and inputs that become rejects, so that every part of the report has something
to show.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .conftest import SEEDS
from .corpus import articles as fixture_articles

HOSTILE = "<script>alert(1)</script>"
URL = "https://example.com/markets"
FIXTURE_ARTICLES = 3
ARTICLE_CHARS = 900


def build_input(folder: Path, articles: int = FIXTURE_ARTICLES) -> dict[str, int]:
    """Write the inputs into `folder`; returns the expected documents and rejects."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(next(SEEDS.glob("*.txt")), folder / "seed.txt")
    records = []
    for n, row in enumerate(fixture_articles()[:articles]):
        # the opening paragraphs only: enough to summarise, and quick to score
        opening = row["text"][:ARTICLE_CHARS].rsplit(". ", 1)[0] + "."
        records.append({"id": row["id"], "text": opening, "url": row["url"],
                        "date": f"2015-04-0{n + 1}"})
    records.append({
        "id": "hostile",
        "title": f"{HOSTILE} Markets rally {URL}",
        "date": "2015-04-02",
        "text": f"{HOSTILE} Shares rose sharply on Tuesday after strong results. Investors "
                "cheered the news and analysts raised their forecasts for the year. The "
                f"company thanked its staff; details are at {URL} for readers.",
    })
    with (folder / "feed.jsonl").open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
        fh.write("{broken\n")  # malformed_json
    (folder / "empty.txt").write_text("\n\n")  # empty_text
    (folder / "notes.md").write_text("# not an input format\n")  # unsupported_format
    return {"documents": 1 + len(records), "rejects": 3}
