"""The `digest` Prefect flow: raw text in, cleaned, summarised, sentiment-scored Parquet out.

Each step of `tasks.pipeline.STEPS` runs as a Prefect task of its name over a batch of
documents (never one task per document). Batches are submitted ahead of the
writer (at most `max_in_flight`), so reading, model work and writing overlap while memory
stays bounded. Results are written in input order.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections import Counter, deque
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.task_runners import ThreadPoolTaskRunner
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from flows.artifacts import publish_run
from flows.config import DigestConfig
from flows.runners import runs_elsewhere, task_runner_for, thread_workers
from tasks.io import ingest, near_duplicates
from tasks.io.output_lock import hold_output
from tasks.io.verify import check_undamaged
from tasks.io.write import (
    DatasetWriter,
    existing_doc_ids,
    existing_reject_keys,
    remove_stale_temporaries,
)
from tasks.models.registry import ModelError, package_version
from tasks.pipeline import (
    STEPS,
    active_steps,
    document_schema,
    run_step,
    setup_steps,
    step_provenance,
)
from tasks.record import Document, Reject, documents_to_table, rejects_to_table
from tasks.runtime.malloc import pin_mmap_threshold
from tasks.runtime.secrets import install_redaction, redact
from tasks.steps.base import Batch, Step, StepSettings

VERSION = package_version("textdigest")
# Workers and `serve` import this module without the CLI: tokens stay out of their logs too.
install_redaction()


class RunCheckError(RuntimeError):
    """A run that wrote its output but failed an end-of-run check (accounting, reject ratio)."""


def _load_may_recover(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed load, unless the model itself is wrong (a ModelError): fail fast."""
    return not isinstance(state.data, ModelError)


@task(name="load-models", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=3,
      retry_condition_fn=_load_may_recover)
def load_models(settings: StepSettings) -> dict[str, Any]:
    """Set up every active step once in this process (retried: loading can fail transiently)
    and return what their loaded models report for the rows' provenance, by role (a step
    that is off: null). Nothing the run will not use is loaded."""
    steps = active_steps(settings)
    setup_steps(steps, settings)
    return step_provenance(steps, settings)


def _step_task(step: Step) -> Any:
    """The Prefect task that runs `step` on one batch (named as the step)."""

    def run(batch: Batch, settings: StepSettings, last: bool = False) -> Batch:
        return run_step(step, batch, settings, last)

    run.__doc__ = type(step).__doc__
    return task(run, name=step.name, cache_policy=NO_CACHE)


STEP_TASKS: dict[str, tuple[Step, Any]] = {step.name: (step, _step_task(step))
                                            for step in STEPS}


def step_task(step: Step) -> Any:
    """The Prefect task of a step, made once per step (one added to `STEPS` after import,
    as a test's, gets its own)."""
    known = STEP_TASKS.get(step.name)
    if known is None or known[0] is not step:
        STEP_TASKS[step.name] = known = (step, _step_task(step))
    return known[1]


def new_run_id(now: dt.datetime) -> str:
    """Sortable and unique: shard names and the manifest carry it."""
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _progress(enabled: bool, total: int | None) -> Progress | nullcontext:
    if not enabled:
        return nullcontext()
    return Progress(TextColumn("[bold]digest"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("docs"), TimeElapsedColumn(), TimeRemainingColumn(),
                    transient=False)


class _Intake:
    """Turns ingest items into batches, dropping what earlier runs already hold."""

    def __init__(self, done_ids: set[str], done_rejects: set[tuple[str, str | None]]):
        self.done_ids = done_ids
        self.done_rejects = done_rejects
        self.first_source: dict[str, str] = {}
        self.read = 0
        self.skipped = 0

    def batch(self, seq: int, items: list[Document | Reject]) -> Batch:
        docs: list[Document] = []
        rejects: list[Reject] = []
        for item in items:
            self.read += 1
            if (item.source, item.doc_id) in self.done_rejects:
                self.skipped += 1
            elif isinstance(item, Reject):
                rejects.append(item)
            elif item.doc_id in self.done_ids:
                # Already written by an earlier run: nothing new. Not judged by `source`:
                # a feed that gains lines at the top shifts every record's line number, and
                # a renamed file is the same input; neither must turn into rejects.
                self.skipped += 1
            elif item.doc_id in self.first_source:
                rejects.append(Reject(item.source, "duplicate_doc_id",
                                      f"same doc_id as {self.first_source[item.doc_id]}",
                                      doc_id=item.doc_id))
            else:
                self.first_source[item.doc_id] = item.source
                docs.append(item)
        return Batch(seq=seq, docs=docs, rejects=rejects, n_items=len(items))


class _Sink:
    """The writer's side of a run: flags near-duplicates in input order, writes shards, and
    keeps the tallies that the manifest and the accounting check read."""

    def __init__(self, writer: DatasetWriter, near: Any, row_provenance: dict[str, Any]):
        self.writer, self.near, self.row_provenance = writer, near, row_provenance
        self.written = self.rejected = 0
        self.reasons: Counter[str] = Counter()
        self.timings: Counter[str] = Counter()

    def drain(self, batch: Batch) -> None:
        t = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        if self.near is not None:  # here, in input order: the same flags whatever the runner
            self.near.assign(batch.docs)
        if batch.docs:
            self.writer.documents.write(
                documents_to_table(batch.docs, {**self.row_provenance, "processed_at": now},
                                   self.writer.documents.schema))
        if batch.rejects:
            self.writer.rejects.write(
                rejects_to_table(batch.rejects, self.row_provenance["run_id"], now))
        self.timings["write"] += time.perf_counter() - t
        self.timings.update(batch.timings)
        self.written += len(batch.docs)
        self.rejected += len(batch.rejects)
        self.reasons.update(r.reason for r in batch.rejects)


def _checked(manifest: dict[str, Any], config: DigestConfig) -> dict[str, Any]:
    """Fail a completed run whose books do not balance or that rejected too much."""
    if manifest["status"] != "completed":
        return manifest
    c = manifest["counts"]
    if not manifest["accounted"]:
        manifest["status"] = "failed"
        manifest["error"] = (f"accounting mismatch: read {c['read']} != written {c['written']}"
                             f" + rejected {c['rejected']} + skipped {c['skipped_existing']}")
    ratio = config.output.max_reject_ratio
    too_many = ratio is not None and c["rejected"] > ratio * c["read"]
    if manifest["status"] == "completed" and too_many:
        manifest["status"] = "failed"
        manifest["error"] = (f"{c['rejected']} of {c['read']} documents rejected, more than "
                             f"--max-reject-ratio {ratio}; see {config.output.path / 'rejects'}")
    return manifest


def _publish_after(config: DigestConfig) -> Any:
    """Chained publish: a scheduled digest keeps its Hub dataset current."""
    if not config.publish.repo_id:
        return None
    from flows.publish import PublishConfig, publish

    options = {"license": config.publish.license} if config.publish.license else {}
    return publish(PublishConfig(data_dir=config.output.path, repo_id=config.publish.repo_id,
                                 dry_run=config.publish.dry_run, branch=config.publish.branch,
                                 private=config.publish.private, **options))


def _submit(batch: Batch, steps: list[Step], settings: StepSettings) -> Any:
    """The batch's chain of step tasks; the future of the last one."""
    future: Any = batch
    for i, step in enumerate(steps):
        future = step_task(step).submit(future, settings, last=i == len(steps) - 1)
    return future


@dataclass
class _Run:
    """What `_set_up` prepares for a run: its steps and models, the intake of input items,
    the writer's side, and the near-duplicate index (None when off)."""

    run_id: str
    settings: StepSettings
    steps: list[Step]
    provenance: dict[str, Any]
    load_s: float
    intake: _Intake
    near: Any
    writer: DatasetWriter
    sink: _Sink
    total: int | None  # the progress bar's length (None: no bar, or not counted)


def _set_up(config: DigestConfig, run_id: str, logger: Any) -> _Run:
    """Check the steps, load the models, and open the output, the index and the writer."""
    settings = config.step_settings()
    steps = active_steps(settings)  # fails here, before any work, if a need is unmet
    output = config.output.path
    logger.info("run %s: %s -> %s (summarizer=%s, sentiment=%s, batch_size=%d, batch_chars=%s)",
                run_id, config.input.path, output, settings.models.summarizer,
                settings.models.sentiment, config.runtime.batch_size, config.runtime.batch_chars)
    if config.runtime.torch_threads:
        import torch

        torch.set_num_threads(config.runtime.torch_threads)  # process-wide, as torch defines it
    check_undamaged(output)  # one line naming the file, before models load or Arrow fails
    t0 = time.perf_counter()
    provenance = load_models(settings)
    load_s = time.perf_counter() - t0

    removed = remove_stale_temporaries(output)
    if removed:
        logger.warning("removed %d temporary file(s) left by an interrupted run", len(removed))
    intake = _Intake(existing_doc_ids(output), existing_reject_keys(output))
    threshold = config.output.near_dup_threshold
    near = (None if threshold is None
            else near_duplicates.load_index(output, threshold, intake.done_ids))
    if near is not None:  # this run's signatures stream to disk, not memory
        near.open_run(output, run_id)
    total = None  # the bar's length: a second pass over the input, only when a bar is drawn
    if config.runtime.show_progress:
        total = ingest.count_items(config.input.path, config.ingest_options())
        if config.input.limit is not None:
            total = min(total, config.input.limit)

    writer = DatasetWriter(output, run_id, config.output.shard_rows, document_schema())
    sink = _Sink(writer, near, {**provenance, "run_id": run_id, "textdigest_version": VERSION})
    return _Run(run_id, settings, steps, provenance, load_s, intake, near, writer, sink, total)


def _submit_and_drain(config: DigestConfig, run: _Run) -> int:
    """Read the input in batches, submit each batch's chain of step tasks (at most
    `max_in_flight` ahead of the writer) and drain the results in input order; the number
    of step task runs."""
    task_runs = 0
    with _progress(config.runtime.show_progress, run.total) as progress:
        bar = progress.add_task("digest", total=run.total) if progress is not None else None

        def drain(future: Any) -> None:
            batch: Batch = future.result()
            run.sink.drain(batch)
            if progress is not None:
                progress.advance(bar, batch.n_items)

        pending: deque[Any] = deque()
        items = ingest.iter_items(config.input.path, config.ingest_options())
        t_read = time.perf_counter()
        try:
            for seq, raw in enumerate(ingest.batched(items, config.runtime.batch_size,
                                                     config.input.limit,
                                                     config.runtime.batch_chars)):
                batch = run.intake.batch(seq, raw)
                run.sink.timings["ingest"] += time.perf_counter() - t_read
                pending.append(_submit(batch, run.steps, run.settings))
                task_runs += len(run.steps)
                while len(pending) > config.runtime.max_in_flight:
                    drain(pending.popleft())
                t_read = time.perf_counter()
            while pending:
                drain(pending.popleft())
        except Exception:
            # The run stops (a full disk, say): let the batches in flight end rather than be
            # cancelled, so the log holds the one real error, not a "Crash detected" per task.
            for future in pending:
                future.wait()
            raise
    return task_runs


def _manifest(config: DigestConfig, run: _Run, *, started: dt.datetime,
              flow_run_id: str | None, status: str, error: str | None,
              shards: dict[str, Any], wall: float) -> dict[str, Any]:
    """The run manifest: what ran, on what, with which counts, outputs and timings."""
    intake, sink, near = run.intake, run.sink, run.near
    return {
        "run_id": run.run_id,
        "flow_run_id": flow_run_id,
        "status": status,
        "error": error,
        "textdigest_version": VERSION,
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "config": json.loads(config.model_dump_json()),
        "counts": {"read": intake.read, "written": sink.written, "rejected": sink.rejected,
                   "skipped_existing": intake.skipped},
        "accounted": sink.written + sink.rejected + intake.skipped == intake.read,
        "rejects_by_reason": dict(sorted(sink.reasons.items())),
        "near_duplicates": near.flagged if near is not None else None,
        "outputs": {k: [asdict(s) for s in v] for k, v in shards.items()},
        "models": run.provenance,
        "timings_s": {"load_models": round(run.load_s, 3), "processing_wall": round(wall, 3),
                      **{k: round(v, 3) for k, v in sorted(sink.timings.items())}},
        "docs_per_s": round(intake.read / wall, 3) if wall > 0 else None,
    }


@flow(name="digest", task_runner=ThreadPoolTaskRunner(max_workers=thread_workers(2)),
      log_prints=False)
def digest(config: DigestConfig) -> dict[str, Any]:
    """Digest every document under `config.input.path` into the dataset at `config.output.path`."""
    logger = get_run_logger()
    started = dt.datetime.now(dt.UTC)
    run_id = new_run_id(started)
    ctx = get_run_context()
    if runs_elsewhere(config, getattr(ctx, "task_runner", None)):
        # A deployment or `serve` loads this flow as declared: rerun it, as a subflow, on
        # the task runner that the config asks for.
        logger.info("running on the %r task runner in a subflow", config.runtime.task_runner)
        return digest_for(config)(config)
    flow_run_id = str(ctx.flow_run.id) if getattr(ctx, "flow_run", None) else None
    pin_mmap_threshold()  # memory stays flat over long runs (see tasks.runtime.malloc)
    # One writer per output: held from before the output's ids are read until the manifest
    # is written (tasks.io.output_lock), so a run overlapping another never writes its rows.
    with hold_output(config.output.path, run_id, config.output.wait_s):
        run, manifest, path, task_runs = _write(config, run_id, started, flow_run_id, logger)
    report_path = publish_run(config, manifest, path)  # report (if asked) and UI artifacts
    if manifest["status"] != "completed":
        raise RunCheckError(manifest["error"])
    logger.info("run %s: read %d, written %d, rejected %d, skipped %d (%.1f docs/s); manifest %s",
                run_id, run.intake.read, run.sink.written, run.sink.rejected,
                run.intake.skipped, manifest["docs_per_s"] or 0.0, path)
    return {**manifest, "manifest_path": str(path), "task_runs": task_runs,
            "report_path": str(report_path) if report_path else None,
            "published": _publish_after(config)}


def _write(config: DigestConfig, run_id: str, started: dt.datetime, flow_run_id: str | None,
           logger: Any) -> tuple[_Run, dict[str, Any], Path, int]:
    """Set up, digest every batch and write the shards and the manifest (even on failure)."""
    run = _set_up(config, run_id, logger)
    writer, near = run.writer, run.near
    task_runs = 1  # load-models; then each batch's chain (for callers that wait on the API)
    t_proc = time.perf_counter()
    status, error = "completed", None
    try:
        task_runs += _submit_and_drain(config, run)
        shards = writer.close()
        if near is not None:  # after the shards: an entry never outlives its row
            near.save(config.output.path, run_id)
    except BaseException as exc:
        writer.abort()
        if near is not None:
            near.abort()
        status, error = "failed", redact(f"{type(exc).__name__}: {exc}")
        shards = {"documents": writer.documents.shards, "rejects": writer.rejects.shards}
        raise
    finally:
        wall = time.perf_counter() - t_proc
        manifest = _checked(_manifest(config, run, started=started, flow_run_id=flow_run_id,
                                      status=status, error=error, shards=shards, wall=wall),
                            config)
        path = writer.write_manifest(manifest)
    return run, manifest, path, task_runs


def digest_for(config: DigestConfig) -> Any:
    """The `digest` flow, on the task runner `config` asks for."""
    runner = task_runner_for(config)
    return digest if runner is None else digest.with_options(task_runner=runner)
