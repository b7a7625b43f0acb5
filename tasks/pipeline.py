"""The pipeline, declared once: the steps a `Document` goes through, in order.

The digest flow wraps each step in a Prefect task of the step's name, `process_batch` runs
them as plain functions, and the benches iterate the same list, so adding a step is one
module under `tasks/steps/` and one entry in `STEPS` (ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.steps import clean, embed, entities, language, minhash, sentiment, summarize
from tasks.steps.base import Batch, Step, StepSettings

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
    """The step list cannot run: a step needs a field that no earlier step provides."""


def active_steps(settings: StepSettings, steps: Sequence[Step] = STEPS) -> list[Step]:
    """The steps this run uses, in order, after checking that each one's needs are met."""
    chosen = [step for step in steps if step.enabled(settings)]
    check_needs(chosen)
    return chosen


def check_needs(steps: Sequence[Step], available: Sequence[str] = INGESTED) -> None:
    """Fail, naming the step and the field, unless every need is provided earlier."""
    have = set(available)
    for step in steps:
        missing = [f for f in step.needs if f not in have]
        if missing:
            raise PipelineError(f"step {step.name!r} needs {', '.join(missing)}, which no "
                                "earlier step provides")
        have.update(step.provides)


def setup_steps(steps: Sequence[Step], settings: StepSettings) -> None:
    """Load every step's models in this process (each is loaded once per process)."""
    for step in steps:
        step.setup(settings)


def run_step(step: Step, batch: Batch, settings: StepSettings, last: bool = False) -> Batch:
    """One step over a batch; after the last, scratch fields (embeddings) are dropped, so
    what travels back to the writer is only what it writes."""
    batch = step(batch, settings)
    if last:
        drop_scratch(batch)
    return batch


def drop_scratch(batch: Batch, steps: Sequence[Step] = STEPS) -> None:
    fields = {f for step in steps for f in getattr(step, "scratch", ())}
    for doc in batch.docs:
        for f in fields:
            setattr(doc, f, None)


def process_batch(batch: Batch, settings: StepSettings,
                  steps: Sequence[Step] | None = None) -> Batch:
    """Every active step in order: what the flow does, as one plain function."""
    chosen = active_steps(settings) if steps is None else list(steps)
    for i, step in enumerate(chosen):
        batch = run_step(step, batch, settings, last=i == len(chosen) - 1)
    return batch
