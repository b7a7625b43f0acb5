"""Property-based tests (hypothesis): cleaning, header parsing, sentence splitting and the
readers hold their promises on arbitrary input, not only on the cases someone thought of."""

from __future__ import annotations

import json
import string
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.io.ingest import IngestOptions, iter_items
from tasks.record import Document, Reject
from tasks.steps.header import parse_header
from tasks.steps.sentences import MAX_SENTENCE_CHARS, split_sentences
from tasks.steps.text import clean_text

# Modest and without a deadline: the suite stays fast and no run fails on a slow machine;
# no example database either (nothing written into the checkout).
FAST = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# What must never survive cleaning: controls (but "\n"), zero-width and direction marks.
INVISIBLE = set("\u00ad\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u061c"
                "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Pieces that exercise the cleaner's paths: markup, entities, wire headers, trailers,
# mojibake, hard wraps, invisible and control characters, exotic spaces.
PIECES = [
    "<p>", "</p>", "<br/>", "<div class=\"x\">", "<script>x()</script>", "<!-- c -->", "&amp;",
    "&lt;Texaco Inc>", "&#8217;", "&nbsp;", " date 2022-02-23 ", "WASHINGTON, February 23. ",
    "/TASS/. ", "LONDON (Reuters) - ", "Reuter\n", "(Reporting by Jane Doe)", "© 2024 Foo. ",
    "All rights reserved.", "Read more", "â€™", "Ã©", "\n", "\n\n", "\r\n", "   ", "\t",
    "well-\nknown", "Mr. Smith", "U.S. ", "e.g. ", "?!", "...", "\u200b", "\u202e", "\u2066",
    "\ufeff", "\x00", "\x07", "\x1b", "\x85", "\u2028", "\u00a0", "\u3000", "\u0301", "e\u0301",
    "ﬁ", "Ⅻ", "\U0001f600", "\u200d", "Ukraine will never recognize it.", "He said: \"no\". ",
]
pieces = st.lists(st.sampled_from(PIECES) | st.text(max_size=12), max_size=30).map("".join)
raw_text = st.one_of(st.text(max_size=300), pieces)


def _bad_chars(text: str) -> set[str]:
    return {c for c in text
            if (unicodedata.category(c) == "Cc" and c != "\n") or c in INVISIBLE}


@FAST
@given(raw_text)
def test_clean_text_is_idempotent_and_leaves_no_control_or_invisible_characters(raw):
    once = clean_text(raw)
    assert not _bad_chars(once), [hex(ord(c)) for c in _bad_chars(once)]
    assert clean_text(once) == once
    assert once == once.strip() and "\n\n\n" not in once and "  " not in once


@FAST
@given(raw_text)
def test_parse_header_never_raises_and_never_adds_text(raw):
    text = clean_text(raw)
    header = parse_header(text)
    assert len(header.body) <= len(text)
    assert header.body == header.body.strip() or header.body == text
    for field in (header.dateline, header.agency):
        assert field is None or field.strip()


@FAST
@given(raw_text)
def test_split_sentences_loses_no_characters_and_caps_sentence_length(raw):
    text = clean_text(raw)
    sentences = split_sentences(text)
    assert all(s and s == s.strip() and len(s) <= MAX_SENTENCE_CHARS for s in sentences)
    assert "".join("".join(sentences).split()) == "".join(text.split())


@settings(max_examples=15, deadline=None, database=None)
@given(st.integers(min_value=MAX_SENTENCE_CHARS + 1, max_value=6 * MAX_SENTENCE_CHARS),
       st.sampled_from(["word ", "x", "Mr. Smith e.g. ", "a,b; "]))
def test_overlong_sentences_are_cut_without_losing_text(n, unit):
    text = (unit * (n // len(unit) + 1))[:n].strip()
    sentences = split_sentences(text)
    assert len(sentences) >= 2 and max(map(len, sentences)) <= MAX_SENTENCE_CHARS
    assert "".join("".join(sentences).split()) == "".join(text.split())


jsonl_line = st.one_of(
    st.builds(lambda d: json.dumps(d), st.dictionaries(
        st.sampled_from(["id", "text", "title", "date", "x"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=40), st.lists(st.integers()),
                  st.booleans()),
        max_size=5)),
    st.text(max_size=40).filter(lambda t: "\n" not in t),  # a line is what JSONL splits on
    st.just("[1, 2]"), st.just("{\"text\": "), st.just(""),
)
csv_cell = st.text(alphabet=string.printable + "é\u200b\"", max_size=20)


def _read(suffix: str, data: bytes) -> list[Document | Reject]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"f{suffix}").write_bytes(data)
        return list(iter_items(Path(tmp), IngestOptions()))


def _well_formed(items: list[Document | Reject]) -> None:
    for item in items:
        assert isinstance(item, Document | Reject)
        if isinstance(item, Document):
            assert item.raw_text.strip() and item.doc_id and item.source.startswith("f.")
        else:
            assert item.reason and item.source.startswith("f.")


@FAST
@given(st.sampled_from([".txt", ".jsonl", ".csv", ".tsv", ".parquet", ".bin"]), st.binary())
def test_readers_turn_arbitrary_bytes_into_documents_or_rejects(suffix, data):
    items = _read(suffix, data)
    _well_formed(items)
    if suffix in (".txt", ".parquet", ".bin"):
        assert len(items) == 1  # one file, one item: a document or a reject


@FAST
@given(st.lists(jsonl_line, min_size=1, max_size=8))
def test_jsonl_reader_accounts_for_every_non_blank_line(lines):
    items = _read(".jsonl", "\n".join(lines).encode("utf-8"))
    _well_formed(items)
    assert len(items) == sum(1 for line in lines if line.strip())
    for item in items:  # one item per line, named by its line number
        lineno = int(item.source.rsplit(":", 1)[1])
        assert lines[lineno - 1].strip()


@FAST
@given(st.lists(st.lists(csv_cell, min_size=1, max_size=4), min_size=1, max_size=6))
def test_csv_reader_never_raises(rows):
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows([["text", "id"][: len(rows[0])], *rows])
    _well_formed(_read(".csv", buf.getvalue().encode("utf-8")))
