"""Silver entity labels for headlines: SEntFiN's company names, tagged where they stand.

CoNLL-2003's sentences end in a full stop and name their companies mid-sentence; news
headlines start with them ("Infosys: Will the strong volume growth sustain?"). SEntFiN's
annotators listed every entity each headline is about; where those are names (a capital, not
a market word) and every other capitalised word of the headline is its first word or a unit
("Rs", "Q2"), the headline becomes a CoNLL-style sentence with the names tagged. Their type
is the one the tagger trained on CoNLL alone gives the name (ORG when it gives none: SEntFiN
is about companies). Only SEntFiN rows that no bench holds out are used (the entity held-out
split and the document model's held-out split are left out, as `tasks.training.entity_data`).
"""

from __future__ import annotations

import re
from pathlib import Path

from tasks.training.conll import Sentence
from tasks.training.entity_data import LABELS, entity_heldout, sentfin_rows, text_bucket

_WORD = re.compile(r"\w+(?:[-'’.&]\w+)*\.?|[^\w\s]")
_UNITS = re.compile(r"^(Rs|Q[1-4]|FY\d*|H[12]|Cr|Bn|Mn|USD|INR|IPO|GDP|CEO|PSU|MF|NSE|BSE)$")


def headline_sentences(path: Path) -> list[Sentence]:
    """The usable SEntFiN headlines (module docstring), their names tagged B-/I-ORG."""
    from tasks.models.entity_finder import MARKET_TERMS

    out = []
    for text, doc_label, entities in sentfin_rows(path):
        if entity_heldout(text) or (doc_label in LABELS and text_bucket(text) >= 80):
            continue
        words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        tags = ["O"] * len(words)
        ok = True
        for name in entities:
            name = name.strip()
            if not name[:1].isupper() or name.casefold() in MARKET_TERMS:
                ok = False
                break
            for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", text):
                hit = [i for i, (a, b) in enumerate(words) if a < m.end() and m.start() < b]
                for k, i in enumerate(hit):
                    tags[i] = ("B-" if k == 0 else "I-") + "ORG"
            if not name.split()[-1][:1].isupper() and not name.split()[-1][:1].isdigit():
                ok = False  # "Mid caps", "Chinese stocks": a group, not a name
                break
        if not ok or "B-ORG" not in tags:
            continue
        for i, (a, b) in enumerate(words):
            w = text[a:b]
            if tags[i] == "O" and i > 0 and w[:1].isupper() and not _UNITS.match(w):
                ok = False  # another capitalised word: a name nobody tagged, or a doubt
                break
        if ok:
            out.append(Sentence(tuple(text[a:b] for a, b in words), tuple(tags)))
    return out


def retype(sentences: list[Sentence], finder) -> list[Sentence]:
    """Each silver name typed as `finder` (the tagger trained on CoNLL alone) types the span
    it finds over it; ORG where it finds none."""
    from tasks.models.entity_finder import CONLL_TYPES

    out = []
    found = finder.find_all([s.text for s in sentences])
    for s, spans in zip(sentences, found, strict=True):
        starts, pos = [], 0
        for w in s.words:
            starts.append(pos)
            pos += len(w) + 1
        tags = list(s.tags)
        i = 0
        while i < len(tags):
            if tags[i] != "B-ORG":
                i += 1
                continue
            j = i + 1
            while j < len(tags) and tags[j] == "I-ORG":
                j += 1
            a, b = starts[i], starts[j - 1] + len(s.words[j - 1])
            kind = next((CONLL_TYPES.get(x.type) for x in spans if x.start < b and a < x.end),
                        None)
            kind = kind if kind in ("PER", "ORG", "LOC", "MISC") else "ORG"
            tags[i:j] = ["B-" + kind] + ["I-" + kind] * (j - i - 1)
            i = j
        out.append(Sentence(s.words, tuple(tags)))
    return out
