"""A row is a function of its document, the models and the config: never of its batch.

Every built-in model path runs each sentence alone (`tasks.models.rowwise`), so the same
document gives the same row, bit for bit, whatever batch size, neighbours or order it comes
in. The per-model row caches are cleared before each run here: a cached row would make a
rerun agree for the wrong reason.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.config import DigestConfig
from tasks.io import ingest
from tasks.models.entity_finder import load_finder
from tasks.models.onnx_backend import load_onnx_sentiment
from tasks.models.sentiment import LORA_NAME, load_sentiment
from tasks.pipeline import active_steps, process_batch
from tasks.record import documents_to_table
from tasks.steps.base import Batch, StepSettings

from .corpus import varied_documents, write_jsonl

PROVENANCE = {"run_id": "r", "textdigest_version": "0", "processed_at": None, "encoder": None,
              "summarizer": None, "sentiment_model": None, "entity_model": None,
              "cleaner": None}


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    """The varied corpus as ingest reads it (ids, sources, titles), in file order."""
    path = write_jsonl(tmp_path_factory.mktemp("inv") / "in.jsonl", varied_documents())
    items = list(ingest.iter_items(path, DigestConfig(input=path).ingest_options()))
    assert len(items) >= 60 and all(hasattr(d, "raw_text") for d in items)
    return items


def _fresh(step_settings: StepSettings) -> None:
    """Forget every row the run's models computed, so nothing comes from a cache."""
    models = step_settings.models
    for model in {id(m): m for m in (models.load_encoder(), models.load_sentiment(),
                                     models.load_entity_model())}.values():
        model.cache.clear()
    load_finder().clear()


def _rows(docs) -> list[dict]:
    """Every written column but provenance, by doc_id."""
    table = documents_to_table(docs, PROVENANCE).drop_columns(["provenance"])
    return sorted(table.to_pylist(), key=lambda r: r["doc_id"])


def _digest(items, partition: list[list[int]], step_settings: StepSettings) -> list[dict]:
    """Every document through the steps, batch by batch as `partition` cuts them."""
    import copy

    _fresh(step_settings)
    done = []
    for seq, part in enumerate(partition):
        batch = process_batch(Batch(seq=seq, docs=[copy.deepcopy(items[i]) for i in part]),
                              step_settings)
        assert not batch.rejects
        done += batch.docs
    return _rows(done)


def _partition(n: int, rng: random.Random, most: int) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    parts, i = [], 0
    while i < n:
        size = rng.randint(1, most)
        parts.append(order[i : i + size])
        i += size
    return parts


@pytest.fixture(scope="module")
def onnx_settings() -> StepSettings:
    return StepSettings(models=DigestConfig().model_names(), near_duplicates=False)


@pytest.fixture(scope="module")
def one_batch(documents, onnx_settings) -> list[dict]:
    return _digest(documents, [list(range(len(documents)))], onnx_settings)


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), most=st.sampled_from([1, 3, 17, 40]))
def test_any_partition_and_order_gives_the_same_rows(documents, onnx_settings, one_batch,
                                                     seed, most):
    """The default path (ONNX int8): identical rows, floats bit for bit."""
    partition = _partition(len(documents), random.Random(seed), most)
    assert _digest(documents, partition, onnx_settings) == one_batch


def test_rows_reused_from_the_cache_equal_fresh_ones(documents, onnx_settings, one_batch):
    """Cross-batch reuse is safe: a run whose sentences come from the cache (a second pass,
    other batches) writes the rows of a fresh run."""
    model = onnx_settings.models.load_sentiment()
    _fresh(onnx_settings)
    rng = random.Random(5)
    first = _partition(len(documents), rng, 9)
    process_batch(Batch(seq=0, docs=[documents[i] for i in first[0]]), onnx_settings)
    import copy

    reused = []
    for seq, part in enumerate(_partition(len(documents), rng, 11)):
        reused += process_batch(Batch(seq=seq, docs=[copy.deepcopy(documents[i])
                                                     for i in part]), onnx_settings).docs
    assert model.cache.hits > 0
    assert _rows(reused) == one_batch


def test_the_corpus_exercises_what_could_differ(one_batch):
    """A check on the check: the corpus has polar and neutral rows, picked summaries and
    sentences shared across documents (the cache's case)."""
    labels = {r["sentiment"] for r in one_batch}
    assert labels == {"negative", "neutral", "positive"}
    assert sum(r["summary_method"] == "extractive" for r in one_batch) >= 10
    assert sum("national statistics office" in r["text"] for r in one_batch) >= 10


@pytest.mark.parametrize("quant", ["int8", "fp32"])
def test_onnx_sentence_outputs_do_not_depend_on_neighbours(documents, quant):
    """Logits and vectors of a sentence: the same alone, in any group, in any order."""
    model = load_onnx_sentiment(LORA_NAME, quant)
    sentences = list(dict.fromkeys(s for d in documents for s in d.raw_text.split(". ")))[:120]
    model.cache.clear()
    alone = np.vstack([np.hstack(model.outputs([s])) for s in sentences])
    rng = random.Random(11)
    for _ in range(3):
        model.cache.clear()
        order = list(range(len(sentences)))
        rng.shuffle(order)
        together = np.hstack(model.outputs([sentences[i] for i in order]))
        assert np.array_equal(together, alone[order])


@pytest.mark.slow
def test_torch_backend_rows_do_not_depend_on_the_batch(documents):
    """The torch path: the same check (bit for bit at a fixed thread count)."""
    torch_settings = StepSettings(models=DigestConfig(backend="torch").model_names(),
                                  near_duplicates=False)
    assert load_sentiment(LORA_NAME).backend_params()["backend"] == "torch"
    subset = documents[::2]
    whole = _digest(subset, [list(range(len(subset)))], torch_settings)
    parts = _partition(len(subset), random.Random(2), 7)
    assert _digest(subset, parts, torch_settings) == whole


def _written(out) -> list[dict]:
    """Every written column but provenance, by doc_id, read back from the Parquet shards."""
    import pyarrow.parquet as pq

    table = pq.read_table(out / "documents").drop_columns(["provenance"])
    return sorted(table.to_pylist(), key=lambda r: r["doc_id"])


def _pairs(rows: list[dict]) -> set[frozenset[str]]:
    """Near-duplicate pairs, whichever way they point (the earlier document is the original)."""
    return {frozenset((r["doc_id"], r["duplicate_of"])) for r in rows if r["duplicate_of"]}


def _same_rows(a: list[dict], b: list[dict]) -> None:
    assert _pairs(a) == _pairs(b) and _pairs(a)
    strip = [{**r, "duplicate_of": None} for r in a], [{**r, "duplicate_of": None} for r in b]
    assert strip[0] == strip[1]


@pytest.mark.slow
def test_incremental_runs_and_flow_settings_give_the_rows_of_one_run(prefect_harness, tmp_path):
    """Three runs that each add documents to one dataset equal one run over all of them; so
    do a run with one batch in flight and one with four, in other batch sizes."""
    from flows.digest import digest

    rows = varied_documents()
    rng = random.Random(7)
    rng.shuffle(rows)
    whole = write_jsonl(tmp_path / "all" / "in.jsonl", rows)
    base = DigestConfig(input=whole, output=tmp_path / "one", batch_size=16,
                        show_progress=False)
    digest(base)
    expected = _written(tmp_path / "one")
    assert len(expected) == len(rows)

    grow = tmp_path / "grow"
    for k, upto in enumerate((20, 45, len(rows))):
        part = write_jsonl(tmp_path / f"in{k}" / "in.jsonl", rows[:upto])
        digest(base.updated(input=part, output=grow, batch_size=5 + 4 * k))
    _same_rows(_written(grow), expected)

    for in_flight, size in ((1, 3), (4, 11)):
        out = tmp_path / f"flight{in_flight}"
        digest(base.updated(output=out, max_in_flight=in_flight, batch_size=size))
        _same_rows(_written(out), expected)


class _BreaksOnBad:
    """A step that does its real work, then raises when the batch holds the document "bad":
    as a model or library failing on one input would, after changing its neighbours."""

    def __init__(self, step):
        self.step = step

    def __getattr__(self, name):
        return getattr(self.step, name)

    def process(self, docs, settings) -> list:
        out = self.step.process(docs, settings)
        if any(d.doc_id == "bad" for d in docs):
            raise RuntimeError("cannot read this document")
        return out


@pytest.mark.parametrize("name", [s.name for s in active_steps(StepSettings())])
def test_a_neighbours_failure_changes_no_other_row(documents, onnx_settings, name):
    """When a step fails on one document of a batch, the others are redone one at a time
    from their state before the step: their rows are those of a run without that document,
    column for column, and the failed one is that step's reject. One neighbour gets a
    cleaning note (a sentence cut for length), which a second cleaning would repeat."""
    import copy
    import dataclasses

    from tasks.record import Document
    from tasks.steps.sentences import MAX_SENTENCE_CHARS

    every = dataclasses.replace(onnx_settings, near_duplicates=True)
    steps = [_BreaksOnBad(s) if s.name == name else s for s in active_steps(every)]
    long = "Shares rose " + "and rose again " * (MAX_SENTENCE_CHARS // 10) + "on Monday."
    picked = [Document(doc_id="long", source="t", raw_text=long), *documents[:6]]
    bad = copy.deepcopy(documents[6])
    bad.doc_id = "bad"
    _fresh(onnx_settings)
    alone = process_batch(Batch(seq=0, docs=copy.deepcopy(picked)), every)
    assert not alone.rejects and "textdigest_note" in alone.docs[0].meta
    _fresh(onnx_settings)
    batch = process_batch(Batch(seq=0, docs=[*copy.deepcopy(picked[:4]), bad,
                                             *copy.deepcopy(picked[4:])]), every, steps=steps)
    assert [(r.doc_id, r.reason) for r in batch.rejects] == [("bad", f"{name}_failed")]
    assert _rows(batch.docs) == _rows(alone.docs)
