"""Tests for the clean step: text cleaning, wire headers, sentence splitting.

Besides hand-written cases, two shared corpora are used: ftfy's own "in the wild" mojibake
cases, and the first file of Reuters-21578 (1987 wire copy: hard-wrapped, entity-escaped,
signed off with "Reuter"). Tests that need them are skipped when the shared folder is absent.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from tasks.record import Document
from tasks.steps.clean import clean_document
from tasks.steps.header import Header, parse_header
from tasks.steps.sentences import split_sentences
from tasks.steps.text import clean_text

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "seeds" / "000_2abde3e83e91c881.txt"
MESSY = REPO.parent / "shared" / "eval" / "messy"
FTFY_WILD = MESSY / "ftfy_in-the-wild.json"
REUTERS_SGM = MESSY / "reuters21578_reut2-000.sgm"

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
LONE_NEWLINE = re.compile(r"(?<!\n)\n(?!\n)")


def needs(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not available")


# --------------------------------------------------------------------------------------------
# clean_text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.", "The Mona Lisa doesn't have eyebrows."),
        ("caf\u0065\u0301", "caf\u00e9"),  # NFC
        ("AT&amp;T &lt;b&gt;x&lt;/b&gt; &#233;t&#xE9;", "AT&T x été"),
        ("R&D at S&P, ?a=1&not=2", "R&D at S&P, ?a=1&not=2"),  # no ";": not an entity
        ("a &amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt; z", "a bold z"),  # double-escaped markup
        ("x\x03y\x07z &#3;&#127;end", "xyz end"),
        ("tab\there", "tab here"),
        ("zero\u200bwidth\u200c\u200d\u2060\ufeff!", "zerowidth!"),
        ("bidi\u202atext\u202e\u2066x\u2069", "biditextx"),
        ("non\u00a0breaking  \u2003spaces", "non breaking spaces"),
        ("<p>One</p><p>Two<br>Three</p>", "One\n\nTwo\n\nThree"),
        ("<script>var x = '<p>no</p>';</script>Kept<style>p {}</style>", "Kept"),
        ("a <b>bold</b> and <a href='x'>link</a>.", "a bold and link."),
        ("a < b and c > d", "a < b and c > d"),  # comparison, not a tag
        ("Stake in &lt;Texaco Inc> and &lt;DD>.", "Stake in Texaco Inc and DD."),
        # a ticker after its company's name stays apart from the name
        ("RYKOFF-SEXTON INC &lt;RYK> 3RD QTR NET", "RYKOFF-SEXTON INC (RYK) 3RD QTR NET"),
        ("one\ntwo\nthree", "one two three"),
        ("para one\n\n\n\npara two", "para one\n\npara two"),
        ("wrapped line\n    indented starts a paragraph\nand wraps", (
            "wrapped line\n\nindented starts a paragraph and wraps")),
        ("well-\nknown", "well-known"),
        ("   \n  \n ", ""),
    ],
)
def test_clean_text_cases(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_html_source_indentation_is_not_paragraphs():
    raw = (
        "<html><head><title>Page</title></head><body>\n  <div>\n    <p>First paragraph\n"
        "      continues here.</p>\n    <p>Second.</p>\n  </div>\n</body></html>"
    )
    assert clean_text(raw) == "First paragraph continues here.\n\nSecond."


def test_clean_text_one_paragraph_per_line_is_not_unwrapped():
    long_line = "This line is far longer than any hard-wrap width would be. " * 3
    assert clean_text(f"{long_line}\nNext paragraph.") == f"{long_line.strip()}\n\nNext paragraph."


def test_clean_text_is_idempotent_on_seed():
    once = clean_text(SEED.read_text(encoding="utf-8"))
    assert clean_text(once) == once


@needs(FTFY_WILD)
def test_ftfy_in_the_wild_cases_clean_to_their_fixed_form():
    cases = json.loads(FTFY_WILD.read_text(encoding="utf-8"))
    passing = [c for c in cases if c["expect"] == "pass"]
    assert passing
    # Both sides go through clean_text: whitespace normalisation, quote uncurling and the
    # removal of invisible characters apply to the expected text as much as to the input.
    failures = [
        (c["label"], clean_text(c["original"]), clean_text(c["fixed"]))
        for c in passing
        if clean_text(c["original"]) != clean_text(c["fixed"])
    ]
    assert not failures, f"{len(passing) - len(failures)}/{len(passing)} pass; {failures[:3]}"


# --------------------------------------------------------------------------------------------
# parse_header
# --------------------------------------------------------------------------------------------

D = dt.date
HEADER_CASES = [
    # (text, date, dateline, agency, body starts with)
    (" date 2022-02-23 WASHINGTON, February 23. /TASS/. Ukraine will never recognize it.",
     D(2022, 2, 23), "WASHINGTON", "TASS", "Ukraine will never"),
    ("MOSCOW, March 3. /TASS/. Body of the story.", None, "MOSCOW", "TASS", "Body of"),
    ("LONDON (Reuters) - Body of the story.", None, "LONDON", "Reuters", "Body of"),
    ("LONDON, Feb 23 (Reuters) - Body of the story.", None, "LONDON", "Reuters", "Body of"),
    ("LONDON, Feb 23 (Reuters) \u2013 Body of the story.", None, "LONDON", "Reuters", "Body of"),
    ("LONDON (Reuters) \u2014 Body of the story.", None, "LONDON", "Reuters", "Body of"),
    ("LONDON (Reuters) -- Body of the story.", None, "LONDON", "Reuters", "Body of"),
    ("WASHINGTON (AP) \u2014 Body of the story.", None, "WASHINGTON", "AP", "Body of"),
    ("PARIS (AFP) - Body of the story.", None, "PARIS", "AFP", "Body of"),
    ("MOSCOW, Feb 23 (Interfax) - Body of the story.", None, "MOSCOW", "Interfax", "Body of"),
    ("BEIJING, Feb. 23 (Xinhua) -- Body of the story.", None, "BEIJING", "Xinhua", "Body of"),
    ("LONDON, England (CNN) -- Body of the story.", None, "LONDON", "CNN", "Body of"),
    ("(CNN) -- Body of the story.", None, None, "CNN", "Body of"),
    ("NEW YORK (Reuters) - Body of the story.", None, "NEW YORK", "Reuters", "Body of"),
    ("RIO DE JANEIRO, Feb 23 (Reuters) - Body.", None, "RIO DE JANEIRO", "Reuters", "Body."),
    ("ST. PETERSBURG, March 1. /TASS/. Body.", None, "ST. PETERSBURG", "TASS", "Body."),
    ("KYIV (Reuters) - Body of the story.", None, "KYIV", "Reuters", "Body of"),
    ("SEOUL, Feb 23 (Yonhap) - Body.", None, "SEOUL", "Yonhap", "Body."),
    ("MOSCOW, Feb 23 (RIA Novosti) - Body.", None, "MOSCOW", "RIA Novosti", "Body."),
    ("NEW DELHI, Feb 23 (PTI) - Body.", None, "NEW DELHI", "PTI", "Body."),
    ("BERLIN (dpa) - Body.", None, "BERLIN", "dpa", "Body."),
    ("TOKYO (Kyodo) - Body.", None, "TOKYO", "Kyodo", "Body."),
    (" date 2022-02-23 washington, february 23. /tass/. ukraine will never recognize it.",
     D(2022, 2, 23), "WASHINGTON", "TASS", "ukraine will"),
    ("london (reuters) - body of the story.", None, "LONDON", "Reuters", "body of"),
    ("MINSK, Feb 23. /BELTA/. Body.", None, "MINSK", "BelTA", "Body."),
    ("MINSK, Feb 23. /Some Wire/. Body.", None, "MINSK", "SOME WIRE", "Body."),
    ("LAGOS (Acme Wire) - Body.", None, "LAGOS", "Acme Wire", "Body."),
    (" date 2022-13-45 MOSCOW, March 3. /TASS/. Body.", None, "MOSCOW", "TASS", "Body."),
    (" date 2022-02-23 Body without a dateline.", D(2022, 2, 23), None, None, "Body without"),
    # 1987 Reuters body style: no agency, the dash right after the month-day.
    ("BAHIA, Brazil, Feb 26 - Showers continued.", None, "BAHIA", None, "Showers"),
    ("SAN MATEO, Calif., March 2 - Body.", None, "SAN MATEO", None, "Body."),
    ("RICHMOND, Va. Feb 26 - Body.", None, "RICHMOND", None, "Body."),
    ("AMSTERDAM, 2 March - Body.", None, "AMSTERDAM", None, "Body."),
    ("COEUR D'ALENE, Idaho, March 2 - Body.", None, "COEUR D'ALENE", None, "Body."),
    ("Toronto, Feb 26 - Body.", None, "TORONTO", None, "Body."),
]


@pytest.mark.parametrize(("text", "date", "dateline", "agency", "start"), HEADER_CASES)
def test_parse_header(text, date, dateline, agency, start):
    header = parse_header(text)
    assert header == Header(date, dateline, agency, header.body)
    assert header.body.startswith(start)
    assert "/" not in header.body[:10] and "(" not in header.body[:10]


@pytest.mark.parametrize(
    "text",
    [
        "The company (Acme) - which makes widgets - said profits rose.",
        "Apple (AAPL) shares fell 3% on Tuesday.",
        "Shares rose. The company (Acme) - which makes widgets - said so.",
        "London (Acme Wire) - an unknown agency needs an upper-case dateline.",
        "On Monday, March 2 - the day after - nothing happened.",
        "Yesterday, Feb 3 - a day like any other.",
        "NATO - the alliance - met today.",
        "He told Reuters that prices would rise (Reporting by nobody) in March.",
        "Plain text with no header at all.",
        "",
    ],
)
def test_parse_header_leaves_ordinary_text_alone(text):
    assert parse_header(text) == Header(None, None, None, text)


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("LONDON (Reuters) - Prices rose.\n\nReuter", "Prices rose."),
        ("Prices rose. REUTER", "Prices rose."),
        ("Prices rose.\n\nREUTERS", "Prices rose."),
        ("Prices rose. (Reporting by A. Writer; Editing by B. Editor)", "Prices rose."),
        ("Prices rose.\n\n(Writing by A. Writer)", "Prices rose."),
        ("Prices rose.\n\n(Additional reporting by C; Editing by D)\n\nReuter", "Prices rose."),
        ("Prices rose.\n\n\u00a9 2022 Reuters", "Prices rose."),
        ("Prices rose. Copyright 2022 Acme News. All rights reserved.", "Prices rose."),
        ("Prices rose.\n\nRead more: https://example.com/x", "Prices rose."),
        ("Prices rose.\n\nFollow us on Twitter @example", "Prices rose."),
        ("Prices rose.\n\nClick here to subscribe.", "Prices rose."),
        # In the middle, the same phrases are content.
        ("Click here, he said. Prices rose.", "Click here, he said. Prices rose."),
        ("He told Reuters so.", "He told Reuters so."),
        ("Copyright law changed. Prices rose.", "Copyright law changed. Prices rose."),
        ("Read more books, he said. Prices rose.", "Read more books, he said. Prices rose."),
        ("Prices rose.\n\nREUTER...", "Prices rose."),
    ],
)
def test_parse_header_strips_trailers_only_at_the_end(text, body):
    assert parse_header(text).body == body


def test_parse_header_on_seed_first_line():
    first_line = SEED.read_text(encoding="utf-8").split("\n", 1)[0]
    header = parse_header(clean_text(first_line))
    assert header.published_date == dt.date(2022, 2, 23)
    assert header.dateline == "WASHINGTON"
    assert header.agency == "TASS"
    assert header.body.startswith("Ukraine will never recognize")
    assert "TASS" not in header.body[:40] and "date 2022" not in header.body


# --------------------------------------------------------------------------------------------
# Reuters-21578
# --------------------------------------------------------------------------------------------


def reuters_docs() -> list[dict[str, str | None]]:
    """<REUTERS> records of the SGML file: title, dateline and body text (None if absent)."""
    sgml = REUTERS_SGM.read_text(encoding="latin-1")
    docs = []
    for record in re.findall(r"<REUTERS\b.*?</REUTERS>", sgml, re.DOTALL):
        fields = {}
        for tag in ("TITLE", "DATELINE", "BODY"):
            m = re.search(rf"<{tag}>(.*?)</{tag}>", record, re.DOTALL)
            fields[tag.lower()] = m.group(1) if m else None
        docs.append(fields)
    return docs


@needs(REUTERS_SGM)
def test_reuters_bodies_clean_up():
    docs = reuters_docs()
    assert len(docs) == 1000
    raw_bodies = [d["body"] for d in docs if d["body"]]
    # The raw text has every problem the cleaner must fix, so the checks below can fail.
    assert all("&#3;" in b for b in raw_bodies)
    assert sum("&lt;" in b for b in raw_bodies) > 100
    assert all(LONE_NEWLINE.search(b) for b in raw_bodies if len(b) > 200)
    bodies = [parse_header(clean_text(b)).body for b in raw_bodies]
    assert len(bodies) > 900
    for body in bodies:
        assert body
        assert "&#" not in body and "&lt;" not in body and "&amp;" not in body
        assert not CONTROL.search(body)
        assert not re.search(r"<[A-Za-z/!]", body)
        assert not re.search(r"(?i)\breuters?\W*$", body)
        assert not LONE_NEWLINE.search(body) and "\n\n\n" not in body
        assert body == body.strip() and "  " not in body


@needs(REUTERS_SGM)
def test_reuters_datelines_parse():
    """The <DATELINE> element put back before its body is the 1987 in-body header form."""
    docs = [d for d in reuters_docs() if d["dateline"] and d["body"]]
    parsed = 0
    for d in docs:
        header = parse_header(clean_text(d["dateline"] + d["body"]))
        city = d["dateline"].split(",")[0].strip().upper()
        if header.dateline == city:
            parsed += 1
            assert header.agency is None
            assert not header.body.upper().startswith(city + ",")
    # The few misses are typos in the source ("Narch 2", "ME}LBOURNE", "New york").
    assert parsed / len(docs) > 0.99


@needs(REUTERS_SGM)
def test_reuters_sentences_keep_all_text():
    bodies = [parse_header(clean_text(d["body"])).body for d in reuters_docs() if d["body"]]
    for body in bodies[:300]:
        sentences = split_sentences(body)
        assert sentences
        assert "".join("".join(sentences).split()) == "".join(body.split())


# --------------------------------------------------------------------------------------------
# split_sentences
# --------------------------------------------------------------------------------------------


def test_split_sentences_abbreviations():
    text = "Mr. Smith went to Washington. He arrived at 5 p.m. on Monday."
    assert split_sentences(text) == [
        "Mr. Smith went to Washington.",
        "He arrived at 5 p.m. on Monday.",
    ]


def test_split_sentences_paragraph_breaks_end_sentences():
    text = "A heading without a full stop\n\nThe U.S. economy grew. Prices rose\n\n\n\nLast one."
    assert split_sentences(text) == [
        "A heading without a full stop",
        "The U.S. economy grew.",
        "Prices rose",
        "Last one.",
    ]


def test_split_sentences_empty():
    assert split_sentences("") == []
    assert split_sentences("\n\n  \n\n") == []


def test_split_sentences_is_thread_safe():
    """pysbd keeps per-call state on the shared Segmenter; threads must not see each other's."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # force frequent thread switches inside pysbd
    try:
        texts = [
            " ".join(f"Dr. No{i} said {j} things at 5 p.m. on day {i}." for j in range(1 + i % 7))
            for i in range(24)
        ]
        expected = [split_sentences(t) for t in texts]
        results: dict[int, list[list[str]]] = {i: [] for i in range(len(texts))}

        def work(i: int) -> None:
            for _ in range(10):
                results[i].append(split_sentences(texts[i]))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert [len(e) for e in expected] == [1 + i % 7 for i in range(len(texts))]
    for i, runs in results.items():
        assert all(r == expected[i] for r in runs)


# --------------------------------------------------------------------------------------------
# clean_document
# --------------------------------------------------------------------------------------------


def seed_document(**kwargs) -> Document:
    return Document(
        doc_id="000", source=str(SEED), raw_text=SEED.read_text(encoding="utf-8"), **kwargs
    )


def test_clean_document_on_seed():
    doc = seed_document(title="  Kuleba &amp; Blinken\u200b meet ", meta={"date": "2021-01-01"})
    assert clean_document(doc) is doc
    assert doc.published_date == dt.date(2022, 2, 23)  # the header wins over meta
    assert doc.dateline == "WASHINGTON"
    assert doc.agency == "TASS"
    assert doc.title == "Kuleba & Blinken meet"
    assert doc.text.startswith("Ukraine will never recognize")
    assert doc.text.endswith("extremely serious consequences.")
    assert doc.text == clean_text(doc.text)
    raw_paragraphs = [p for p in doc.raw_text.split("\n\n") if p.strip()]
    assert doc.text.count("\n\n") == len(raw_paragraphs) - 1
    assert len(doc.sentences) > len(raw_paragraphs)
    assert doc.sentences[0].startswith("Ukraine will never recognize")
    assert all(s == s.strip() and s and "\n" not in s for s in doc.sentences)
    assert "".join("".join(doc.sentences).split()) == "".join(doc.text.split())


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"published_date": "2021-05-06"}, dt.date(2021, 5, 6)),
        ({"date": "2021-05-06T10:11:12Z"}, dt.date(2021, 5, 6)),
        ({"published": dt.datetime(2021, 5, 6, 7, 8)}, dt.date(2021, 5, 6)),
        ({"date": "not a date", "published": "2020-02-29"}, dt.date(2020, 2, 29)),
        ({"date": "May 6, 2021"}, None),
        ({}, None),
    ],
)
def test_clean_document_date_from_meta(meta, expected):
    doc = clean_document(Document(doc_id="x", source="s", raw_text="Plain story.", meta=meta))
    assert doc.published_date == expected
    assert (doc.dateline, doc.agency, doc.title) == (None, None, None)
    assert doc.text == "Plain story."
    assert doc.sentences == ["Plain story."]


def test_clean_document_timing_on_seed():
    clean_document(seed_document())  # warm up the segmenter
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        clean_document(seed_document())
    per_doc = (time.perf_counter() - start) / runs
    assert per_doc < 0.5, f"{per_doc * 1000:.1f} ms per document"


ABBREVIATION_CASES = [
    "Mr. Smith met Dr. Jones at 5 p.m. on Jan. 5. He said no. 5 was fine, e.g. the U.S. one.",
    "See fig. 3 and pp. 4-5. St. Louis is big. Gen. Lee arrived. Prof. Li spoke on Sept. 3.",
    "The Co. said its No. 2 plant at Art. 5 was sold. Inc. revenue rose. Messrs. A and B left.",
    "Ph.D. students, i.e. grads, came. Vs. them? Yes. The man in St. Paul, Minn. is here.",
    "It is what it is. Al said no. May is a month. Me too. Art is long, life is short.",
]


def test_fast_segmenter_splits_exactly_like_pysbd():
    """The pruned abbreviation pass must not change a single split (see `_FastEnglish`)."""
    from tasks.steps.sentences import _segmenter, reference_segmenter

    paragraphs = list(ABBREVIATION_CASES)
    cnndm = MESSY.parent / "cnndm" / "dev.jsonl"
    if cnndm.is_file():
        for line in cnndm.read_text(encoding="utf-8").splitlines()[:25]:
            paragraphs += clean_text(json.loads(line)["article"]).split("\n")
    sgm = MESSY / "reuters21578_reut2-000.sgm"
    if sgm.is_file():
        bodies = re.findall(r"<BODY>(.*?)</BODY>", sgm.read_text(encoding="latin-1"), re.S)
        paragraphs += [p for b in bodies[:150] for p in clean_text(b).split("\n")]
    fast, ref = _segmenter(), reference_segmenter()
    assert fast.language_module is not ref.language_module
    checked = [p for p in paragraphs if p.strip()]
    assert len(checked) > 50 or not cnndm.is_file()
    for para in checked:
        assert fast.segment(para) == ref.segment(para), para
    # the cases above do exercise abbreviations: a period is kept inside a sentence
    assert fast.segment(ABBREVIATION_CASES[0])[0].startswith("Mr. Smith met Dr. Jones at 5 p.m.")
