"""The `textdigest` command line.

Heavy imports (Prefect, torch) happen inside the commands, so `--help` answers at once.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="textdigest",
    help=(
        "Batch NLP for news text: clean raw articles, parse their wire headers, summarise "
        "them and score their sentiment with transformer models, and write a Parquet "
        "dataset for DuckDB, pandas, polars and Hugging Face datasets.\n\n"
        "Quick start: `textdigest run` digests the sample articles in seeds/ into data/ "
        "with the built-in offline models."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train the built-in models from the shared evaluation data.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

err = Console(stderr=True)
out = Console()


def _quiet_env() -> None:
    """Offline-friendly Prefect defaults, no per-model loading bars; what the user set wins."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
def run(
    input: Annotated[Path, typer.Option("--input", "-i",
                                        help="A file or folder of .txt, .jsonl, .csv, .tsv or "
                                             ".parquet (folders are read recursively).")]
    = Path("seeds"),
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="Dataset folder: documents/, rejects/, runs/.")]
    = Path("data"),
    summarizer: Annotated[str, typer.Option(help="Summariser: 'extractive' (built-in, "
                                                 "offline).")] = "extractive",
    sentiment_model: Annotated[str, typer.Option(
        help="Sentiment model: 'minilm-lora' (built-in fine-tuned MiniLM) or 'minilm-head' "
             "(built-in head on frozen embeddings).")] = "minilm-lora",
    batch_size: Annotated[int, typer.Option(help="Documents per batch task.")] = 64,
    limit: Annotated[int | None, typer.Option(help="Stop after N input documents.")] = None,
    text_field: Annotated[str, typer.Option(help="JSONL field holding the text.")] = "text",
    text_column: Annotated[str, typer.Option(help="CSV/TSV/Parquet column holding the "
                                                  "text.")] = "text",
    id_field: Annotated[str, typer.Option(help="Field or column holding a document id "
                                               "(else the text's hash is the id).")] = "id",
    shard_rows: Annotated[int, typer.Option(help="Most rows per Parquet shard.")] = 10_000,
    max_reject_ratio: Annotated[float | None, typer.Option(
        help="Fail (exit 1) when more than this share of the documents is rejected, "
             "e.g. 0.2.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Log every Prefect task run.")] = False,
) -> None:
    """Digest raw articles into a Parquet dataset (the `digest` Prefect flow).

    Each document is cleaned (mojibake, markup, wire headers such as
    "WASHINGTON, February 23. /TASS/."), split into sentences, summarised and scored for
    sentiment. Rows go to OUTPUT/documents/, inputs that cannot be processed to
    OUTPUT/rejects/ with their reason, and a manifest to OUTPUT/runs/. Documents already in
    OUTPUT are skipped, so a repeated run adds only what is new.
    """
    _quiet_env()
    from flows.config import DigestConfig

    try:
        config = DigestConfig(
            input=input, output=output, summarizer=summarizer, sentiment_model=sentiment_model,
            batch_size=batch_size, limit=limit, text_field=text_field, text_column=text_column,
            id_field=id_field, shard_rows=shard_rows, max_reject_ratio=max_reject_ratio,
            show_progress=progress and sys.stderr.isatty(),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"--{'-'.join(str(p) for p in first['loc'])}: {first['msg']}", 2) from None
    if not config.input.exists():
        raise _fail(f"input not found: {config.input}", 2)

    from tasks.models import ModelError
    from tasks.sentiment import load_sentiment
    from tasks.summarize import load_summarizer

    try:  # load (and so validate) the models before any document is read
        load_summarizer(config.summarizer)
        load_sentiment(config.sentiment_model)
    except ModelError as exc:
        raise _fail(str(exc), 2) from None

    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from flows.digest import digest

    if not verbose:
        logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
    # With no server configured each run starts a temporary API; heartbeats (for crash
    # detection by a server's services) only cost a second per run there.
    settings = (temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
                if not PREFECT_API_URL.value() else nullcontext())
    try:
        with settings:
            summary = digest(config)
    except Exception as exc:  # noqa: BLE001 - one line for the user; Prefect logged the rest
        raise _fail(f"run failed: {type(exc).__name__}: {exc}") from None
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    counts = summary["counts"]
    table = Table(title=f"textdigest run {summary['run_id']}", show_header=True)
    for col in ("documents in", "written", "rejected", "skipped (already in output)", "docs/s"):
        table.add_column(col, justify="right")
    table.add_row(str(counts["read"]), str(counts["written"]), str(counts["rejected"]),
                  str(counts["skipped_existing"]), f"{summary['docs_per_s'] or 0:.1f}")
    out.print(table)
    if summary["rejects_by_reason"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in summary["rejects_by_reason"].items())
        out.print(f"rejects by reason: {reasons}")
    out.print(f"manifest: {summary['manifest_path']}")


def _training_data(sst2: Path, fpb: Path) -> Path | None:
    """Check the training files exist (offline mode on); the SST-2 dev file beside, if any."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in (sst2, fpb):
        if not path.is_file():
            raise _fail(f"training data not found: {path}", 2)
    dev = sst2.with_name("dev.tsv")
    return dev if dev.is_file() else None


@train_app.command("sentiment")
def train_sentiment(
    sst2: Annotated[Path, typer.Option(help="SST-2 train TSV (text, label).")]
    = Path("../shared/eval/sst2/train.tsv"),
    fpb: Annotated[Path, typer.Option(help="Financial PhraseBank TSV (sentence, label).")]
    = Path("../shared/eval/fpb_lowagree.tsv"),
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the adapter.")]
    = Path("tasks/assets/sentiment-lora"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    sst2_rows: Annotated[int, typer.Option(help="SST-2 rows to train on.")] = 20_000,
    fpb_repeat: Annotated[int, typer.Option(help="Times the FPB train part is repeated.")] = 3,
) -> None:
    """Fine-tune the built-in `minilm-lora` sentiment model (LoRA on MiniLM, ~5 min on CPU)."""
    dev = _training_data(sst2, fpb)
    from tasks.train_sentiment import train_sentiment_model

    metrics = train_sentiment_model(sst2, fpb, out_dir, seed=seed, sst2_rows=sst2_rows,
                                    fpb_repeat=fpb_repeat, sst2_dev=dev)
    out.print_json(data=metrics)


@train_app.command("sentiment-head")
def train_sentiment_head(
    sst2: Annotated[Path, typer.Option(help="SST-2 train TSV (text, label).")]
    = Path("../shared/eval/sst2/train.tsv"),
    fpb: Annotated[Path, typer.Option(help="Financial PhraseBank TSV (sentence, label).")]
    = Path("../shared/eval/fpb_lowagree.tsv"),
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the head.")]
    = Path("tasks/assets/sentiment-head"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache sentence embeddings here "
                                                        "(re-runs skip the encoding).")] = None,
) -> None:
    """Train the built-in sentiment head on frozen MiniLM embeddings (reproducible)."""
    dev = _training_data(sst2, fpb)
    from tasks.train_head import train_sentiment_head as train

    metrics = train(sst2, fpb, out_dir, seed=seed, cache_dir=cache_dir, sst2_dev=dev)
    out.print_json(data=metrics)


if __name__ == "__main__":  # pragma: no cover
    app()
