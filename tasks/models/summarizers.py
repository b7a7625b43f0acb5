"""Summarisers: one interface, resolved by name, so the flow never cares how a summary is made.

The offline default is extractive: it picks a few whole sentences of the article, scored on the
MiniLM sentence embeddings that `tasks.steps.embed` already computed for the batch, so it adds no
weights and almost no time. An abstractive (seq2seq) summariser is meant to be one more entry
in `BUILTIN_SUMMARIZERS` implementing the same protocol (with `needs_embeddings = False`,
`summary_sentence_ids` left empty and `summary_chunks` set).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tasks.models.encoder import Encoder
from tasks.models.lead import LEAD_SENTENCES
from tasks.models.registry import ModelError
from tasks.models.sentence_encoders import (
    load_sentence_encoder,
    sentence_encoder_ref,
)
from tasks.models.sentiment import LORA_NAME
from tasks.record import Document


@runtime_checkable
class Summarizer(Protocol):
    """What the flow needs from a summariser."""

    name: str
    needs_embeddings: bool  # True: reads doc.embeddings set by tasks.steps.embed (computes if None)

    def provenance(self) -> dict[str, str]:
        """{"name", "revision", "params" (a JSON string)} for the row provenance."""
        ...

    def summarize(self, docs: list[Document]) -> list[Document]:
        """Fill `summary`, `summary_sentence_ids` and `summary_chunks` of every document."""
        ...


# --- which sentences may be picked ----------------------------------------------------------
# A summary sentence must read as prose from the story. News bodies carry wire/site furniture
# (bylines, timestamps, share prompts) and photo captions that are often glued to the next
# sentence because they have no full stop; picking one looks broken even when it scores well.

_BOILERPLATE = re.compile(
    r"\bby \.\s|daily mail reporter|\bpublished:|\bupdated:|scroll down|click here|"
    r"follow us\b|read more\b|all rights reserved|copyright|©|\(c\)[ ]?\d{4}|\bsubscribe\b|"
    r"sign up for|"
    r"share this (?:article|story)|comments? below|watch the video|video courtesy|"
    # site furniture that whole scraped pages can consist of: cookie banners, menus
    r"we use cookies|cookies? (?:policy|settings|preferences)|accept (?:all )?cookies|"
    r"privacy policy|terms of (?:use|service)|skip to (?:main )?content|"
    r"(?:\s[|•·»›]\s[^|•·»›]*){3}",  # "Home | News | Sport | Weather": a navigation menu
    re.IGNORECASE,
)
# "(left)", "(centre)", ", right,", "(from left to right)", "pictured above", "seen here".
_CAPTION = re.compile(
    r"\((?:from |far |top |bottom |second |back |front )*(?:left|right|centre|center|top|bottom|"
    r"above|below|inset)\b[^)]*\)|, (?:far |second from )?(?:left|right|centre|center),|"
    r"\bpictured (?:above|below|left|right|here)\b|\bseen here\b|\bphoto(?:graph)?:|\bimage:",
    re.IGNORECASE,
)
# Daily Mail caption labels: "Tragic: The man ..." - but not "He said: 'quote'".
_LABEL = re.compile(r"^(?P<label>[A-Z][^:'\"‘“]{0,40}):\s+(?!['\"‘“])")
_SPEECH = re.compile(
    r"\b(?:said|says|say|added|adds|told|tells|wrote|writes|continued|explained|stated|"
    r"tweeted|posted|asked|replied|warned|insisted|admitted|claimed|revealed|reads?)\b",
    re.IGNORECASE,
)
MIN_WORDS = 6
MAX_WORDS = 80  # a lead sentence is rarely over 55 words; longer is glued captions or quotes
MIN_LETTER_SHARE = 0.6


def _caption_label(sentence: str) -> bool:
    m = _LABEL.match(sentence)
    if m is None:
        return False
    label = m.group("label")
    return len(label.split()) <= 4 and not _SPEECH.search(label)


# (reason, test) pairs, checked in order; the reason is what logs and tests report.
SENTENCE_RULES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("too short", lambda s: len(s.split()) < MIN_WORDS),
    ("too long", lambda s: len(s.split()) > MAX_WORDS),
    ("mostly non-letters",
     lambda s: sum(c.isalpha() for c in s) < MIN_LETTER_SHARE * sum(not c.isspace() for c in s)),
    ("byline or boilerplate", lambda s: _BOILERPLATE.search(s) is not None),
    ("photo caption", lambda s: _CAPTION.search(s) is not None or _caption_label(s)),
)


# Where a boilerplate phrase makes a whole sentence furniture: at its start, after nothing but
# punctuation or "Please" ("Subscribe to our newsletter!", "© 2024 …"), or a mark that prose
# never holds (©, "All rights reserved", a menu's separators) anywhere in it.
_FURNITURE_LEAD_IN = re.compile(r"[\W\d_]*(?:please[\s,]+)?", re.IGNORECASE)
_FURNITURE_ANYWHERE = re.compile(r"©|\(c\)|all rights reserved|\s[|•·»›]\s", re.IGNORECASE)


def _is_furniture_sentence(sentence: str) -> bool:
    """A sentence that is site furniture, not prose that mentions it: "We use cookies." is,
    "I want to read more books." and "The copyright case was heard on Monday." are not."""
    return any(_FURNITURE_LEAD_IN.fullmatch(sentence, 0, m.start())
               or _FURNITURE_ANYWHERE.match(m.group())
               for m in _BOILERPLATE.finditer(sentence))


def is_boilerplate_only(sentences: list[str]) -> bool:
    """True for a page of site furniture only (cookie banner, menu, "subscribe", copyright).

    At least one sentence must be furniture (a boilerplate phrase that opens it, or a mark
    such as ©) and every other one a stub of at most three words or mostly non-letters
    ("Accept", "Menu", "© 2024"): a short headline, or a sentence that only mentions a
    boilerplate phrase ("readers who read more"), is a (short) document, not furniture.
    """
    hits = [_is_furniture_sentence(s) for s in sentences]
    return any(hits) and all(
        hit or len(s.split()) <= 3 or rejection_reason(s) == "mostly non-letters"
        for s, hit in zip(sentences, hits, strict=True))


def rejection_reason(sentence: str) -> str | None:
    """Why `sentence` may not be a summary sentence, or None if it may."""
    s = sentence.strip()
    for reason, test in SENTENCE_RULES:
        if test(s):
            return reason
    return None


# --- the extractive summariser --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtractiveParams:
    """Every knob that changes which sentences are picked (all go into provenance).

    score(i) = w * relevance(i) + (1 - w) * 0.5 ** (rank(i) / half_life), w = relevance_weight,
    relevance = cosine to the prior-weighted centroid, min-max scaled to [0, 1] within the document;
    then greedy MMR: pick argmax score(i) - redundancy * max cosine to the sentences already picked.
    rank counts candidate sentences only, so a dropped byline does not push the lead down.
    """

    target_sentences: int = 3  # 2..4; fewer when the document has few candidate sentences
    position_half_life: float = 2.0  # in candidate sentences: news puts the point first
    relevance_weight: float = 0.3  # share of centroid similarity against the position prior
    redundancy: float = 0.3  # MMR penalty weight on similarity to already-picked sentences
    # Sentence vectors: the sentiment model's adapted encoder (one pass for both models) or a
    # sentence-transformers name (tasks.models.encoder).
    encoder: str = LORA_NAME
    read_sentences: int | None = LEAD_SENTENCES  # picks from the lead (None: all sentences)

    def __post_init__(self) -> None:
        if not 2 <= self.target_sentences <= 4:
            raise ModelError(f"target_sentences must be 2..4, got {self.target_sentences}")
        if self.position_half_life <= 0:
            raise ModelError("position_half_life must be > 0")
        if not 0.0 <= self.relevance_weight <= 1.0:
            raise ModelError("relevance_weight must be in [0, 1]")
        if self.redundancy < 0:
            raise ModelError("redundancy must be >= 0")
        if self.read_sentences is not None and self.read_sentences < 3:
            raise ModelError("read_sentences must be >= 3 (or None: all)")


class ExtractiveSummarizer:
    """Lead-aware, centroid-relevant, redundancy-controlled sentence extraction.

    Centroid similarity alone favours "typical" sentences and ignores that news states the
    point first (measured on CNN/DM: ROUGE-2 12.2 vs 17.7 for the first three sentences), so
    relevance is blended with a position prior that halves every `position_half_life`
    candidate sentences, and MMR keeps near-duplicates (lead restated by a quote) out.
    """

    name = "extractive"
    needs_embeddings = True

    def __init__(self, params: ExtractiveParams | None = None):
        self.params = params or ExtractiveParams()

    def _encoder(self) -> Encoder:
        # Only for documents that come without embeddings (a direct call): in a run the embed
        # step hands over the vectors of the run's backend.
        return load_sentence_encoder(self.params.encoder)

    def provenance(self) -> dict[str, str]:
        # No weights of its own: the encoder's revision pins what the scores were computed on.
        # Resolved, not loaded: with the onnx backend the torch encoder is never needed.
        ref = sentence_encoder_ref(self.params.encoder)
        params = {**asdict(self.params), "encoder": ref.name}
        return {"name": self.name, "revision": ref.revision,
                "params": json.dumps(params, sort_keys=True)}

    def n_sentences(self, n_candidates: int) -> int:
        """Summary length: the target, but at most about half of a short document."""
        if n_candidates <= 2:
            return n_candidates
        return max(2, min(self.params.target_sentences, n_candidates // 2))

    def summarize(self, docs: list[Document]) -> list[Document]:
        embeddings = self._embeddings(docs)
        for doc, emb in zip(docs, embeddings, strict=True):
            ids = self.select(self._read(doc), emb)
            doc.summary_sentence_ids = ids
            doc.summary = " ".join(doc.sentences[i].strip() for i in ids) if ids else None
            doc.summary_chunks = None
            doc.summary_method = "lead" if self._lead_fallback(self._read(doc)) else self.name
        return docs

    def _read(self, doc: Document) -> list[str]:
        """The sentences it picks from: the lead."""
        n = self.params.read_sentences
        return doc.sentences[:n] if n else doc.sentences

    def _embeddings(self, docs: list[Document]) -> list[np.ndarray | None]:
        """The batch's embeddings of the lead, encoding in one call only the documents that
        lack them (the embed step may have embedded more sentences than the lead)."""
        missing = [d for d in docs if d.embeddings is None and len(self._read(d)) > 2]
        fresh: dict[int, np.ndarray] = {}
        if missing:
            vectors = self._encoder().encode([s for d in missing for s in self._read(d)])
            start = 0
            for d in missing:
                fresh[id(d)] = vectors[start:start + len(self._read(d))]
                start += len(self._read(d))
        out: list[np.ndarray | None] = []
        for d in docs:
            n = len(self._read(d))
            emb = d.embeddings if d.embeddings is not None else fresh.get(id(d))
            if emb is not None and len(emb) < n:
                raise ValueError(f"document {d.doc_id}: {len(emb)} embeddings for {n} sentences")
            out.append(emb[:n] if emb is not None else None)
        return out

    @staticmethod
    def _lead_fallback(sentences: list[str]) -> bool:
        """Whether `select` falls back to the lead: 3+ sentences, none fit to be picked."""
        present = [s for s in sentences if s.strip()]
        return len(present) > 2 and all(rejection_reason(s) is not None for s in present)

    def select(self, sentences: list[str], emb: np.ndarray | None) -> list[int]:
        """Indices (article order) of the summary sentences; [] only for an empty document."""
        present = [i for i, s in enumerate(sentences) if s.strip()]
        if len(present) <= 2:  # a one- or two-sentence document is its own summary
            return present
        cand = np.array([i for i in present if rejection_reason(sentences[i]) is None])
        k = self.n_sentences(len(cand))
        if k == 0:  # every sentence failed the filter (lists of fragments): fall back to the lead
            return present[: self.params.target_sentences]
        if k == len(cand):
            return cand.tolist()
        assert emb is not None
        p = self.params
        vecs = emb[cand].astype(np.float64)
        prior = 0.5 ** (np.arange(len(cand)) / p.position_half_life)
        # The topic is what the lead is about: weighting the centroid by the same prior keeps
        # a long tail of quotes and background from defining it (flatter in relevance_weight).
        centroid = prior @ vecs
        centroid /= np.linalg.norm(centroid) or 1.0
        rel = vecs @ centroid
        spread = rel.max() - rel.min()
        rel = (rel - rel.min()) / spread if spread > 1e-9 else np.ones_like(rel)
        score = p.relevance_weight * rel + (1.0 - p.relevance_weight) * prior
        sim = vecs @ vecs.T
        picked: list[int] = []
        closest = np.zeros(len(cand))  # max similarity to anything picked so far
        for _ in range(k):
            mmr = score - p.redundancy * closest
            mmr[picked] = -math.inf
            best = int(np.argmax(mmr))
            picked.append(best)
            closest = np.maximum(closest, sim[best])
        return sorted(int(cand[j]) for j in picked)


# --- resolution by name ---------------------------------------------------------------------


def _extractive(**params: Any) -> ExtractiveSummarizer:
    try:
        return ExtractiveSummarizer(ExtractiveParams(**params))
    except TypeError as exc:
        raise ModelError(f"extractive summariser: {exc}") from exc


# name -> factory(**params). Any other name is a Hugging Face seq2seq model (a local folder
# or a Hub id, `tasks.models.seq2seq`), resolved by `tasks.models.registry.resolve_model`.
BUILTIN_SUMMARIZERS: dict[str, Callable[..., Summarizer]] = {"extractive": _extractive}
DEFAULT_SUMMARIZER = "extractive"
# Built-ins that read the shared sentence embeddings (`needs_embeddings`), known without
# loading them: the embed step runs only when a chosen model is one of these.
READS_EMBEDDINGS = frozenset({"extractive"})
# Options that only a Hugging Face summariser takes (generation overrides among them).
HF_SUMMARIZER_OPTIONS = ("revision", "dtype", "batch_size", "num_beams", "max_new_tokens",
                         "min_new_tokens", "no_repeat_ngram_size", "length_penalty")


def _seq2seq(name: str, revision: str | None = None, **params: Any) -> Summarizer:
    from tasks.models.registry import resolve_model
    from tasks.models.seq2seq import Seq2SeqSummarizer

    ref = resolve_model(name, revision, builtins=", ".join(BUILTIN_SUMMARIZERS))
    return Seq2SeqSummarizer(ref, **params)


@lru_cache(maxsize=8)
def _load(name: str, frozen_params: tuple[tuple[str, Any], ...]) -> Summarizer:
    params = dict(frozen_params)
    factory = BUILTIN_SUMMARIZERS.get(name)
    if factory is None:
        return _seq2seq(name, **params)
    hf_only = sorted(set(params) & set(HF_SUMMARIZER_OPTIONS))
    if hf_only:
        raise ModelError(f"{', '.join(hf_only)} apply to Hugging Face summarisers, not to the "
                         f"built-in {name!r}")
    return factory(**params)


def load_summarizer(name: str = DEFAULT_SUMMARIZER, **params: Any) -> Summarizer:
    """One summariser per process, name and parameters (keyword order does not matter).

    A built-in name, a local seq2seq model folder or a Hub id (`revision`, generation
    overrides and `dtype` apply to those).
    """
    return _load(name, tuple(sorted((k, v) for k, v in params.items() if v is not None)))
