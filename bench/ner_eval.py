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
from tasks.training.ner_scores import SpanSet, char_to_tokens, report


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
