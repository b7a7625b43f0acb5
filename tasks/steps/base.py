"""What every step shares: the `Step` protocol, the `Batch` it transforms, and its settings.

A step is a plain object with a name (its Prefect task name and timing key), the `Document`
fields it needs, provides and keeps only as scratch, whether a run's settings enable it, a
`setup` that loads its models once per process (cached, so a Dask worker pays it once), and
`process(docs, settings)`, which returns, for each document, the values of the fields it
writes. Steps know nothing of Prefect, timing or failures: `tasks.pipeline.run_step` is the
one wrapper that hands a step copies of the documents, assigns only the declared fields it
returns, times it, and isolates a failing document as a `<step>_failed` reject; the flow
wraps that in a task of the step's name, `process_batch` calls it in a loop, and the benches
too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from tasks.models.chosen import ChosenModels
from tasks.record import Document, Reject, read_field
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
class Column:
    """A documents column a step adds past the built-in record (`tasks.record`): its Arrow
    field and what it means (the dataset card's column table reads it). The step provides a
    field of the same name; its values travel in `Document.extra`."""

    field: pa.Field
    doc: str


@dataclass(frozen=True, slots=True)
class StepSettings:
    """What the steps read from a run's configuration: small, frozen and picklable, so it
    travels to Dask workers with each batch (`DigestConfig.step_settings()` builds it)."""

    models: ChosenModels = field(default_factory=ChosenModels)
    max_model_chars: int | None = MAX_MODEL_CHARS
    non_english: str = "keep"  # or "reject"
    near_duplicates: bool = True  # the minhash step feeds the near-duplicate index
    entities: bool = True  # the entities step runs (the entities column)
    # Names always found by the entities step: per entity its aliases, the first its name
    # (`tasks.steps.entities.read_watchlist`).
    watchlist: tuple[tuple[str, ...], ...] = ()


class MissingInput(RuntimeError):
    """A model's declared input is missing from a document (see `require_model_needs`)."""


@runtime_checkable
class Step(Protocol):
    """One stage of the pipeline (see the module docstring)."""

    name: str
    needs: tuple[str, ...]  # Document fields read (set by ingest or an earlier step), always
    provides: tuple[str, ...]  # Document fields written, always
    scratch: tuple[str, ...]  # fields written for later steps only: dropped after the last
    columns: tuple[Column, ...]  # documents columns of its own, past the built-in record
    model_roles: tuple[str, ...]  # its entries in the rows' `provenance` (e.g. "encoder")

    def enabled(self, settings: StepSettings) -> bool:
        """Whether this run uses the step at all."""
        ...

    def needs_for(self, settings: StepSettings) -> tuple[str, ...]:
        """The fields this run's step reads: `needs` and any its chosen models add."""
        ...

    def model_needs(self, settings: StepSettings) -> dict[str, str]:
        """The fields this run's chosen models add to `needs`, each with the model that
        reads it ("the summariser 'extractive'"), for the start-up check's message."""
        ...

    def provides_for(self, settings: StepSettings) -> tuple[str, ...]:
        """The fields this run's step writes: `provides` and any its chosen models add."""
        ...

    def setup(self, settings: StepSettings) -> None:
        """Load what the step needs (models), once per process; later calls are free."""
        ...

    def provenance(self, settings: StepSettings) -> dict[str, Any]:
        """Per role in `model_roles`, what this run's loaded model says it is (name,
        revision, parameters): the rows' `provenance` and the manifest's `models` gather it
        from the active steps. Called after `setup`."""
        ...

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        """For each document, in order, the values of the fields the step writes (declared in
        `provides_for` or `scratch`). The documents are the runner's copies: what the step
        changes on them reaches no row unless returned. It may raise: the wrapper then runs it
        again one document at a time, so it must not depend on its batch."""
        ...

    def screen(self, doc: Document, settings: StepSettings) -> Reject | None:
        """After `process`: the reject for a document that must go no further, else None."""
        ...


class BaseStep:
    """Defaults for a step: always enabled, needs and provides as declared, nothing to set
    up, no scratch, no columns or models of its own, no screening."""

    name: str = ""
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    scratch: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    model_roles: tuple[str, ...] = ()

    def enabled(self, settings: StepSettings) -> bool:
        return True

    def needs_for(self, settings: StepSettings) -> tuple[str, ...]:
        return (*self.needs, *(f for f in self.model_needs(settings) if f not in self.needs))

    def model_needs(self, settings: StepSettings) -> dict[str, str]:
        return {}

    def provides_for(self, settings: StepSettings) -> tuple[str, ...]:
        return self.provides

    def setup(self, settings: StepSettings) -> None:
        return None

    def provenance(self, settings: StepSettings) -> dict[str, Any]:
        return {}

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        raise NotImplementedError

    def require_model_needs(self, docs: list[Document], settings: StepSettings) -> None:
        """Fail when a field the chosen models read (`model_needs`) is missing on a document:
        the models would otherwise compute it themselves, on another backend or in a second
        pass. `active_steps` makes this unreachable in a run; a step list built by hand (a
        bench, a test) gets the error, as a `<step>_failed` reject per document."""
        for name, reader in self.model_needs(settings).items():
            lacking = [doc.doc_id for doc in docs if read_field(doc, name) is None]
            if lacking:
                raise MissingInput(f"{reader} reads {name}, which no earlier step set "
                                   f"(document {lacking[0]!r}; the embed step provides it)")

    def written(self, docs: list[Document], settings: StepSettings) -> list[dict[str, Any]]:
        """The declared fields of `docs` (the runner's copies) after a helper that fills them
        in place: the model classes score documents that way."""
        names = dict.fromkeys((*self.provides_for(settings), *self.scratch))
        return [{f: read_field(doc, f) for f in names} for doc in docs]

    def screen(self, doc: Document, settings: StepSettings) -> Reject | None:
        return None

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def add_time(batch: Batch, step: str, seconds: float) -> None:
    batch.timings[step] = batch.timings.get(step, 0.0) + seconds
