"""What every step shares: the `Step` protocol, the `Batch` it transforms, and its settings.

A step is a plain object with a name (its Prefect task name and timing key), the `Document`
fields it needs and provides, whether a run's settings enable it, a `setup` that loads its
models once per process (cached, so a Dask worker pays it once), and a call that takes a
`Batch` and returns it. Steps know nothing of Prefect: the flow wraps each one in a task,
`tasks.pipeline.process_batch` calls them in a loop, and the benches do the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from tasks.models.names import ModelNames
from tasks.record import Document, Reject, excerpt
from tasks.runtime.secrets import redact
from tasks.steps.sentences import MAX_MODEL_CHARS


@dataclass(slots=True)
class Batch:
    """Documents in flight, rejects so far, and seconds spent per step."""

    seq: int
    docs: list[Document]
    rejects: list[Reject] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    n_items: int = 0  # input items this batch accounts for (documents + rejects at ingest)


@dataclass(frozen=True, slots=True)
class StepSettings:
    """What the steps read from a run's configuration: small, frozen and picklable, so it
    travels to Dask workers with each batch (`DigestConfig.step_settings()` builds it)."""

    models: ModelNames = field(default_factory=ModelNames)
    max_model_chars: int | None = MAX_MODEL_CHARS
    non_english: str = "keep"  # or "reject"
    near_duplicates: bool = True  # the minhash step feeds the near-duplicate index
    entities: bool = True  # the entities step runs (the entities column)
    # Names always found by the entities step: per entity its aliases, the first its name
    # (`tasks.steps.entities.read_watchlist`).
    watchlist: tuple[tuple[str, ...], ...] = ()


@runtime_checkable
class Step(Protocol):
    """One stage of the pipeline (see the module docstring)."""

    name: str
    needs: tuple[str, ...]  # Document fields read (set by ingest or an earlier step)
    provides: tuple[str, ...]  # Document fields written

    def enabled(self, settings: StepSettings) -> bool:
        """Whether this run uses the step at all."""
        ...

    def setup(self, settings: StepSettings) -> None:
        """Load what the step needs (models), once per process; later calls are free."""
        ...

    def __call__(self, batch: Batch, settings: StepSettings) -> Batch:
        """Process every document of the batch; failures become rejects, not exceptions."""
        ...


class BaseStep:
    """Defaults for a step: always enabled, nothing to set up."""

    name: str = ""
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()

    def enabled(self, settings: StepSettings) -> bool:
        return True

    def setup(self, settings: StepSettings) -> None:
        return None

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def guarded(batch: Batch, step: str, fn: Callable[[list[Document]], object]) -> Batch:
    """Run `fn` on the whole batch; on failure isolate the failing documents as rejects
    (`<step>_failed`), so one bad document never costs the batch."""
    start = time.perf_counter()
    try:
        fn(batch.docs)
    except Exception:  # noqa: BLE001 - fall back to one document at a time
        kept = []
        for doc in batch.docs:
            try:
                fn([doc])
                kept.append(doc)
            except Exception as exc:  # noqa: BLE001 - the reason goes into the reject row
                batch.rejects.append(
                    Reject(doc.source, f"{step}_failed", redact(f"{type(exc).__name__}: {exc}"),
                           excerpt(doc.raw_text), doc.doc_id)
                )
        batch.docs = kept
    add_time(batch, step, time.perf_counter() - start)
    return batch


def add_time(batch: Batch, step: str, seconds: float) -> None:
    batch.timings[step] = batch.timings.get(step, 0.0) + seconds
