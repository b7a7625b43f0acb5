"""Who a text names: people, organisations, places and other names, found by the entity
tagger on the shared pass, and market words.

The tagger (`tasks.models.entity_tagger`, a head of the built-in `minilm-lora` model, trained
on CoNLL-2003 with headline copies) tags each word of a text from the encoder pass the run
already makes for sentiment, so finding names costs no second pass. Its types are CoNLL's:
PER, ORG, LOC and MISC (nationalities, events, works, products), written in the entities
column as `person`, `organization`, `place` and `misc`.

Market words (`MARKET_TERMS`: commodities, currencies, indices, asset classes) are entities in
lower case too, because news is good or bad for them; CoNLL does not annotate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tasks.models.entity_tagger import decode, viterbi_tags

TYPE_NAMES = {"PER": "person", "ORG": "organization", "LOC": "place", "MISC": "misc"}
MARKET_TYPE = "market"
CONLL_TYPES = {**{v: k for k, v in TYPE_NAMES.items()}, MARKET_TYPE: "MARKET"}
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
# Market words that a place or nationality before them names ("Taiwan dollar", "U.S. dollar").
CURRENCIES = frozenset("""rupee dollar euro yen yuan pound franc rouble ruble rupiah peso
won lira rand krona krone ringgit baht""".split())  # noqa: SIM905
# Words before a person's name that are not part of it ("Mr Blair" is Blair).
HONORIFICS = frozenset("""mr mr. mrs mrs. ms ms. miss dr dr. sir lord lady dame prof prof.
rev rev. rep rep. sen sen. gov gov. president prime minister chancellor judge""".split())  # noqa: SIM905

# Regnal numbers after a person's name ("V" and "X" left out: "Wales v England", "Malcolm X").
REGNAL = frozenset("II III IV VI VII VIII IX XI XII XIII XIV XV XVI".split())  # noqa: SIM905

OVERLAP_WORDS = 8  # a window past a text's first pass re-reads this many words before it


@dataclass(frozen=True, slots=True)
class Span:
    """A name found in a text: character range, the text as written, and its kind."""

    start: int
    end: int
    text: str
    type: str


class EntityFinder:
    """The tagger's names and the market words (module docstring), per text."""

    def __init__(self, model):
        if not model.has_tagger:
            raise ValueError(f"{model.name} has no entity tagger")
        self.model = model

    def params(self) -> dict[str, object]:
        """How names are found, for the provenance."""
        return {"finder": self.model.tagger_params(), "market_words": len(MARKET_TERMS)}

    def find(self, text: str) -> tuple[Span, ...]:
        """Names in `text`, in order, none overlapping."""
        return self.find_all((text,))[0]

    def find_all(self, texts: Sequence[str]) -> tuple[tuple[Span, ...], ...]:
        """Names in each text; each text is tagged alone (its own pass), so what is found in
        it does not depend on the others. The pass reads a text's first `max_length` tokens
        (as sentiment does); the words past them are tagged in further windows of their own,
        each starting `OVERLAP_WORDS` words back, so a long sentence's last names are found."""
        tagged = self.model.tags(list(texts))
        return tuple(self._windows(text, words, logits)
                     for text, (words, logits) in zip(texts, tagged, strict=True))

    def _windows(self, text: str, words: list[tuple[int, int]], logits) -> tuple[Span, ...]:
        if words and words[-1][1] < len(text) and text[words[-1][1] - 1].isalnum() \
                and text[words[-1][1]].isalnum():
            words, logits = words[:-1], logits[:-1]  # the last word was cut by the pass
        found = _spans(text, words, logits)
        rest = text[words[-1][1]:] if words else ""
        if len(words) < 2 or not any(c.isalnum() for c in rest):
            return found
        cut = words[max(1, len(words) - OVERLAP_WORDS)][0]
        (tail_words, tail_logits), = self.model.tags([text[cut:]])
        tail = self._windows(text[cut:], tail_words, tail_logits)
        kept = [f for f in found if f.start < cut]
        end = max((f.end for f in kept), default=cut)
        return (*kept, *(Span(f.start + cut, f.end + cut, f.text, f.type) for f in tail
                         if f.start + cut >= max(cut, end)))

    def clear(self) -> None:
        self.model.cache.clear()


@lru_cache(maxsize=2)
def load_finder(backend: str = "onnx") -> EntityFinder:
    """The built-in shared model's finder on `backend`: the very model object the sentiment
    step uses, so its pass (and cache) is shared."""
    from tasks.models.sentiment import LORA_NAME, load_sentiment

    if backend == "onnx":
        from tasks.models.onnx_backend import load_onnx_sentiment

        return EntityFinder(load_onnx_sentiment(LORA_NAME))
    return EntityFinder(load_sentiment(LORA_NAME))


def _word_of(text: str, words: list[tuple[int, int]]):
    """The text of word i, for the finder's rules that read the words around a name."""
    return lambda i: text[words[i][0]:words[i][1]]


def _has_capital(text: str) -> bool:
    return any(c.isupper() for c in text)


def _company_suffix(word: str) -> bool:
    """"Inc", "Co", "AG", "plc": a company's legal form, written as one ("the spa" is not)."""
    return word.casefold() in _COMPANY_SUFFIXES and (word[0].isupper() or word == "plc")


def _acronym(word: str) -> bool:
    """Two to five capital letters ("GOP", "NATO"): people are not written so."""
    return 2 <= len(word) <= 5 and word.isalpha() and word.isupper()


def _spans(text: str, words: list[tuple[int, int]], logits) -> tuple[Span, ...]:
    """The tagger's names, trimmed; a name has a capital where the text has any ("cts",
    "gmt" are not names); then market words, joined to a place before a currency."""
    found: list[tuple[int, int, str]] = []  # word ranges
    has_capitals = _has_capital(text)
    for a, b, kind in decode(viterbi_tags(logits)) if len(words) else ():
        a, b = _trim(text, words, a, b)
        while (kind == "PER" and b - a > 1
               and text[words[a][0]:words[a][1]].casefold() in HONORIFICS):
            a += 1
        if kind == "PER" and b < len(words) and text[words[b][0]:words[b][1]] in REGNAL \
                and text[words[b - 1][1]:words[b][0]].isspace():
            b += 1  # "Elizabeth II", "John Paul II": the number is part of the name
        while b > a and b < len(words) and text[words[b - 1][1]:words[b][0]].isspace() \
                and _company_suffix(text[words[b][0]:words[b][1]]):
            b += 1  # "Pipelines Co", "Associates Inc": the suffix is part of the name
        if b - a > 1 and _company_suffix(text[words[b - 1][0]:words[b - 1][1]]):
            kind = "ORG"  # "Philip Crosby Associates Inc" is a company, not a person
        if b > a and (has_capitals <= _has_capital(text[words[a][0]:words[b - 1][1]])):
            if kind == "PER" and b - a == 1 and _acronym(text[words[a][0]:words[a][1]]) \
                    and any(c.islower() for c in text):
                kind = "ORG"  # "GOP", "NRA": an acronym in a mixed-case text is no person
            found.append((a, b, TYPE_NAMES[kind]))
    found = _peoples(text, words, found)
    found = _named_before_ticker(text, words, found)
    found = _bracketed_after_name(text, words, found)
    taken = {i for a, b, _ in found for i in range(a, b)}
    for i, (a, b) in enumerate(words):
        if i not in taken and text[a:b].casefold() in MARKET_TERMS:
            after = next((f for f in found if f[0] == i + 1 and f[2] != MARKET_TYPE
                          and text[a].isupper() and text[b:words[i + 1][0]].isspace()), None)
            if after is not None:  # "Commodity Futures Trading Commission": part of a name
                found[found.index(after)] = (i, after[1], after[2])
                continue
            # "Taiwan dollar", "U.S. dollar": a place or nationality just before is its name
            before = next((f for f in found if f[1] == i and f[2] in ("place", "misc")
                           and text[a:b].casefold() in CURRENCIES
                           and text[words[i - 1][1]:a].isspace()), None)
            if before is not None:
                found.remove(before)
            found.append((before[0] if before else i, i + 1, MARKET_TYPE))
    out = []
    for a, b, kind in sorted(found):
        start, end = words[a][0], words[b - 1][1]
        out.append(Span(start, end, text[start:end], kind))
    return tuple(out)


def _peoples(text: str, words: list[tuple[int, int]],
             found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """One name across "People's", a possessive inside names ("Donetsk People's Republic",
    "People's Bank of China", "People's Party"), where CoNLL's tagging (which leaves "'s"
    out of names) splits or drops it: from the name just before "People" (or "People"
    itself) to the name or capitalised words after "'s", and a name after "of" there."""
    word = _word_of(text, words)

    n = len(words)
    for i in range(n - 3):
        if not (word(i) == "People" and word(i + 1) in _APOSTROPHES
                and word(i + 2).casefold() == "s" and word(i + 3)[:1].isupper()
                and words[i][1] == words[i + 1][0] and words[i + 1][1] == words[i + 2][0]):
            continue
        left = next((f for f in found if f[0] <= i < f[1] or (
            f[1] == i and text[words[i - 1][1]:words[i][0]].isspace())), None)
        right = next((f for f in found if f[0] == i + 3), None)
        end = right[1] if right else i + 4
        while not right and end < n and word(end)[:1].isupper() and word(end).isalpha() \
                and not any(f[0] == end for f in found):
            end += 1  # "People's Liberation Army": the words the tagger left out, up to
            # the next name it found ("Luhansk People's Republic Russia recognized ...")
        after = next((f for f in found if end + 1 < n and word(end) == "of"
                      and f[0] == end + 1), None)
        if after is not None:  # "People's Bank of China": the place is part of the name
            end = after[1]
        kind = right[2] if right else left[2] if left else TYPE_NAMES["ORG"]
        start = left[0] if left else i
        found = [f for f in found if f[1] <= start or f[0] >= end] + [(start, end, kind)]
    return found


_SMALL_WORDS = frozenset(["a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or",
                          "the", "to"])


def _named_before_ticker(text: str, words: list[tuple[int, int]],
                         found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """A ticker in brackets names the capitalised words just before it ("MILLIPORE (MILI)
    ACQUIRES ...", as the clean step writes Reuters' "<MILI>"): where the tagger found the
    ticker but not the company, those words (up to four, not small words) are the company's
    name, of the ticker's type; the entities step then joins the ticker to it."""
    word = _word_of(text, words)

    taken = {i for a, b, _ in found for i in range(a, b)}
    out = list(found)
    for a, b, kind in found:
        if not (b == a + 1 and a >= 2 and b < len(words) and word(a - 1) == "("
                and word(b) == ")" and len(word(a)) <= 6 and word(a).isupper()):
            continue
        start = a - 1
        while (start > 0 and a - 1 - start < 4 and start - 1 not in taken
               and word(start - 1)[:1].isupper()
               and word(start - 1).casefold() not in _SMALL_WORDS):
            start -= 1
        if start < a - 1:
            out.append((start, a - 1, kind))
    return out


def _bracketed_after_name(text: str, words: list[tuple[int, int]],
                          found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """A short capitals word in brackets right after a name is its acronym or ticker
    ("Financial Services Authority (FSA)", "Texaco Inc (TX)"), a mention of the same name
    (the entities step joins them), also where the tagger, taught that tickers are not
    names, left it untagged."""
    word = _word_of(text, words)

    taken = {i for a, b, _ in found for i in range(a, b)}
    out = list(found)
    for _, b, kind in found:
        if (b + 2 < len(words) and word(b) == "(" and word(b + 2) == ")"
                and b + 1 not in taken and 1 < len(word(b + 1)) <= 6
                and word(b + 1).isalnum() and word(b + 1).isupper()):
            out.append((b + 1, b + 2, kind))
    return out


_OPENERS = frozenset("<([{")
_APOSTROPHES = frozenset("'’")
# written in lower case after a company's name and part of it ("Tesco plc")
_COMPANY_SUFFIXES = frozenset([
    "plc", "inc", "ltd", "llc", "co", "corp", "ag", "sa", "nv", "bv", "gmbh", "spa",
])


def _trim(text: str, words: list[tuple[int, int]], a: int, b: int) -> tuple[int, int]:
    """A name without what the tagger took along: anything from an opening bracket on (the
    ticker of "MILLIPORE <MILI>"), leading or trailing punctuation ("–" of "U.S.–Saudi"), a
    possessive ("'s" of "Sainsbury's": CoNLL leaves it out), and lower-case words at the end
    ("drug" of "Pfizer drug trial": all but 40 of CoNLL-2003's 23,423 training names end on a
    capital), but for company suffixes ("Tesco plc"). A final "." stays after a short word
    ("U.S.", "Co.", "Jr.")."""
    word = _word_of(text, words)

    for i in range(a + 1, b):
        if word(i) in _OPENERS:
            b = i
            break
    while a < b and not any(c.isalnum() for c in word(a)):
        a += 1
    while b > a:
        last = word(b - 1)
        if not any(c.isalnum() for c in last):
            if last == "." and b - 1 > a and len(word(b - 2)) <= 3 \
                    and words[b - 2][1] == words[b - 1][0]:
                break
            b -= 1
        elif (b - a > 2 and last.casefold() == "s" and word(b - 2) in _APOSTROPHES
              and words[b - 3][1] == words[b - 2][0] == words[b - 1][0] - 1):
            b -= 2
        elif b - a > 1 and last.isalpha() and last.islower() and last not in _COMPANY_SUFFIXES:
            b -= 1
        else:
            break
    return a, b
