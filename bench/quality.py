"""Quality bench: the default summariser against LEAD-3, the default sentiment model on
SST-2 dev, Financial PhraseBank, TFNS, SEntFiN and the news check, in one run.

    python -m bench.quality     # a few minutes on 2 CPU cores

Reads the evaluation sets from ../shared/eval and ../shared/train (beside the checkout).
Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentiment-model", default="minilm-lora")
    parser.add_argument("--summarizer", default="extractive")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    from bench import sentiment_eval, summary_eval
    from tasks.models.sentiment import BUILTIN_SENTIMENT, load_sentiment
    from tasks.models.summarizers import load_summarizer

    print(f"# textdigest quality bench ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores)\n")
    t0 = time.perf_counter()
    print("## Summarisation (ROUGE F1 x100)\n")
    summary_eval.main(load_summarizer(args.summarizer))
    print(f"\n## Sentiment ({args.sentiment_model}, then every built-in side by side)\n")
    sentiment_eval.require_shared()
    sets = sentiment_eval.load_sets()
    names = [args.sentiment_model, *(n for n in BUILTIN_SENTIMENT if n != args.sentiment_model)]
    print(sentiment_eval.format_comparison(
        {name: sentiment_eval.evaluate(load_sentiment(name), sets) for name in names}))
    print(f"\nbench wall time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
