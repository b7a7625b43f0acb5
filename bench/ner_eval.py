"""Entity finding on CoNLL-format sentences: P/R/F1 on exact spans.

    python -m bench.ner_eval --conll ../shared/train/conll2003/dev.txt
    python -m bench.ner_eval --conll dev.txt --predictions preds.jsonl   # score a file
    python -m bench.ner_eval --conll dev.txt --write preds.jsonl         # the finder's

Typed: spans of PER / ORG / LOC, right span and type (MISC left out on both sides). Untyped:
every PER / ORG / LOC / MISC span, right span whatever its type. MARKET spans (commodities,
currencies, indices) are not CoNLL entities and are left out. "capitals headlines": the
sentences whose every letter is a capital (CoNLL's wire headlines and datelines).

Without `--predictions` the built-in finder (`textdigest run`'s) reads each sentence as one
text, its tokens joined by spaces. A predictions file has one JSON line per sentence, in file
order: `{"tokens": [...], "spans": [[start, end, TYPE], ...]}` (token indices, end
exclusive; TYPE one of PER, ORG, LOC, MISC, MARKET).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tasks.training.conll import Sentence, is_capitals_headline, read_conll

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
    starts, pos = [], 0
    for w in sentence.words:
        starts.append((pos, pos + len(w)))
        pos += len(w) + 1
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


def read_predictions(path: Path, sentences: list[Sentence]) -> list[SpanSet]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) != len(sentences):
        raise SystemExit(f"{path}: {len(lines)} lines for {len(sentences)} sentences")
    out = []
    for number, (line, sentence) in enumerate(zip(lines, sentences, strict=True), 1):
        row = json.loads(line)
        if list(row["tokens"]) != list(sentence.words):
            raise SystemExit(f"{path}:{number}: tokens differ from the CoNLL sentence")
        out.append({(int(a), int(b), str(t).upper()) for a, b, t in row["spans"]})
    return out


def finder_predictions(sentences: list[Sentence], backend: str) -> list[SpanSet]:
    from tqdm import tqdm

    from tasks.models.entity_finder import CONLL_TYPES, load_finder

    finder = load_finder(backend)
    found = []
    with tqdm(total=len(sentences), desc="tagging", unit="sentence") as bar:
        for k in range(0, len(sentences), 256):
            found += finder.find_all([s.text for s in sentences[k:k + 256]])
            bar.update(len(sentences[k:k + 256]))
    return [char_to_tokens(s, [(x.start, x.end, CONLL_TYPES.get(x.type, "MISC")) for x in f])
            for s, f in zip(sentences, found, strict=True)]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.ner_eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conll", type=Path, required=True, help="a CoNLL-2003 format file")
    ap.add_argument("--predictions", type=Path, help="score this file instead of the finder")
    ap.add_argument("--write", type=Path, help="write the finder's predictions here")
    ap.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    args = ap.parse_args(argv)
    sentences = read_conll(args.conll)
    if args.predictions:
        pred = read_predictions(args.predictions, sentences)
    else:
        pred = finder_predictions(sentences, args.backend)
    if args.write:
        with args.write.open("w", encoding="utf-8") as fh:
            for s, p in zip(sentences, pred, strict=True):
                fh.write(json.dumps({"tokens": list(s.words),
                                     "spans": [list(x) for x in sorted(p)]}) + "\n")
    out = report(sentences, pred)
    print(f"{args.conll}: {len(sentences)} sentences, "
          f"{sum(is_capitals_headline(s) for s in sentences)} capitals headlines")
    print(f"{'':32} {'P':>7} {'R':>7} {'F1':>7} {'gold':>6}")
    for name, m in out.items():
        print(f"{name:32} {m['precision']:7.4f} {m['recall']:7.4f} {m['f1']:7.4f} {m['gold']:6d}")
    sys.stdout.flush()
    return out


if __name__ == "__main__":
    main()
