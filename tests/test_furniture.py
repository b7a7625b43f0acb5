"""Page labels glued into sentences ("… delays Read more The mayor …"): cut, recorded in
`meta`, and the article kept; pages of labels only still rejected; prose that merely holds the
words of a label left alone. The articles are invented for these tests."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.models.summarizers import is_boilerplate_only
from tasks.pipeline import process_batch, run_step
from tasks.record import Document, documents_to_table
from tasks.steps import clean
from tasks.steps.base import Batch, StepSettings
from tasks.steps.clean import FURNITURE_KEY, clean_document
from tasks.steps.furniture import cut_furniture

# (raw text, the labels cut from it, as written). Each one was rejected as `boilerplate_only`
# before labels were cut: every sentence of it held one.
GLUED = [
    ("The new tram line between the railway station and the university opened on Monday after "
     "two years of delays Read more The mayor and the transport minister rode the first car "
     "across the river, waving to a crowd of commuters",
     ["Read more"]),
    ("SIGN UP FOR OUR NEWSLETTER The regional savings bank reported a sharp rise in profits for "
     "the third quarter on Thursday, helped by higher interest rates and fewer bad loans.",
     ["SIGN UP FOR OUR NEWSLETTER"]),
    ("Image copyright Reuters Image caption Hundreds of residents gathered in the market square "
     "on Sunday evening to protest against the planned closure of the town's only hospital.",
     ["Image copyright Reuters", "Image caption"]),
    ("Firefighters brought a blaze at a furniture warehouse near the harbour under control "
     "overnight Follow us on Twitter and Facebook Nobody was hurt, the fire service said, but "
     "the building will have to be torn down Advertisement",
     ["Follow us on Twitter and Facebook", "Advertisement"]),
    ("Click here The village school will reopen next week after the floods damaged two "
     "classrooms and the library in March Share this article",
     ["Click here", "Share this article"]),
    ("Related: The city council approved a plan on Tuesday to plant ten thousand trees along "
     "its busiest roads over the next five years Sign up for our free daily newsletter",
     ["Related:", "Sign up for our free daily newsletter"]),
]
LABEL_WORDS = re.compile(
    r"read more|sign up|newsletter|image (?:copyright|caption)|follow us|advertisement|"
    r"click here|share this|related:", re.IGNORECASE)


def _batch(*texts: str) -> Batch:
    docs = [Document(doc_id=f"d{i}", source=f"s{i}", raw_text=t) for i, t in enumerate(texts)]
    return Batch(seq=0, docs=docs, n_items=len(docs))


@pytest.mark.parametrize(("raw", "labels"), GLUED)
def test_glued_labels_are_cut_and_recorded_in_meta(raw, labels):
    doc = clean_document(Document(doc_id="x", source="s", raw_text=raw))
    assert doc.meta[FURNITURE_KEY] == labels
    assert doc.sentences and not any(LABEL_WORDS.search(s) for s in doc.sentences)
    assert not LABEL_WORDS.search(doc.text)
    assert not is_boilerplate_only(doc.sentences)
    # everything else is kept, word for word
    words = raw.split()
    for label in labels:
        i = next(i for i in range(len(words)) if " ".join(words[i:]).startswith(label))
        del words[i:i + len(label.split())]
    assert doc.text.split() == words


def test_glued_articles_pass_the_clean_step():
    batch = run_step(clean.STEP, _batch(*(raw for raw, _ in GLUED)), StepSettings())
    assert not batch.rejects
    assert [d.meta[FURNITURE_KEY] for d in batch.docs] == [labels for _, labels in GLUED]


def test_a_label_ends_the_sentence_it_was_glued_to():
    doc = clean_document(Document(doc_id="x", source="s", raw_text=GLUED[0][0]))
    assert doc.sentences[0].endswith("after two years of delays")
    assert doc.sentences[1].startswith("The mayor and the transport minister")


def test_glued_articles_are_written_with_clean_summaries():
    batch = process_batch(_batch(*(raw for raw, _ in GLUED)), StepSettings())
    assert not batch.rejects and len(batch.docs) == len(GLUED)
    for doc in batch.docs:
        assert doc.summary and not LABEL_WORDS.search(doc.summary)
        assert doc.sentiment is not None
    rows = documents_to_table(batch.docs, {}).to_pylist()
    assert [json.loads(r["meta"])[FURNITURE_KEY] for r in rows] == [lb for _, lb in GLUED]


@pytest.mark.parametrize("page", [
    "Read more",
    "Advertisement",
    "Image copyright Reuters Image caption",
    "SIGN UP FOR OUR NEWSLETTER\n\nFollow us on Instagram\n\nShare this article",
    "Read more » Related: Click here.",
])
def test_pages_of_labels_only_are_still_boilerplate(page):
    batch = run_step(clean.STEP, _batch(page), StepSettings())
    assert not batch.docs
    assert [r.reason for r in batch.rejects] == ["boilerplate_only"]


@pytest.mark.parametrize("prose", [
    "I want to read more books this year, the librarian told the meeting on Friday.",
    "Readers who Read More Books live longer, according to a study published this week.",
    "The Advertisement Standards Council ruled on Monday that the poster was misleading.",
    "Advertisement revenue at the group fell by a third in the first half of the year.",
    "Related companies posted gains on Wednesday as investors returned to the market.",
    "The council will sign up more volunteers to clear the snow before the holidays.",
    "Image copyright law is a thicket, the lawyer warned the committee on Tuesday.",
    "VOTERS WHO READ MORE NEWS TRUST IT LESS, A SURVEY SAYS.",
    "Fans who follow us on Twitter saw the news first, the club said on Saturday.",
])
def test_prose_that_holds_a_label_is_kept_intact(prose):
    assert cut_furniture(prose) == (prose, [])
    batch = run_step(clean.STEP, _batch(prose), StepSettings())
    assert not batch.rejects
    (doc,) = batch.docs
    assert doc.sentences == [prose] and FURNITURE_KEY not in doc.meta


def test_a_page_of_boilerplate_is_one_whose_sentences_are_furniture_not_mention_it():
    assert is_boilerplate_only(["Subscribe to our newsletter!", "Menu"])
    assert is_boilerplate_only(["“Please sign up for our newsletter.”"])
    assert is_boilerplate_only(["Acme Media 2024 | Home | News | Sport"])
    assert not is_boilerplate_only(["The court heard the copyright case against the publisher."])
    assert not is_boilerplate_only(["Voters who read more news trust it less, a survey found."])


@pytest.mark.parametrize("sentence", [
    "Click here to download the full report.",  # a whole sentence of furniture, not glued
    "Read more 10 people were injured.",  # not followed by a capitalised word
    "Story continues below advertisement, the banner said.",
])
def test_labels_not_glued_before_a_capitalised_word_are_not_cut(sentence):
    assert cut_furniture(sentence) == (sentence, [])


@pytest.mark.parametrize(("text", "expected", "labels"), [
    ("First part.\n\nRead more »\n\nSecond part.", "First part.\n\nSecond part.",
     ["Read more »"]),
    ("He left. Read more. Then it rained.", "He left.\n\nThen it rained.", ["Read more."]),
    ("Image copyright Getty Images Image caption The port at dawn",
     "The port at dawn", ["Image copyright Getty Images", "Image caption"]),
    ("Image copyright Jane Doe Image caption Workers at the port",
     "Workers at the port", ["Image copyright Jane Doe", "Image caption"]),
    ("Image copyright holders sued. Image caption Workers", "Image copyright holders sued.\n\n"
     "Workers", ["Image caption"]),
    ("Storm ends READ MORE The roads reopen", "Storm ends\n\nThe roads reopen", ["READ MORE"]),
    ("Rates rise Continue reading the main story The bank", "Rates rise\n\nThe bank",
     ["Continue reading the main story"]),
    ("No labels here.", "No labels here.", []),
])
def test_cut_furniture_cases(text, expected, labels):
    assert cut_furniture(text) == (expected, labels)


def test_a_label_before_the_wire_header_is_cut_first():
    doc = clean_document(Document(doc_id="x", source="s", raw_text=(
        "SIGN UP FOR OUR NEWSLETTER LONDON (Reuters) - The regional bank reported higher "
        "profits on Thursday.")))
    assert (doc.dateline, doc.agency) == ("LONDON", "Reuters")
    assert doc.sentences == ["The regional bank reported higher profits on Thursday."]
    assert doc.meta[FURNITURE_KEY] == ["SIGN UP FOR OUR NEWSLETTER"]


def test_text_without_labels_comes_back_unchanged():
    text = "  Odd   spacing\n\n\n stays as it was  "
    assert cut_furniture(text) == (text, [])


# Labels, near-labels and prose around them, in any order and spacing.
PIECES = ["Read more", "read more", "READ MORE", "Sign up for our newsletter", "Advertisement",
          "Image copyright Reuters", "Image caption", "Related:", "Follow us on X", "The",
          "mayor", "to", "the", "WHO", "NEWS", "said.", "10", "“Yes”", "»", " ", "  ", "\n\n"]


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from(PIECES), max_size=20).map(" ".join))
def test_cutting_only_removes_whole_labels(text):
    out, cut = cut_furniture(text)
    if not cut:
        assert out == text
        return
    # The words left are the words given, in order, less exactly the words of the labels cut.
    rest = iter(text.split())
    assert all(word in rest for word in out.split())
    assert len(text.split()) - len(out.split()) == sum(len(c.split()) for c in cut)
    assert out == out.strip() and "\n\n\n" not in out
