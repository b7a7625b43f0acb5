"""The `entities` step: who the title and lead name, and whether the news is good or bad for
each of them.

Names are found by `tasks.models.entity_finder` (the entity tagger on the shared pass, and a
watchlist, when given) in the title and the first `ENTITY_SENTENCES` sentences. Mentions of
one entity are one row: "Tesco plc", "Tesco" and "Tesco's"; "Tony Blair", "Mr Blair" and
"Blair"; "Congressional Budget Office (CBO)" and "CBO". Each mention is scored by the entity model
(`tasks.models.entity_sentiment`) reading its own sentence, and an entity's mentions are
pooled with the title weighted as for the document label. The label follows the entity
model's own rule (its config.json `label_rule`: the arg-max, which scored about 5 points of
macro-F1 above the document label's neutral band on held-out NewsMTSC mentions).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tasks.models.entity_finder import MARKET_TYPE, Span
from tasks.models.lead import ENTITY_SENTENCES
from tasks.models.sentiment_base import NEWS_POOLING, label_indices
from tasks.record import SENTIMENT_LABELS, Document
from tasks.steps.base import BaseStep, StepSettings

WATCHLIST_TYPE = "watchlist"  # a watchlist name the finder did not type
Watchlist = tuple[tuple[str, ...], ...]  # entries; each its aliases, the first the name


class WatchlistError(ValueError):
    """A watchlist file that cannot be read as one entity a line."""


def read_watchlist(path: Path) -> Watchlist:
    """One entity a line, aliases separated by `|` (`Tesco|Tesco plc|TSCO`); blank lines and
    lines starting with `#` are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise WatchlistError(f"cannot read watchlist {path}: {exc}") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        aliases = tuple(a.strip() for a in line.split("|"))
        if not all(aliases):
            raise WatchlistError(f"{path}:{number}: an empty alias in {line.strip()!r}")
        entries.append(aliases)
    return tuple(entries)


def _watch_patterns(watchlist: Watchlist) -> list[tuple[str, re.Pattern[str]]]:
    """(name, pattern) per entry: any alias, case-insensitive, as a whole word; the longest
    alias first, so "Tesco plc" wins over "Tesco"."""
    out = []
    for aliases in watchlist:
        alts = "|".join(re.escape(a) for a in sorted(aliases, key=len, reverse=True))
        out.append((aliases[0], re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.IGNORECASE)))
    return out


@dataclass(slots=True)
class _Entity:
    name: str
    type: str
    key: tuple[str, ...]
    watched: bool = False
    mentions: list[tuple[int, int, int]] = field(default_factory=list)  # (unit, start, end)
    types: list[str] = field(default_factory=list)  # the finder's type of each mention

    def settle_type(self) -> None:
        """The type most mentions have; on a tie, the type of the mention that gave the
        entity its name (its fullest form: "Philip Crosby Associates Inc" is a company even
        where a capitals title had "PHILIP CROSBY" a person); market and watchlist types
        only when no mention has another."""
        named = [t for t in self.types if t not in (MARKET_TYPE, WATCHLIST_TYPE)]
        if named:
            top = max(named.count(t) for t in named)
            tied = [t for t in dict.fromkeys(named) if named.count(t) == top]
            self.type = self.type if self.type in tied else tied[0]


def _tokens(text: str) -> tuple[str, ...]:
    """A name's comparison key: words, case-folded, without a leading "the" or possessive."""
    words = re.findall(r"\w+(?:[.&'’-]\w+)*", text.casefold())
    words = [re.sub(r"['’]s$", "", w) for w in words]
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return tuple(words)


def _contains(long: tuple[str, ...], short: tuple[str, ...]) -> bool:
    """`short` is the start or end of `long` ("Tesco" in "Tesco plc", "Johnson" in
    "Boris Johnson"), or its acronym ("CBO" of "Congressional Budget Office", "FBI" of
    "Federal Bureau of Investigation", "U.S." of "United States")."""
    if len(short) < len(long) and (long[: len(short)] == short or long[-len(short):] == short):
        return True
    return len(short) == 1 and len(long) > 1 and short[0].replace(".", "") == _initials(long)


_ACRONYM_SKIP = frozenset({"of", "and", "the", "for", "on", "in", "&"})


def _initials(words: tuple[str, ...]) -> str:
    """Initials of a name's words but its small ones ("of", "and", ...)."""
    return "".join(w[0] for w in [w for w in words if w not in _ACRONYM_SKIP] or words)


def _bracketed_alias(text: str, last: tuple[int, Span, _Entity], u: int, span: Span) -> bool:
    """`span` is a short form in brackets right after the name before it: an acronym or a
    ticker ("Texaco Inc (TX)", "RYKOFF-SEXTON INC (RYK)"), the same entity."""
    unit, before, ent = last
    return (unit == u and ent.type != MARKET_TYPE and span.type != MARKET_TYPE
            and len(span.text) <= 6 and span.text.isupper()
            and re.fullmatch(r"\s*\(", text[before.end:span.start]) is not None
            and text[span.end:span.end + 1] == ")")


def find_entities(units: list[str], finder, watch: list[tuple[str, re.Pattern[str]]]
                  ) -> list[_Entity]:
    """The distinct entities named in `units`, in order of first mention."""
    found: list[tuple[int, Span, str | None]] = []  # (unit, span, watchlist name)
    for u, (text, named) in enumerate(zip(units, finder.find_all(units), strict=True)):
        watched = [(m.start(), m.end(), name) for name, pat in watch for m in pat.finditer(text)]
        spans = [s for s in named if not any(a < s.end and s.start < b for a, b, _ in watched)]
        typed = {(s.start, s.end): s.type for s in named}
        for a, b, name in watched:
            kind = next((t for (x, y), t in typed.items() if x < b and a < y), WATCHLIST_TYPE)
            found.append((u, Span(a, b, text[a:b], kind), name))
        found += [(u, s, None) for s in spans]
    found.sort(key=lambda f: (f[0], f[1].start))
    entities: list[_Entity] = []
    by_key: dict[tuple[str, ...], _Entity] = {}
    by_watch: dict[str, _Entity] = {}
    last: tuple[int, Span, _Entity] | None = None  # the name just before, for its alias
    for u, span, watch_name in found:
        if watch_name is not None:
            ent = by_watch.get(watch_name)
            if ent is None:
                ent = by_watch[watch_name] = _Entity(watch_name, span.type, _tokens(watch_name),
                                                     watched=True)
                entities.append(ent)
            ent.mentions.append((u, span.start, span.end))
            continue
        key = _tokens(span.text)
        if not key:
            continue
        market = span.type == MARKET_TYPE
        if last is not None and _bracketed_alias(units[u], last, u, span):
            ent = last[2]  # "Texaco Inc (TX)", "Chicago Mercantile Exchange (CME)"
            by_key.setdefault(key, ent)
            ent.mentions.append((u, span.start, span.end))
            continue
        ent = by_key.get(key) or next(
            (e for e in entities if not e.watched and (e.type == MARKET_TYPE) == market
             and (_contains(e.key, key) or _contains(key, e.key))), None)
        if ent is None:
            ent = _Entity(span.text, span.type, key)
            entities.append(ent)
        elif _contains(key, ent.key) and len(key) > len(ent.key):  # a fuller form
            del by_key[ent.key]
            ent.name, ent.key, ent.type = span.text, key, span.type
        by_key[ent.key] = ent
        ent.mentions.append((u, span.start, span.end))
        ent.types.append(span.type)
        last = (u, span, ent)
    for ent in entities:
        ent.settle_type()
    return entities


def _pool(title: list[np.ndarray], body: list[np.ndarray], title_weight: float) -> np.ndarray:
    t = np.mean(title, axis=0) if title else None
    b = np.mean(body, axis=0) if body else None
    if t is None:
        return b
    if b is None:
        return t
    return title_weight * t + (1 - title_weight) * b


def _label(probs: np.ndarray, band: float | None) -> int:
    """The model's label rule: its neutral band, or the arg-max when it has none."""
    return int(np.argmax(probs)) if band is None else int(label_indices(probs, band)[0])


def entities_of(docs: list[Document], finder, model, watchlist: Watchlist = (),
                sentences: int = ENTITY_SENTENCES) -> list[Document]:
    """Set `doc.entities` for every document (module docstring): one model call for the
    batch, each (sentence, mentions) pair run alone; `sentences` after the title are read
    (the benches vary it)."""
    watch = _watch_patterns(watchlist)
    title_weight = float(NEWS_POOLING["title_weight"])
    plans = []
    items: list[tuple[str, tuple[tuple[int, int], ...]]] = []
    for doc in docs:
        titled = bool(doc.title and doc.title.strip())
        units = ([doc.title] if titled else []) + list(doc.sentences[:sentences])
        ents = find_entities(units, finder, watch)
        spans_of = {u: sorted({(a, b) for e in ents for (v, a, b) in e.mentions if v == u})
                    for u in range(len(units))}
        first = len(items)
        index = {}
        for u, spans in spans_of.items():
            if spans:
                index[u] = (len(items) - first, {s: i for i, s in enumerate(spans)})
                items.append((units[u], tuple(spans)))
        plans.append((doc, titled, ents, first, index))
    probs = model.probs(items)
    for doc, titled, ents, first, index in plans:
        rows = []
        for ent in ents:
            title_p, body_p = [], []
            for u, a, b in ent.mentions:
                item, position = index[u]
                p = probs[first + item][position[(a, b)]]
                (title_p if titled and u == 0 else body_p).append(p)
            pooled = _pool(title_p, body_p, title_weight)
            rows.append({"name": ent.name, "type": ent.type, "mentions": len(ent.mentions),
                         "sentiment": SENTIMENT_LABELS[_label(pooled, model.band)],
                         "score": float(np.clip(pooled[2] - pooled[0], -1.0, 1.0))})
        doc.entities = rows
    return docs


class Entities(BaseStep):
    """Entities named in the title and lead, each with the news's sentiment towards it."""

    name = "entities"
    needs = ("title", "sentences")
    provides = ("entities",)
    model_roles = ("entity_model",)

    def enabled(self, settings: StepSettings) -> bool:
        return settings.entities

    def setup(self, settings: StepSettings) -> None:
        from tasks.models.entity_finder import load_finder

        load_finder(settings.models.backend)
        settings.models.load_entity_model()

    def provenance(self, settings: StepSettings) -> dict[str, Any]:
        """The entity model and the finder, with the watchlist."""
        from tasks.models.entity_finder import load_finder
        from tasks.models.sentiment_base import NEWS_POOLING

        model = settings.models.load_entity_model().provenance()
        params = {**json.loads(model["params"]), **load_finder(settings.models.backend).params(),
                  "title_weight": NEWS_POOLING["title_weight"],
                  "watchlist": [list(e) for e in settings.watchlist]}
        return {"entity_model": {**model, "params": json.dumps(params, sort_keys=True)}}

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        from tasks.models.entity_finder import load_finder

        entities_of(docs, load_finder(settings.models.backend),
                    settings.models.load_entity_model(), settings.watchlist)
        return self.written(docs, settings)


STEP = Entities()
