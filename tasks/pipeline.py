"""The pipeline, declared once: the steps a `Document` goes through, in order.

The digest flow wraps each step in a Prefect task of the step's name, `process_batch` runs
them as plain functions, and the benches iterate the same list, so adding a step is one
module under `tasks/steps/` and one entry in `STEPS` (ARCHITECTURE.md).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from tasks.record import (
    COLUMN_DOCS,
    DOCUMENT_SCHEMA,
    MODEL_PROVENANCE,
    Document,
    Reject,
    excerpt,
    write_field,
)
from tasks.runtime.secrets import redact
from tasks.steps import clean, embed, entities, language, minhash, sentiment, summarize
from tasks.steps.base import Batch, Step, StepSettings, add_time

STEPS: tuple[Step, ...] = (
    clean.STEP,  # raw_text -> text, header fields, sentences
    language.STEP,  # text -> language
    minhash.STEP,  # text -> near-duplicate signature (when the index is on)
    embed.STEP,  # sentences -> embeddings (when a chosen model reads them)
    summarize.STEP,  # sentences -> summary
    sentiment.STEP,  # title, sentences -> sentiment
    entities.STEP,  # title, sentences -> entities (named, with the news's sentiment for each)
)

# What ingest fills in before the first step.
INGESTED: tuple[str, ...] = ("doc_id", "source", "raw_text", "title", "meta")


class PipelineError(ValueError):
    """The step list cannot run: a step needs a field that no earlier step provides, or
    writes one it does not declare."""


def active_steps(settings: StepSettings, steps: Sequence[Step] | None = None) -> list[Step]:
    """The steps this run uses (of `STEPS`, or `steps`), in order, after checking that each
    one's needs are met and that the models sharing the embed step's pass read the same
    sentences."""
    settings.models.check()
    chosen = [step for step in (STEPS if steps is None else steps) if step.enabled(settings)]
    check_needs(chosen, settings=settings)
    return chosen


def check_needs(steps: Sequence[Step], available: Sequence[str] = INGESTED,
                settings: StepSettings | None = None) -> None:
    """Fail, naming the step and the field, unless every need is provided earlier. Needs and
    provides are the run's (`needs_for`, `provides_for`: the chosen models may add fields);
    without `settings`, a default run's."""
    settings = settings if settings is not None else StepSettings()
    have = set(available)
    for step in steps:
        missing = [f for f in step.needs_for(settings) if f not in have]
        if missing:
            readers = step.model_needs(settings)
            named = [f"{f} (read by {readers[f]})" if f in readers else f for f in missing]
            raise PipelineError(f"step {step.name!r} needs {', '.join(named)}, which no "
                                "earlier step provides")
        have.update(step.provides_for(settings))


def document_schema(steps: Sequence[Step] | None = None) -> pa.Schema:
    """The documents schema of the steps (`STEPS`): the built-in record's columns
    (`tasks.record.DOCUMENT_SCHEMA`), each step's own `columns` after them, and in
    `provenance` one entry per model role the steps declare (`model_roles`). For the
    built-in steps it is `DOCUMENT_SCHEMA` itself. A step that is off in a run keeps its
    columns, null, so every run of one version writes one schema."""
    steps = STEPS if steps is None else steps
    provenance = DOCUMENT_SCHEMA.field("provenance")
    known = set(provenance.type.names)
    roles = [r for step in steps for r in step.model_roles if r not in known]
    columns = [c.field for step in steps for c in step.columns]
    if not roles and not columns:
        return DOCUMENT_SCHEMA
    fields = list(provenance.type) + [pa.field(r, MODEL_PROVENANCE) for r in roles]
    schema = DOCUMENT_SCHEMA.set(DOCUMENT_SCHEMA.get_field_index("provenance"),
                                 provenance.with_type(pa.struct(fields)))
    for column in columns:
        schema = schema.append(column)
    return schema.with_metadata(DOCUMENT_SCHEMA.metadata)


def column_docs(steps: Sequence[Step] | None = None) -> dict[str, str]:
    """What each documents column means: the built-in record's (`COLUMN_DOCS`), then each
    step's own."""
    steps = STEPS if steps is None else steps
    return {**COLUMN_DOCS, **{c.field.name: c.doc for step in steps for c in step.columns}}


def step_provenance(steps: Sequence[Step], settings: StepSettings,
                    every: Sequence[Step] | None = None) -> dict[str, Any]:
    """The rows' model provenance: what each active step's loaded models report, by role;
    the roles of steps that are off (of `every`, default `STEPS`) are null."""
    out: dict[str, Any] = {role: None for step in (STEPS if every is None else every)
                           for role in step.model_roles}
    for step in steps:
        reported = step.provenance(settings)
        undeclared = set(reported) - set(step.model_roles)
        if undeclared:
            raise PipelineError(f"step {step.name!r} reports provenance for "
                                f"{', '.join(sorted(undeclared))}, which it does not declare "
                                "(model_roles)")
        out.update(reported)
    return out


def step_table(settings: StepSettings | None = None, steps: Sequence[Step] | None = None) -> str:
    """ARCHITECTURE.md's step table, made from the declarations (a default run's needs and
    provides, as `check_needs` reads them): `python -m tasks.pipeline` prints it, and a test
    holds ARCHITECTURE.md to it."""
    settings = settings if settings is not None else StepSettings()
    steps = STEPS if steps is None else steps
    rows = ["| Step | Module | Needs | Provides | Scratch (dropped after the last step) |",
            "|---|---|---|---|---|"]
    for step in steps:
        module = type(step).__module__.replace(".", "/") + ".py"
        cells = [step.name, f"`{module}`", ", ".join(step.needs_for(settings)),
                 ", ".join(step.provides_for(settings)), ", ".join(step.scratch) or "–"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def setup_steps(steps: Sequence[Step], settings: StepSettings) -> None:
    """Load every step's models in this process (each is loaded once per process)."""
    for step in steps:
        step.setup(settings)


def run_step(step: Step, batch: Batch, settings: StepSettings, last: bool = False) -> Batch:
    """One step over a batch, the one wrapper every run uses. The step reads copies of the
    documents and returns the values it computed; only the fields it declares (provides /
    provides_for, scratch) are assigned, and any other field it returns or changes fails the
    run (`PipelineError`). A failure is isolated to the documents that fail: the step runs
    again one document at a time, each from its state before the step, and each document it
    still fails on becomes a `<step>_failed` reject, so one bad document never costs the batch
    or changes a neighbour's row. Timed under the step's name. After the last step the scratch
    fields (embeddings) are dropped, so what travels back to the writer is only what it
    writes."""
    start = time.perf_counter()
    views = [_snapshot(doc) for doc in batch.docs]
    try:
        outputs = step.process(views, settings)
    except Exception:  # noqa: BLE001 - fall back to one document at a time
        done = []
        for doc in batch.docs:  # untouched: the failed call changed only its copies
            view = _snapshot(doc)
            try:
                out = _outputs(step, [view], step.process([view], settings))
                done.append((doc, view, out[0]))
            except PipelineError:
                raise
            except Exception as exc:  # noqa: BLE001 - the reason goes into the reject row
                batch.rejects.append(_failed(step, doc, exc))
    else:
        done = list(zip(batch.docs, views, _outputs(step, views, outputs), strict=True))
    allowed = {*step.provides_for(settings), *step.scratch}
    for doc, view, out in done:
        wrote = sorted((set(out) | _changed_fields(doc, view)) - allowed)
        if wrote:
            raise PipelineError(f"step {step.name!r} wrote {', '.join(wrote)}, which it does "
                                "not declare (provides / provides_for)")
        for name, value in out.items():
            write_field(doc, name, value)
    kept = []
    for doc, _, _ in done:  # the step's own rejects (nothing left to read, not English)
        try:
            reject = step.screen(doc, settings)
        except Exception as exc:  # noqa: BLE001
            reject = _failed(step, doc, exc)
        if reject is None:
            kept.append(doc)
        else:
            batch.rejects.append(reject)
    batch.docs = kept
    add_time(batch, step.name, time.perf_counter() - start)
    if last:
        drop_scratch(batch)
    return batch


def _outputs(step: Step, docs: list[Document], outputs: Any) -> list[dict[str, Any]]:
    """A step's return value, checked: one mapping of field values per document."""
    if not isinstance(outputs, list) or len(outputs) != len(docs) or not all(
            isinstance(o, dict) for o in outputs):
        raise PipelineError(f"step {step.name!r} must return one dict of field values per "
                            f"document ({len(docs)}), not {type(outputs).__name__}")
    return outputs


def _snapshot(doc: Document) -> Document:
    """A copy of `doc` that a step's in-place writes do not reach: its containers (meta,
    sentences, entities) are copied one level deep; a step replaces, never mutates, arrays."""
    copied = copy.copy(doc)
    for f in dataclasses.fields(doc):
        value = getattr(doc, f.name)
        if isinstance(value, dict | list):
            setattr(copied, f.name, copy.copy(value))
    return copied


def _changed_fields(before: Document, after: Document) -> set[str]:
    """The fields a step changed: replaced, or a container changed in place."""
    changed = set()
    for f in dataclasses.fields(after):
        old, new = getattr(before, f.name), getattr(after, f.name)
        if old is new:
            continue
        try:
            same = bool(old == new)
        except (TypeError, ValueError):  # arrays: compared by identity only
            same = False
        if not same:
            changed.add(f.name)
    return changed


def _failed(step: Step, doc: Document, exc: Exception) -> Reject:
    """A document the step failed on, with the reason (redacted) in its detail."""
    return Reject(doc.source, f"{step.name}_failed", redact(f"{type(exc).__name__}: {exc}"),
                  excerpt(doc.raw_text), doc.doc_id)


def drop_scratch(batch: Batch, steps: Sequence[Step] | None = None) -> None:
    fields = {f for step in (STEPS if steps is None else steps) for f in step.scratch}
    for doc in batch.docs:
        for f in fields:
            write_field(doc, f, None)


def process_batch(batch: Batch, settings: StepSettings,
                  steps: Sequence[Step] | None = None) -> Batch:
    """Every active step in order: what the flow does, as one plain function."""
    chosen = active_steps(settings) if steps is None else list(steps)
    for i, step in enumerate(chosen):
        batch = run_step(step, batch, settings, last=i == len(chosen) - 1)
    return batch


if __name__ == "__main__":
    print(step_table())
