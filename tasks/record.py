"""The one record that flows through the steps, and the Arrow schemas it is written with.

Every step takes and returns `Document` objects (or `Reject`s), so each step is a plain
function that can be tested without Prefect. The Arrow schemas are declared here, next to the
record, so that the columns analysts see and the fields the code fills cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pyarrow as pa

from tasks.models.lead import ENTITY_SENTENCES

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")


@dataclass(slots=True)
class Document:
    """One input document on its way through the pipeline.

    Fields are filled step by step: ingest sets identity and raw text, clean sets the body,
    header metadata and sentences, the model steps add summary and sentiment. `embeddings`
    and `sentence_logits` are per-batch scratch values shared by the model steps, never
    written.
    """

    doc_id: str
    source: str
    raw_text: str
    title: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # clean
    text: str = ""
    published_date: dt.date | None = None
    dateline: str | None = None
    agency: str | None = None
    sentences: list[str] = field(default_factory=list)
    # models
    embeddings: np.ndarray | None = None
    # scratch: sentiment logits of the embedded sentences, when the embed step's encoder is
    # the sentiment model itself (one pass for both; `tasks.steps.embed`)
    sentence_logits: np.ndarray | None = None
    summary: str | None = None
    summary_sentence_ids: list[int] = field(default_factory=list)
    summary_chunks: int | None = None
    sentiment: str | None = None
    sentiment_score: float | None = None
    sentiment_probs: tuple[float, float, float] | None = None
    # dedup: doc_id of the earlier document this one nearly duplicates (tasks.io.near_duplicates)
    duplicate_of: str | None = None
    minhash: np.ndarray | None = None  # scratch: MinHash signature of `text`, never written
    # language (tasks.steps.language): ISO 639-1 code or "und", and the detector's probability
    language: str | None = None
    language_score: float | None = None
    # how the summary was made: "extractive", "lead" (fallback) or "whole_text" (short text)
    summary_method: str | None = None
    # entities (tasks.steps.entities): one dict per entity, as ENTITY_TYPE; None: step off
    entities: list[dict[str, Any]] | None = None
    # fields of steps beyond this record, by name: a step's own columns (`Step.columns`)
    extra: dict[str, Any] = field(default_factory=dict)


RECORD_FIELDS = frozenset(f.name for f in fields(Document))


def read_field(doc: Document, name: str) -> Any:
    """A field of the record, or a step's own field (`Document.extra`)."""
    return getattr(doc, name) if name in RECORD_FIELDS else doc.extra.get(name)


def write_field(doc: Document, name: str, value: Any) -> None:
    """Set a field of the record, or a step's own field (`Document.extra`); None clears it."""
    if name in RECORD_FIELDS:
        setattr(doc, name, value)
    elif value is None:
        doc.extra.pop(name, None)
    else:
        doc.extra[name] = value


@dataclass(slots=True, frozen=True)
class Reject:
    """An input that could not become a document row, with the reason why."""

    source: str
    reason: str
    detail: str = ""
    excerpt: str = ""
    doc_id: str | None = None


EXCERPT_CHARS = 200


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line preview of `text` for reject rows and logs."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


MODEL_PROVENANCE = pa.struct(
    [
        pa.field("name", pa.string()),
        pa.field("revision", pa.string()),
        pa.field("params", pa.string()),  # JSON: generation / pooling parameters
    ]
)

ENTITY_TYPE = pa.struct(
    [
        pa.field("name", pa.string()),  # as first written (a watchlist entry: its first alias)
        pa.field("type", pa.string()),  # person, organization, place, misc, market, watchlist
        pa.field("mentions", pa.int32()),  # in the title and lead
        pa.field("sentiment", pa.string()),  # negative / neutral / positive
        pa.field("score", pa.float32()),  # p(positive) - p(negative) towards it, in [-1, 1]
    ]
)

PROVENANCE = pa.struct(
    [
        pa.field("run_id", pa.string()),
        pa.field("textdigest_version", pa.string()),
        pa.field("processed_at", pa.timestamp("us", tz="UTC")),
        pa.field("encoder", MODEL_PROVENANCE),  # null when no step reads embeddings
        pa.field("summarizer", MODEL_PROVENANCE),
        pa.field("sentiment_model", MODEL_PROVENANCE),
        pa.field("entity_model", MODEL_PROVENANCE),  # null when the entities step is off
        pa.field("cleaner", pa.string()),  # JSON: cleaning options and library versions
    ]
)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("published_date", pa.date32()),
        pa.field("dateline", pa.string()),
        pa.field("agency", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("summary", pa.string()),
        pa.field("sentiment", pa.string()),
        pa.field("sentiment_score", pa.float32()),
        pa.field("prob_negative", pa.float32()),
        pa.field("prob_neutral", pa.float32()),
        pa.field("prob_positive", pa.float32()),
        pa.field("n_chars", pa.int32()),
        pa.field("n_sentences", pa.int32()),
        pa.field("summary_sentences", pa.list_(pa.int32())),
        pa.field("summary_chunks", pa.int32()),
        pa.field("meta", pa.string()),  # JSON object: input fields not mapped to a column
        pa.field("provenance", PROVENANCE, nullable=False),
        pa.field("duplicate_of", pa.string()),  # near-duplicate of this doc_id
        pa.field("language", pa.string()),  # ISO 639-1, or "und" (too short / unsure)
        pa.field("language_score", pa.float32()),
        pa.field("summary_method", pa.string()),  # extractive / lead / whole_text
        pa.field("entities", pa.list_(ENTITY_TYPE)),
    ],
    metadata={"textdigest.schema": "documents/1"},
)

# What each documents column means: the card's column table and the docs read it from here
# (tests check that every column has one).
COLUMN_DOCS = {
    "doc_id": "the input's own id, else a hash of its whitespace-normalised text",
    "source": "input file (and record position) on the publisher's machine",
    "title": "where the input has one",
    "published_date": "from the wire header, else a `published_date`/`date` input field",
    "dateline": "e.g. `WASHINGTON`",
    "agency": "news agency from the wire header, e.g. `TASS`, `Reuters`",
    "text": "the cleaned body, wire header and trailing boilerplate removed",
    "summary": "the summary written by the summariser",
    "sentiment": "`negative`, `neutral` or `positive`",  # the card adds the label rule
    "sentiment_score": "p(positive) − p(negative), in [-1, 1]",
    "prob_negative": "the document's pooled probability of the label",
    "prob_neutral": "the document's pooled probability of the label",
    "prob_positive": "the document's pooled probability of the label",
    "n_chars": "characters in `text`", "n_sentences": "sentences in `text`",
    "summary_sentences": "indices of the `text` sentences an extractive summary picked",
    "summary_chunks": "chunks a long article was split into for an abstractive summariser",
    "meta": "JSON object: input fields that are not columns",
    "provenance": "run id, textdigest version, processing time, and name, revision and "
                  "parameters of the encoder, summariser, sentiment and entity models",
    "duplicate_of": "doc_id of an earlier document this one nearly duplicates",
    "language": "ISO 639-1 code of the text's language, or `und` when unsure",
    "language_score": "the language detector's probability",
    "summary_method": "`extractive`, `lead` (fallback), `whole_text` (a short text) or "
                      "`abstractive` (a Hugging Face seq2seq model)",
    "entities": f"one entry per entity the title and first {ENTITY_SENTENCES} sentences name: "
                "`name` in its fullest form without a title (\"Tony Blair\" for \"Mr Blair\"), "
                "`type` (person, organization, place, misc: nationalities, events, works, "
                "products, as CoNLL-2003 types them; market: commodities, currencies, indices; "
                "watchlist: a listed name the tagger did not type), "
                "`mentions`, and the news's `sentiment` towards it with its `score` "
                "p(positive) − p(negative) (the label by the entity model's rule, see its "
                "card entry); empty when none "
                "is found, null when the entities step was off",
}

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("doc_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("excerpt", pa.string()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("rejected_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
    metadata={"textdigest.schema": "rejects/1"},
)


def documents_to_table(docs: list[Document], provenance: dict[str, Any],
                       schema: pa.Schema = DOCUMENT_SCHEMA) -> pa.Table:
    """Arrow table of finished documents; `provenance` is one dict shared by all rows.
    `schema`: the run's (`tasks.pipeline.document_schema`), whose columns past this record's
    are steps' own, read from `Document.extra`."""
    probs = [d.sentiment_probs or (None, None, None) for d in docs]
    columns = {
        "doc_id": [d.doc_id for d in docs],
        "source": [d.source for d in docs],
        "title": [d.title for d in docs],
        "published_date": [d.published_date for d in docs],
        "dateline": [d.dateline for d in docs],
        "agency": [d.agency for d in docs],
        "text": [d.text for d in docs],
        "summary": [d.summary for d in docs],
        "sentiment": [d.sentiment for d in docs],
        "sentiment_score": [d.sentiment_score for d in docs],
        "prob_negative": [p[0] for p in probs],
        "prob_neutral": [p[1] for p in probs],
        "prob_positive": [p[2] for p in probs],
        "n_chars": [len(d.text) for d in docs],
        "n_sentences": [len(d.sentences) for d in docs],
        "summary_sentences": [list(d.summary_sentence_ids) for d in docs],
        "summary_chunks": [d.summary_chunks for d in docs],
        "meta": [json.dumps(d.meta, ensure_ascii=False, default=str) if d.meta else None
                 for d in docs],
        "provenance": [provenance] * len(docs),
        "duplicate_of": [d.duplicate_of for d in docs],
        "language": [d.language for d in docs],
        "language_score": [d.language_score for d in docs],
        "summary_method": [d.summary_method for d in docs],
        "entities": [d.entities for d in docs],
    }
    for name in schema.names[len(columns):]:
        columns[name] = [d.extra.get(name) for d in docs]
    return pa.Table.from_pydict(columns, schema=schema)


def rejects_to_table(rejects: list[Reject], run_id: str, at: dt.datetime) -> pa.Table:
    """Arrow table of rejects for one run."""
    return pa.Table.from_pydict(
        {
            "source": [r.source for r in rejects],
            "doc_id": [r.doc_id for r in rejects],
            "reason": [r.reason for r in rejects],
            "detail": [r.detail for r in rejects],
            "excerpt": [r.excerpt for r in rejects],
            "run_id": [run_id] * len(rejects),
            "rejected_at": [at] * len(rejects),
        },
        schema=REJECT_SCHEMA,
    )
