"""The `clean` step: each document's body, header fields and sentences.

Cleaning (`tasks.steps.text`), the wire header (`tasks.steps.header`) and sentence splitting
(`tasks.steps.sentences`) are plain functions of their input, so the step gives the same
result on any worker. Page labels glued into the text ("… delays Read more The mayor …") are
cut (`tasks.steps.furniture`) and listed in `meta`. A document with nothing left, or only site
furniture, becomes a reject.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from tasks.models.summarizers import is_boilerplate_only
from tasks.record import Document, Reject, excerpt
from tasks.steps.base import BaseStep, StepSettings
from tasks.steps.furniture import cut_furniture
from tasks.steps.header import parse_header
from tasks.steps.sentences import (
    _LIKELY_END,
    MAX_SENTENCE_CHARS,
    split_sentences,
    split_sentences_counted,
)
from tasks.steps.text import clean_text

_META_DATE_KEYS = ("published_date", "date", "published")
# Its own key, like `textdigest_note`: the page labels cut from the text, as written, in order.
FURNITURE_KEY = "textdigest_furniture_removed"


def _meta_date(meta: dict[str, Any]) -> dt.date | None:
    """The first parseable ISO date among the usual metadata keys, if any."""
    for key in _META_DATE_KEYS:
        value = meta.get(key)
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str) and value.strip():
            s = value.strip()
            try:
                return dt.datetime.fromisoformat(s).date()
            except ValueError:
                pass
            try:
                return dt.date.fromisoformat(s[:10])
            except ValueError:
                continue
    return None


def without_leading_title(text: str, title: str) -> str:
    """`text` less a copy of `title` at its start (inputs that repeat the headline in the
    body), so the headline never reaches the sentences, the summary or the models twice."""
    words = title.split()
    if not words:
        return text
    pattern = r"\s*" + r"\s+".join(re.escape(w) for w in words) + r"(?:\s*[.:|–—-])?\s+"
    m = re.match(pattern, text, flags=re.IGNORECASE)
    if m is None or not text[m.end():].strip():
        return text
    return text[m.end():]


def model_read_limit(text: str, max_chars: int | None) -> str:
    """The part of `text` the models read: all of it, or its first `max_chars` characters
    cut at the last sentence end (else space) in the second half of that span."""
    if max_chars is None or len(text) <= max_chars:
        return text
    window = text[: max_chars + 1]
    ends = [m.end() for m in _LIKELY_END.finditer(window, max_chars // 2)]
    cut = max(ends[-1] if ends else -1, window.rfind("\n\n", max_chars // 2))
    if cut <= 0:
        cut = window.rfind(" ", max_chars // 2) + 1 or max_chars
    return text[:cut].rstrip()


def _add_note(doc: Document, note: str) -> None:
    # Its own key: an input field called `note` stays the input's.
    old = doc.meta.get("textdigest_note")
    doc.meta["textdigest_note"] = f"{old}; {note}" if old else note


def clean_document(doc: Document, max_model_chars: int | None = None) -> Document:
    """Fill the clean-step fields of `doc` in place and return it.

    The header's own date wins over metadata: it was written with the story, while feed
    metadata is often the crawl or export date. `doc.text` keeps the whole body; the
    sentences (what the models read) stop at `max_model_chars`, noted in `meta`.
    """
    # Labels are cut before the header is read: one may stand in front of the dateline.
    text, furniture = cut_furniture(clean_text(doc.raw_text))
    if furniture:
        doc.meta[FURNITURE_KEY] = furniture
    header = parse_header(text)
    doc.text = header.body
    doc.published_date = header.published_date or _meta_date(doc.meta)
    doc.dateline = header.dateline
    doc.agency = header.agency
    if doc.title is not None:
        doc.title = clean_text(doc.title)
        doc.text = without_leading_title(doc.text, doc.title)
    readable = model_read_limit(doc.text, max_model_chars)
    doc.sentences, cuts = split_sentences_counted(readable)
    if cuts:  # said, not silent: the row's sentences are not all the author's
        _add_note(doc, f"{cuts} cut(s) inside sentences longer than {MAX_SENTENCE_CHARS} "
                       "characters")
    if len(readable) < len(doc.text):
        _add_note(doc, f"models read the first {len(readable):,} of {len(doc.text):,} "
                       f"characters (max_model_chars {max_model_chars:,})")
    return doc


class Clean(BaseStep):
    """Clean every document; those with no text left become `empty_after_cleaning` (or
    `boilerplate_only`) rejects. The models read at most `settings.max_model_chars`."""

    name = "clean"
    needs = ("raw_text", "title", "meta")
    # title: cleaned like the body; meta: a note when sentences were cut or the models read
    # only part of the text (`textdigest_note`)
    provides = ("title", "meta", "text", "published_date", "dateline", "agency", "sentences")
    model_roles = ("cleaner",)

    def provenance(self, settings: StepSettings) -> dict[str, Any]:
        from tasks.models.registry import package_version

        return {"cleaner": json.dumps({"ftfy": package_version("ftfy"),
                                       "pysbd": package_version("pysbd"),
                                       "max_model_chars": settings.max_model_chars})}

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        for doc in docs:
            clean_document(doc, settings.max_model_chars)
        return self.written(docs, settings)

    def screen(self, doc: Document, settings: StepSettings) -> Reject | None:
        return _nothing_to_read(doc)


def _nothing_to_read(doc: Document) -> Reject | None:
    """The reject for a document with no text left, or only furniture; None otherwise."""
    if not doc.sentences:
        # Nothing left: was it a page of furniture that the trailer rules or the label cuts
        # stripped (a lone "All rights reserved.", "Read more"), or markup with no text at all?
        stripped = split_sentences(clean_text(doc.raw_text))
        if stripped and (FURNITURE_KEY in doc.meta or is_boilerplate_only(stripped)):
            reason, detail = "boilerplate_only", "only copyright, sign-off lines or page labels"
        else:
            reason = "empty_after_cleaning"
            detail = "no text left after removing markup, headers and boilerplate"
        return Reject(doc.source, reason, detail, excerpt(doc.raw_text), doc.doc_id)
    if is_boilerplate_only(doc.sentences):
        return Reject(doc.source, "boilerplate_only",
                      "only site furniture (cookie notice, menu, subscribe, copyright)",
                      excerpt(doc.text), doc.doc_id)
    return None


STEP = Clean()
