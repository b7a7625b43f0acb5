"""The `textdigest` command line.

Heavy imports (Prefect, torch) happen inside the commands, so `--help` answers at once.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

if TYPE_CHECKING:
    from flows.config import DigestConfig
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
    # plain help: options as the docs spell them, without rich's "<bool>" on every flag
    rich_markup_mode=None,
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
    # Prefect's 20 s for the temporary API to start is short on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from tasks.runtime.secrets import install_redaction

    install_redaction()  # HF_TOKEN and co. never reach a log line


def _option_error(exc: ValidationError) -> str:
    """A config validation error named as the command line spells the option."""
    from flows.config import FLAT

    first = exc.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    flat = {where: name for name, where in FLAT.items()}
    if len(loc) == 2 and loc in flat:  # (group, field): the option's flat name
        return f"--{flat[loc].replace('_', '-')}: {first['msg']}"
    if len(loc) == 1 and loc[0] not in ("input", "models", "runtime", "output", "publish"):
        return f"--{loc[0].replace('_', '-')}: {first['msg']}"
    # a check across options: name them as the command line spells them
    return first["msg"].removeprefix("Value error, ").replace("_", "-")


# Exit codes (docs/operations.md): 1 a run failed, 2 a usage or configuration error,
# 3 a damaged output (`textdigest verify`), 4 a known fault of the machine (no space left,
# output not writable, input gone mid-run; what was written stays), 75 another run holds
# the output (sysexits' EX_TEMPFAIL: try again later).
EXIT_DAMAGED = 3
EXIT_FAULT = 4
EXIT_BUSY = 75


def _fail(message: str, code: int = 1) -> typer.Exit:
    from rich.markup import escape

    from tasks.runtime.secrets import redact

    message = escape(" ".join(redact(message).split()))  # one line, no token, no markup
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)  # one line
    return typer.Exit(code)


# `textdigest run` options named otherwise in DigestConfig, and those where 0 means "none".
_RUN_RENAMED = {"threads": "torch_threads", "wait": "wait_s", "progress": "show_progress"}
_RUN_ZERO_IS_NONE = ("batch_chars", "max_model_chars", "near_dup_threshold")


def run_config(options: dict[str, Any]) -> DigestConfig:
    """The DigestConfig of `textdigest run`'s options (by parameter name): its defaults are
    DigestConfig's (a test holds them equal), so each default has one home."""
    from flows.config import DigestConfig

    flat = {_RUN_RENAMED.get(name, name): (value or None) if name in _RUN_ZERO_IS_NONE
            else value for name, value in options.items() if name != "verbose"}
    return DigestConfig(**flat)


@app.command()
def run(
    input: Annotated[Path, typer.Option("--input", "-i",
                                        help="A file or folder of .txt, .jsonl, .csv, .tsv or "
                                             ".parquet (folders are read recursively).")]
    = Path("seeds"),
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="Dataset folder: documents/, rejects/, runs/.")]
    = Path("data"),
    summarizer: Annotated[str, typer.Option(
        help="Summariser: 'extractive' (built-in, offline), or a Hugging Face seq2seq model: "
             "a Hub id or a local folder.")] = "extractive",
    sentiment_model: Annotated[str, typer.Option(
        help="Sentiment model: 'minilm-lora' (built-in fine-tuned MiniLM), 'minilm-head' "
             "(built-in head on frozen embeddings), or a Hugging Face text classifier: a Hub "
             "id or a local folder.")] = "minilm-lora",
    batch_size: Annotated[int, typer.Option(help="Most documents per batch task.")] = 256,
    batch_chars: Annotated[int, typer.Option(
        help="Also close a batch at this many characters of raw text (0: no limit).")] = 250_000,
    limit: Annotated[int | None, typer.Option(help="Stop after N input documents.")] = None,
    text_field: Annotated[str, typer.Option(help="JSONL field holding the text.")] = "text",
    text_column: Annotated[str, typer.Option(help="CSV/TSV/Parquet column holding the "
                                                  "text.")] = "text",
    id_field: Annotated[str, typer.Option(help="Field or column holding a document id "
                                               "(else the text's hash is the id).")] = "id",
    title_field: Annotated[str, typer.Option(help="JSONL field or CSV/TSV/Parquet column "
                                                  "holding the title.")] = "title",
    title_line: Annotated[bool, typer.Option(
        help=".txt files: take a first line that reads as a headline as the title "
             "(--no-title-line: keep it in the body).")] = True,
    max_model_chars: Annotated[int, typer.Option(
        help="The models read at most this many characters of one document; the text "
             "column keeps all of it (0: no cap).")] = 100_000,
    shard_rows: Annotated[int, typer.Option(help="Most rows per Parquet shard.")] = 10_000,
    max_in_flight: Annotated[int, typer.Option(
        help="Batches processed ahead of the writer (more overlap, more memory).")] = 2,
    max_reject_ratio: Annotated[float | None, typer.Option(
        help="Fail (exit 1) when more than this share of the documents is rejected, "
             "e.g. 0.2.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    near_dup_threshold: Annotated[float, typer.Option(
        help="Flag near-duplicates (MinHash Jaccard of word 5-grams at least this) in the "
             "duplicate_of column; 0 turns it off.")] = 0.8,
    task_runner: Annotated[str, typer.Option(
        help="Run batch tasks on 'threads' or on 'dask' (a LocalCluster, or --dask-address)."
    )] = "threads",
    dask_address: Annotated[str | None, typer.Option(
        help="Existing Dask scheduler, tcp://HOST:PORT (with --task-runner dask).")] = None,
    dask_workers: Annotated[int | None, typer.Option(
        help="Worker processes of the LocalCluster (with --task-runner dask).")] = None,
    summarizer_revision: Annotated[str | None, typer.Option(
        help="Hub revision (branch, tag or commit) of a Hub summariser.")] = None,
    sentiment_revision: Annotated[str | None, typer.Option(
        help="Hub revision of a Hub sentiment model.")] = None,
    num_beams: Annotated[int | None, typer.Option(
        help="Seq2seq summariser: beam width (default: the model's).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        help="Seq2seq summariser: longest summary in tokens (default: the model's).")] = None,
    min_new_tokens: Annotated[int | None, typer.Option(
        help="Seq2seq summariser: shortest summary in tokens.")] = None,
    no_repeat_ngram_size: Annotated[int | None, typer.Option(
        help="Seq2seq summariser: no n-gram of this size repeats.")] = None,
    length_penalty: Annotated[float | None, typer.Option(
        help="Seq2seq summariser: beam length penalty (> 1 favours longer).")] = None,
    label_map: Annotated[str | None, typer.Option(
        help="Sentiment model labels to ours, e.g. 'LABEL_0=negative,LABEL_1=positive' "
             "(for labels the automatic mapping does not know).")] = None,
    dtype: Annotated[str, typer.Option(
        help="Weights of Hugging Face models: float32 or bfloat16 (faster on CPUs with "
             "bf16 support).")] = "float32",
    model_batch_size: Annotated[int | None, typer.Option(
        help="Hugging Face models: chunks or sentences per generate/forward call "
             "(default 8 for summarisers, 32 for sentiment).")] = None,
    entities: Annotated[bool, typer.Option(
        help="Find the organisations, people and places each title and lead names, and score "
             "the news for each (the entities column; --no-entities: leave it empty).")] = True,
    watchlist: Annotated[Path | None, typer.Option(
        help="File of names always found: one entity a line, aliases separated by '|' "
             "(Tesco|Tesco plc|TSCO), matched case-insensitively as whole words.")] = None,
    non_english: Annotated[str, typer.Option(
        help="Documents not in English (detected, stored in the language column): 'keep' "
             "them flagged, or 'reject' them as not_english.")] = "keep",
    threads: Annotated[int | None, typer.Option(
        help="Threads for model work in this process: torch's intra-op threads and the "
             "sentences ONNX Runtime runs at once (default: one per core).")] = None,
    backend: Annotated[str, typer.Option(
        help="'onnx' (ONNX Runtime, int8; exported once per model revision into "
             "$TEXTDIGEST_CACHE) or 'torch' for the MiniLM encoder and LoRA sentiment.")
    ] = "onnx",
    report: Annotated[bool, typer.Option(
        help="Also write OUTPUT/report.html (plots, key figures; see `textdigest report`) "
             "and link it as a Prefect artifact.")] = False,
    wait: Annotated[float | None, typer.Option(
        metavar="SECONDS",
        help="When another run is writing OUTPUT, wait up to SECONDS for it, then skip what "
             "it wrote (default: refuse at once, exit 75).")] = None,
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
    options = dict(locals())
    _quiet_env()
    _task_run_lines(verbose)  # before Prefect is imported: it reads the override at import
    try:
        config = run_config({**options, "progress": progress and sys.stderr.isatty()})
    except ValidationError as exc:
        raise _fail(_option_error(exc), 2) from None
    _check_before_work(config)
    _print_summary(_run_digest(config))


def _check_before_work(config) -> None:
    """What fails a run before any document is read, each with one line and its exit code:
    no input, an unwritable or busy or damaged output, a model that does not load."""
    if not config.input.path.exists():
        raise _fail(f"input not found: {config.input.path}", 2)
    from tasks.io.write import unwritable_reason

    if reason := unwritable_reason(config.output.path):  # before hours of work, not after
        raise _fail(f"output folder not writable: {config.output.path}: {reason}", 2)
    from tasks.io.output_lock import OutputBusy, is_locked, read_holder
    from tasks.io.verify import DamagedOutput, check_undamaged

    if is_locked(config.output.path) and config.output.wait_s is None:  # the common case,
        # before Prefect starts; the flow takes the lock itself (two runs may still meet there)
        raise _fail(str(OutputBusy(config.output.path, read_holder(config.output.path), None)),
                    EXIT_BUSY)
    try:  # a damaged shard: one line and the way out, before any model loads
        check_undamaged(config.output.path)
    except DamagedOutput as exc:
        raise _fail(str(exc), EXIT_DAMAGED) from None

    from tasks.models.registry import ModelError

    try:  # load (and so validate) the models before any document is read
        models = config.model_names()
        models.check()
        models.load_summarizer()
        models.load_sentiment()
    except ModelError as exc:
        raise _fail(str(exc), 2) from None


def _run_digest(config) -> dict:
    """The digest flow run, its failures as one line and an exit code; its summary."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from flows.digest import digest_for
    from tasks.io.faults import known_fault
    from tasks.io.output_lock import OutputBusy
    from tasks.io.verify import DamagedOutput

    _no_traceback_for_check_errors()
    # With no server configured each run starts a temporary API; heartbeats (for crash
    # detection by a server's services) only cost a second per run there.
    settings = (temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
                                            **_temporary_api_for_workers(config)})
                if not PREFECT_API_URL.value() else nullcontext())
    try:
        with settings:
            summary = digest_for(config)(config)
            if not PREFECT_API_URL.value():
                _let_the_temporary_api_record(summary)
    except OutputBusy as exc:  # another run holds the output: nothing was read or written
        raise _fail(str(exc), EXIT_BUSY) from None
    except DamagedOutput as exc:
        raise _fail(str(exc), EXIT_DAMAGED) from None
    except Exception as exc:  # noqa: BLE001 - one line for the user; Prefect logged the rest
        if (fault := known_fault(exc, config.input.path, config.output.path)) is not None:
            raise _fail(fault, EXIT_FAULT) from None
        raise _fail(f"run failed: {type(exc).__name__}: {exc}") from None
    return summary


def _let_the_temporary_api_record(summary: dict, timeout: float = 20.0) -> None:
    """Wait until the temporary API has recorded this run's task runs.

    Task runs reach the API as events that its recorder writes in batches; the temporary
    server stops when this process exits, and a write cut short there prints a page of
    traceback ("Error flushing … events") after the closing table. Short runs whose tasks
    all end within a second (a rerun that skips everything) hit it most.
    """
    import time
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    expected, flow_run_id = summary.get("task_runs"), summary.get("flow_run_id")
    if not expected or not flow_run_id:
        return
    runs = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
    final = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(
        any_=[StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED])))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            recorded, page = 0, 200
            while True:
                batch = client.read_task_runs(flow_run_filter=runs, task_run_filter=final,
                                              limit=page, offset=recorded)
                recorded += len(batch)
                if len(batch) < page:
                    break
            if recorded >= expected:
                return
            time.sleep(0.25)


def _task_run_lines(verbose: bool) -> None:
    """Per-task log lines only with --verbose. Prefect re-reads its logging config (and this
    environment override of it) whenever it sets logging up again, so a level set on the
    logger alone would not last."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")
        logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)


def _no_traceback_for_check_errors() -> None:
    """A failed end-of-run check (accounting, reject ratio) is an expected outcome with a
    one-line reason: keep Prefect from logging it with a traceback."""
    from flows.digest import RunCheckError
    from tasks.io.faults import is_known_fault
    from tasks.io.output_lock import OutputBusy
    from tasks.io.verify import DamagedOutput

    def strip(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RunCheckError | OutputBusy | DamagedOutput) or is_known_fault(exc):
            record.exc_info, record.exc_text = None, None
        return True

    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(strip)


def _temporary_api_for_workers(config) -> dict:
    """On Dask with no server configured: start the temporary API now and name it in the
    settings, which travel with each task, so that the workers report to it instead of each
    starting a temporary API of its own."""
    if config.runtime.task_runner != "dask":
        return {}
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    server = SubprocessASGIServer()  # the process-wide one Prefect would start anyway
    server.start()
    return {PREFECT_API_URL: server.api_url}


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
    if summary.get("report_path"):
        out.print(f"report: {summary['report_path']}", highlight=False)


def _training_data(sst2: Path, fpb: Path, *more: Path) -> Path | None:
    """Check the training files exist (offline mode on); the SST-2 dev file beside, if any."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in (sst2, fpb, *more):
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
    sentfin: Annotated[Path | None, typer.Option(
        help="SEntFiN 1.0 headlines TSV (text, label, entities); 'none' to leave out.")]
    = Path("../shared/train/sentfin.tsv"),
    tfns: Annotated[Path | None, typer.Option(
        help="Twitter Financial News Sentiment train TSV; its validation split "
             "(tfns_valid.tsv beside it) is only evaluated on. 'none' to leave out.")]
    = Path("../shared/train/tfns_train.tsv"),
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the adapter.")]
    = Path("tasks/models/assets/sentiment-lora"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    sst2_rows: Annotated[int, typer.Option(help="SST-2 rows to train on.")] = 20_000,
    fpb_repeat: Annotated[int, typer.Option(help="Times the FPB train part is repeated.")] = 3,
    epochs: Annotated[int, typer.Option(help="Passes over the training rows.")] = 2,
) -> None:
    """Fine-tune the built-in `minilm-lora` sentiment model (LoRA on MiniLM; news, finance
    and movie-review labels; about 40 min on 2 CPU cores)."""
    news = {k: None if v is None or str(v) == "none" else v
            for k, v in (("sentfin", sentfin), ("tfns", tfns))}
    dev = _training_data(sst2, fpb, *[v for v in news.values() if v is not None])
    from tasks.training.train_sentiment import train_sentiment_model

    valid = news["tfns"].with_name("tfns_valid.tsv") if news["tfns"] else None
    metrics = train_sentiment_model(
        sst2, fpb, out_dir, seed=seed, sst2_rows=sst2_rows, fpb_repeat=fpb_repeat,
        epochs=epochs, sst2_dev=dev, sentfin=news["sentfin"], tfns_train=news["tfns"],
        tfns_valid=valid if valid is not None and valid.is_file() else None)
    out.print_json(data=metrics)


@train_app.command("sentiment-head")
def train_sentiment_head(
    sst2: Annotated[Path, typer.Option(help="SST-2 train TSV (text, label).")]
    = Path("../shared/eval/sst2/train.tsv"),
    fpb: Annotated[Path, typer.Option(help="Financial PhraseBank TSV (sentence, label).")]
    = Path("../shared/eval/fpb_lowagree.tsv"),
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the head.")]
    = Path("tasks/models/assets/sentiment-head"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache sentence embeddings here "
                                                        "(re-runs skip the encoding).")] = None,
) -> None:
    """Train the built-in sentiment head on frozen MiniLM embeddings (reproducible)."""
    dev = _training_data(sst2, fpb)
    from tasks.training.train_head import train_sentiment_head as train

    metrics = train(sst2, fpb, out_dir, seed=seed, cache_dir=cache_dir, sst2_dev=dev)
    out.print_json(data=metrics)


@app.command()
def verify(
    data_dir: Annotated[Path, typer.Argument(help="A digest output folder (documents/, "
                                                  "rejects/, runs/).")] = Path("data"),
    repair: Annotated[bool, typer.Option(
        "--repair", help="Move damaged files to DATA_DIR/quarantine/ (with a note each), so "
                         "the next run digests their documents again.")] = False,
) -> None:
    """Check every shard, index file and run manifest of a digest output.

    Prints one line per problem (the file, what is wrong, the run that wrote it, the rows it
    held) and exits 1 when there is any; 0 when the output is sound.
    """
    if not data_dir.is_dir():
        raise _fail(f"data folder not found: {data_dir}", 2)
    from tasks.io.output_lock import OutputBusy, hold_output
    from tasks.io.verify import repair_output, verify_output

    try:  # no run writes while the files are read (and moved)
        with hold_output(data_dir, "verify", reader=not repair):
            problems = verify_output(data_dir)
            moved = repair_output(data_dir, problems) if repair else []
    except OutputBusy as exc:
        raise _fail(str(exc), EXIT_BUSY) from None
    except OSError as exc:  # --repair on a folder this process may not write
        raise _fail(f"cannot repair {data_dir}: {exc.strerror or exc}", 2) from None
    for problem in problems:
        done = " -> quarantine/" if problem in moved else ""
        out.print(f"{problem.line()}{done}", highlight=False, soft_wrap=True)
    if moved:
        out.print(f"{len(moved)} file(s) set aside in {data_dir / 'quarantine'}; the next run "
                  "digests their documents again", highlight=False, soft_wrap=True)
    left = [p for p in problems if p not in moved]
    if not problems:
        out.print(f"{data_dir}: every shard, index file and manifest reads back",
                  highlight=False, soft_wrap=True)
    if left:
        raise typer.Exit(1)


@app.command()
def report(
    data_dir: Annotated[Path, typer.Argument(help="A digest output folder (documents/, "
                                                  "rejects/, runs/).")] = Path("data"),
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="The HTML file to write (default: DATA_DIR/report.html).")] = None,
) -> None:
    """Write a self-contained HTML report of a digest output: plots and key figures.

    Sentiment distribution and over published_date, documents per agency and dateline,
    summary length and compression, rejects by reason, throughput over runs, the most
    negative and most positive documents. Images are embedded and nothing is loaded from
    the network, so the page opens offline.
    """
    from tasks.outputs.report import ReportError, write_report

    try:
        path = write_report(data_dir, out_file)
    except ReportError as exc:
        raise _fail(str(exc), 2) from None
    except OSError as exc:
        raise _fail(f"cannot write the report: {exc}") from None
    out.print(f"report: {path}", highlight=False)


@app.command()
def publish(
    data_dir: Annotated[Path, typer.Argument(help="A digest output folder (documents/, "
                                                  "rejects/, runs/).")],
    repo_id: Annotated[str, typer.Option(help="Dataset repo on the Hub: ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private",
                                          help="Create the repo private.")] = False,
    branch: Annotated[str, typer.Option(help="Branch to commit to.")] = "main",
    license: Annotated[str, typer.Option(
        help="Licence id for the card (default 'other': the article text keeps its "
             "publishers' terms; see the card).")] = "other",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Stage, write the card and "
                                          "validate; no network.")] = False,
    staging_dir: Annotated[Path | None, typer.Option(
        help="Upload folder (default: DATA_DIR.hf-staging beside DATA_DIR).")] = None,
) -> None:
    """Publish a digest output as a Hugging Face dataset (the `publish` Prefect flow).

    Stages the shards and a dataset card (configs, features, models, statistics) in an
    upload folder outside DATA_DIR, checks that `datasets.load_dataset` reads that folder
    back row for row, then commits the shards the repo lacks and the refreshed card. The
    token comes from HF_TOKEN or `hf auth login`.
    """
    _quiet_env()
    from flows.publish import PublishConfig

    try:
        config = PublishConfig(data_dir=data_dir, repo_id=repo_id, private=private,
                               branch=branch, license=license, dry_run=dry_run,
                               staging_dir=staging_dir)
    except ValidationError as exc:
        raise _fail(_option_error(exc), 2) from None
    if not config.data_dir.is_dir():
        raise _fail(f"data folder not found: {config.data_dir}", 2)
    from tasks.io.output_lock import OutputBusy, is_locked, read_holder
    from tasks.outputs.publish import PublishError, check_staging_dir, local_shards, preflight

    if is_locked(config.data_dir):  # a run is writing it: publish what it leaves, later
        raise _fail(str(OutputBusy(config.data_dir, read_holder(config.data_dir), None)),
                    EXIT_BUSY)
    from tasks.io.verify import DamagedOutput, check_undamaged

    try:
        check_undamaged(config.data_dir)
    except DamagedOutput as exc:
        raise _fail(str(exc), EXIT_DAMAGED) from None

    try:  # before Prefect starts: a wrong folder, no Hub or no token fails at once
        local_shards(config.data_dir)
        check_staging_dir(config.staging(), config.data_dir)
    except PublishError as exc:
        raise _fail(str(exc), 2) from None
    if not config.dry_run:
        try:
            preflight()
        except PublishError as exc:
            raise _fail(str(exc)) from None

    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from flows.publish import publish as publish_flow

    logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
    settings = (temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
                if not PREFECT_API_URL.value() else nullcontext())
    try:
        with settings:
            result = publish_flow(config)
    except PublishError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - one line for the user; Prefect logged the rest
        raise _fail(f"publish failed: {type(exc).__name__}: {exc}") from None
    out.print(f"staged: {result['staging']}", highlight=False)
    out.print("load_dataset round trip: " + ", ".join(
        f"{k} {v['rows']} rows" for k, v in result["validated"].items()), highlight=False)
    if result["dry_run"]:
        new = result["new_shards"]
        out.print(f"dry run, nothing sent to {config.repo_id}: "
                  + (f"{len(new)} new shard(s) and the card would be uploaded"
                     if new else f"no new shards ({result['already']} already published); "
                                 "the card would be refreshed"), highlight=False)
        for path in result["would_upload"]:
            out.print(f"  {path}", highlight=False)
    else:
        out.print(f"{result['message']}: {result['commit_url']}", highlight=False)


models_app = typer.Typer(help="Built-in models, and Hugging Face models in the local cache.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Built-in models with their revisions, then the models in the Hugging Face cache.

    Any cached model (or a local folder with a config.json and safetensors weights) can be
    passed to `textdigest run --summarizer` (seq2seq) or `--sentiment-model` (classifier).
    """
    from tasks.models.entity_sentiment import EntitySentiment
    from tasks.models.registry import cached_hub_models, resolve_encoder
    from tasks.models.sentiment import (
        HEAD_DIR,
        HEAD_NAME,
        LORA_DIR,
        LORA_NAME,
        EmbeddingHeadSentiment,
        LoraSentiment,
    )

    encoder = resolve_encoder()
    table = Table(title="built-in models (no network needed); revisions as rows record them")
    table.add_column("name", no_wrap=True)
    table.add_column("task")
    table.add_column("revision", overflow="fold")
    lora = LoraSentiment(LORA_DIR, LORA_NAME, load_weights=False)
    rows = [
        ("minilm", "base sentence encoder", encoder.revision),
        ("extractive", "summarizer (default)", "its encoder's"),
        (LORA_NAME, "document and sentence sentiment (default)",
         lora.revision),
        (HEAD_NAME, "sentence sentiment on frozen embeddings",
         EmbeddingHeadSentiment(HEAD_DIR, HEAD_NAME).provenance()["revision"]),
        ("minilm-entity", "sentiment towards each entity (the entities column)",
         EntitySentiment(load_weights=False).revision),
        (f"{LORA_NAME} entity tagger",
         "people, organisations, places, other names (the entities column; a head on "
         f"{LORA_NAME}'s pass, CoNLL-2003)", lora.pass_revision),
    ]
    for row in rows:
        table.add_row(*row)
    out.print(table)
    cached = cached_hub_models()
    if not cached:
        out.print("Hugging Face cache: no models (`textdigest models pull ID` on a machine "
                  "with Hub access)", highlight=False)
        return
    table = Table(title="Hugging Face cache")
    for col in ("id", "revision (commit)", "refs", "size", "safetensors"):
        table.add_column(col)
    for row in cached:
        table.add_row(row["id"], row["revision"], row["refs"], row["size"], row["safetensors"])
    out.print(table)


@models_app.command("pull")
def models_pull(
    model_id: Annotated[str, typer.Argument(help="Hub id, e.g. facebook/bart-large-cnn.")],
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit.")] = None,
) -> None:
    """Download a Hub model (config, safetensors weights, tokenizer) into the local cache."""
    from tasks.models.registry import ModelError, pull_model

    try:
        path = pull_model(model_id, revision)
    except ModelError as exc:
        raise _fail(str(exc)) from None
    out.print(f"{model_id} @ {path.name}: {path}", highlight=False)


@app.command()
def serve(
    prefect_yaml: Annotated[Path | None, typer.Option(
        help="Where the `digest` deployment's cron and parameters are read from (default: "
             "./prefect.yaml, else the checkout's).")] = None,
    name: Annotated[str, typer.Option(
        help="Deployment name to register (not `digest`: that is prefect.yaml's, for "
             "workers).")] = "digest-serve",
    cron: Annotated[str | None, typer.Option(help="Override the cron of prefect.yaml.")] = None,
    input: Annotated[Path | None, typer.Option("--input", "-i",
                                               help="Override the input.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Override the output.")] = None,
    task_runner: Annotated[str | None, typer.Option(help="Override: 'threads' or 'dask'.")]
    = None,
    dask_address: Annotated[str | None, typer.Option(
        help="Existing Dask scheduler, tcp://HOST:PORT (with --task-runner dask).")] = None,
) -> None:
    """Run the scheduled digest from this process: no worker or work pool needed.

    Needs a Prefect server (`prefect server start`, PREFECT_API_URL). Registers deployment
    digest/NAME with it on the cron and parameters of prefect.yaml, then runs its flow runs
    one at a time until Ctrl-C.
    """
    _quiet_env()
    from flows.schedule import (
        ScheduleError,
        find_prefect_yaml,
        read_spec,
        require_server,
        serve_digest,
    )

    try:
        spec = read_spec(prefect_yaml or find_prefect_yaml())
        updates = {k: v for k, v in {"input": input, "output": output,
                                     "task_runner": task_runner,
                                     "dask_address": dask_address}.items() if v is not None}
        config = spec.config.updated(**updates)
        api_url = require_server()  # the temporary API of a server-less run schedules nothing
    except ScheduleError as exc:
        raise _fail(str(exc), 2) from None
    except ValidationError as exc:
        raise _fail(f"bad option: {exc.errors()[0]['msg']}", 2) from None
    out.print(f"serving digest/{name} on cron {cron or spec.cron!r} at {api_url}: "
              f"{config.input.path} -> {config.output.path}", highlight=False)
    serve_digest(config, name=name, cron=cron or spec.cron)


if __name__ == "__main__":  # pragma: no cover
    app()
