"""Exact-span scores on CoNLL sentences, shared by `bench.ner_eval` and the tagger's
training (which reports dev with them): gold spans from BIO tags, character spans to token
ranges, and precision / recall / F1, typed (PER / ORG / LOC) and untyped, overall, per type
and on capitals headlines."""

from __future__ import annotations

from tasks.training.conll import Sentence, is_capitals_headline

TYPED = ("PER", "ORG", "LOC")
UNTYPED = ("PER", "ORG", "LOC", "MISC")
SpanSet = set[tuple[int, int, str]]


def gold_spans(sentence: Sentence) -> SpanSet:
    out, start, kind = set(), None, None
    for i, tag in enumerate([*sentence.tags, "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
            out.add((start, i, kind))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = i, tag[2:]
    return out


def char_to_tokens(sentence: Sentence, spans) -> SpanSet:
    """Token ranges of character spans found in `sentence.text` (a span's tokens are those it
    overlaps)."""
    starts = sentence.spans()
    out = set()
    for a, b, kind in spans:
        hit = [i for i, (x, y) in enumerate(starts) if x < b and a < y]
        if hit:
            out.add((hit[0], hit[-1] + 1, kind))
    return out


def prf(gold: list[SpanSet], pred: list[SpanSet], types: tuple[str, ...], typed: bool
        ) -> dict[str, float]:
    tp = fp = fn = 0
    for g, p in zip(gold, pred, strict=True):
        g = {s if typed else s[:2] for s in g if s[2] in types}
        p = {s if typed else s[:2] for s in p if s[2] in types}
        tp, fp, fn = tp + len(g & p), fp + len(p - g), fn + len(g - p)
    precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "gold": tp + fn}


def report(sentences: list[Sentence], pred: list[SpanSet]) -> dict[str, dict[str, float]]:
    gold = [gold_spans(s) for s in sentences]
    caps = [is_capitals_headline(s) for s in sentences]
    out = {"typed PER/ORG/LOC": prf(gold, pred, TYPED, True),
           "untyped": prf(gold, pred, UNTYPED, False)}
    for kind in TYPED:
        out[f"typed {kind}"] = prf(gold, pred, (kind,), True)
    g = [x for x, c in zip(gold, caps, strict=True) if c]
    p = [x for x, c in zip(pred, caps, strict=True) if c]
    out["capitals headlines, untyped"] = prf(g, p, UNTYPED, False)
    out["capitals headlines, typed"] = prf(g, p, TYPED, True)
    return out
