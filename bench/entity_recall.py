"""How many of the names SEntFiN's annotators scored the entity finder finds, on held-out
headlines (hash split as bench.entity_experiment: int(sha256(text.strip())) % 10 == 0).

    python -m bench.entity_recall [--sentfin ../shared/train/sentfin.tsv] [--misses 20]

Exact: a found span equals the gold name (case-insensitive). Lenient: a found span overlaps
the gold name's first occurrence. Also prints spans per headline and milliseconds per text.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def heldout_headlines(path: Path) -> list[tuple[str, list[str]]]:
    """(headline, gold entity names) of the entity held-out split."""
    from tasks.training.entity_data import entity_heldout, sentfin_rows

    return [(text, list(entities)) for text, _, entities in sentfin_rows(path)
            if entity_heldout(text)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentfin", type=Path, default=REPO.parent / "shared" / "train" / "sentfin.tsv")
    p.add_argument("--misses", type=int, default=0, help="print this many missed names")
    args = p.parse_args(argv)

    from tasks.models.entity_finder import load_finder

    finder = load_finder()
    rows = heldout_headlines(args.sentfin)
    gold = exact = lenient = spans = 0
    kinds: Counter[str] = Counter()
    misses = []
    started = time.perf_counter()
    for text, names in rows:
        found = finder.find(text)
        spans += len(found)
        kinds.update(s.type for s in found)
        texts = {s.text.casefold() for s in found}
        for name in names:
            gold += 1
            hit = re.search(re.escape(name.strip()), text, flags=re.IGNORECASE)
            if name.strip().casefold() in texts:
                exact += 1
                lenient += 1
            elif hit and any(s.start < hit.end() and s.end > hit.start() for s in found):
                lenient += 1
            else:
                misses.append((name, text))
    seconds = time.perf_counter() - started
    out = {"headlines": len(rows), "gold_names": gold, "exact_recall": round(exact / gold, 4),
           "lenient_recall": round(lenient / gold, 4),
           "spans_per_headline": round(spans / len(rows), 2),
           "ms_per_headline": round(1000 * seconds / len(rows), 2)}
    print(json.dumps(out))
    print("types:", dict(kinds.most_common()))
    for name, text in misses[: args.misses]:
        print(f"  missed {name!r} in {text!r}")
    return out


if __name__ == "__main__":
    main()
