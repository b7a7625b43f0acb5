"""Titles: the headline line of plain-text articles, title fields, and summaries without them.

`tests/data/headline_first/` holds eight articles in the BBC News corpus layout, written for
these tests (see tests/data/README.md): 001-006 a headline then a blank line, 007 no headline,
008 a headline followed directly by the first sentence.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.config import DigestConfig
from tasks.io.ingest import IngestOptions, iter_items
from tasks.io.title_line import split_title_line
from tasks.pipeline import process_batch
from tasks.record import Document
from tasks.steps.base import Batch, StepSettings
from tasks.steps.clean import clean_document, model_read_limit, without_leading_title

HEADLINE_FIRST = Path(__file__).parent / "data" / "headline_first"


@pytest.mark.parametrize(("text", "title"), [
    ("Safin slumps to shock Dubai loss\n\nMarat Safin suffered a shock defeat.\n",
     "Safin slumps to shock Dubai loss"),
    ("Safin slumps to shock Dubai loss\nMarat Safin suffered a shock defeat.\n",
     "Safin slumps to shock Dubai loss"),
    ("Is this the end for the euro?\n\nFinance ministers met on Monday.", "Is this the end "
                                                                          "for the euro?"),
    # hard-wrapped prose: the line ends on a word that continues the sentence
    ("Shares in London fell sharply as the\nBank of England raised rates.\n", None),
    # a sentence, not a headline
    ("The company said on Monday it would cut jobs.\nMore text here.\n", None),
    ("Is this the end?\nFinance ministers met on Monday.", None),
    # wire headers, bylines and one-line files stay in the body
    (" date 2022-02-23 WASHINGTON, February 23. /TASS/. Ukraine will\n\nBody.", None),
    ("LONDON (Reuters) - Shares fell\n\nBody text.", None),
    ("By John Smith\n\nBody text here.", None),
    ("Only one line", None),
    ("lower-case start of a wrapped text\n\nBody.", None),
])
def test_first_line_reads_as_a_title_only_when_it_is_one(text, title):
    found, body = split_title_line(text)
    assert found == title
    if title is None:
        assert body == text
    else:
        assert title not in body and body.strip()


def test_headline_first_folder_gets_titles_and_bodies_without_them():
    items = list(iter_items(HEADLINE_FIRST))
    by_file = {d.source: d for d in items}
    assert len(by_file) == 8 and all(isinstance(d, Document) for d in items)
    for name, doc in by_file.items():
        first_line = (HEADLINE_FIRST / name).read_text().splitlines()[0].strip()
        if name == "007.txt":
            assert doc.title is None and doc.raw_text.startswith(first_line)
        else:
            assert doc.title == first_line
            assert not doc.raw_text.lstrip().startswith(first_line)
    # the id hashes the whole file, so it does not depend on where the title went
    plain = {d.source: d for d in iter_items(HEADLINE_FIRST, IngestOptions(title_line=False))}
    assert all(plain[n].doc_id == d.doc_id for n, d in by_file.items())
    assert all(d.title is None for d in plain.values())
    assert plain["001.txt"].raw_text.startswith(by_file["001.txt"].title)


def test_a_title_repeated_at_the_start_of_the_text_leaves_the_body():
    title = "Safin slumps to shock Dubai loss"
    body = "Marat Safin suffered a shock defeat in Dubai on Tuesday. He lost in straight sets."
    assert without_leading_title(f"{title}\n\n{body}", title) == body
    assert without_leading_title(f"{title.upper()}: {body}", title) == body
    assert without_leading_title(body, title) == body  # no copy: unchanged
    assert without_leading_title(title, title) == title  # nothing would be left: unchanged
    doc = clean_document(Document(doc_id="x", source="s", raw_text=f"{title} {body}",
                                  title=title))
    assert doc.text == body and not doc.sentences[0].startswith("Marat Safin suffered a shock "
                                                                "defeat in Dubai on Tuesday. He")
    assert doc.sentences[0].startswith("Marat Safin")


def test_summaries_never_hold_the_title():
    docs = [d for d in iter_items(HEADLINE_FIRST) if d.title]
    batch = process_batch(Batch(seq=0, docs=docs, n_items=len(docs)), StepSettings())
    assert len(batch.docs) == len(docs) and not batch.rejects
    for doc in batch.docs:
        assert doc.summary and doc.title not in doc.summary
        assert not doc.summary.startswith(doc.title.split()[0] + " " + doc.title.split()[1])


def test_the_models_read_at_most_max_model_chars():
    sentence = "The council met again on Tuesday to discuss the budget for next year. "
    long_text = sentence * 2000  # ~140,000 characters
    cut = model_read_limit(long_text, 10_000)
    assert 5_000 < len(cut) <= 10_000 and cut.endswith("year.")
    assert model_read_limit("short text.", 10_000) == "short text."
    doc = clean_document(Document(doc_id="x", source="s", raw_text=long_text), 10_000)
    assert len(doc.text) > 100_000  # the text column keeps everything
    assert sum(len(s) + 1 for s in doc.sentences) <= 10_001
    assert "models read the first" in doc.meta["textdigest_note"]
    uncapped = clean_document(Document(doc_id="x", source="s", raw_text=long_text))
    assert len(uncapped.sentences) == 2000 and "textdigest_note" not in uncapped.meta
    # no punctuation at all: still cut, at a space
    words = "word " * 50_000
    assert len(model_read_limit(words, 10_000)) <= 10_000


def test_flow_writes_titles_and_records_the_cap(prefect_harness, tmp_path):
    from flows.digest import digest

    out = tmp_path / "out"
    digest(DigestConfig(input=HEADLINE_FIRST, output=out, show_progress=False,
                        max_model_chars=1_000))
    rows = {r["source"]: r for r in pq.read_table(out / "documents").to_pylist()}
    assert rows["001.txt"]["title"] == "Lancashire mill to close with 420 jobs lost"
    assert rows["007.txt"]["title"] is None
    for row in rows.values():
        assert json.loads(row["provenance"]["cleaner"])["max_model_chars"] == 1_000
        if row["title"]:
            assert row["title"] not in row["summary"]
    capped = [r for r in rows.values() if len(r["text"]) > 1_000]
    assert capped and all("models read the first" in json.loads(r["meta"])["textdigest_note"]
                          for r in capped)
