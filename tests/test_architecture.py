"""The declared pipeline: one step list, checked needs, and ARCHITECTURE.md kept honest."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pyarrow as pa
import pytest

from tasks.pipeline import (
    STEPS,
    PipelineError,
    active_steps,
    check_needs,
    column_docs,
    document_schema,
    process_batch,
    run_step,
    step_provenance,
)
from tasks.record import COLUMN_DOCS, DOCUMENT_SCHEMA, Document
from tasks.steps.base import BaseStep, Batch, Column, Step, StepSettings

from .conftest import REPO

ARCHITECTURE = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")


def test_every_step_is_a_step_with_a_unique_name_and_met_needs():
    assert all(isinstance(step, Step) for step in STEPS)
    names = [step.name for step in STEPS]
    assert len(set(names)) == len(names)
    check_needs(STEPS)  # in the declared order, every need is provided earlier


def test_architecture_names_every_step_and_module_and_they_exist():
    for step in STEPS:
        module = type(step).__module__.replace(".", "/") + ".py"
        assert (REPO / module).is_file()
        assert f"`{module}`" in ARCHITECTURE or f"| {step.name} | `{module}`" in ARCHITECTURE, \
            f"ARCHITECTURE.md does not name step {step.name} ({module})"
    for path in re.findall(r"`((?:tasks|flows|bench)/[\w/]*(?:\.py)?)`", ARCHITECTURE):
        assert (REPO / path).exists(), f"ARCHITECTURE.md names {path}, which does not exist"
    packages = {p.name for p in (REPO / "tasks").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    for package in packages:
        assert f"tasks/{package}/" in ARCHITECTURE, f"ARCHITECTURE.md omits tasks/{package}/"


def test_a_step_unmet_needs_fail_before_any_work():
    class Shout(BaseStep):
        name = "shout"
        needs = ("summary",)
        provides = ("meta",)

    with pytest.raises(PipelineError, match="shout.*summary"):
        check_needs([STEPS[0], Shout()])


class WordCount(BaseStep):
    """The ARCHITECTURE.md recipe, as a throwaway step: words of the summary into meta."""

    name = "word_count"
    needs = ("summary",)
    provides = ("meta",)

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict]:
        out = []
        for doc in docs:
            if doc.summary == "boom":
                raise ValueError("cannot count")
            out.append({"meta": {**doc.meta, "summary_words": len(doc.summary.split())}})
        return out


def test_a_new_step_is_one_class_and_one_list_entry():
    settings = StepSettings()
    # (without the sentiment and entities steps: nothing here reads them)
    steps = [*active_steps(settings, [s for s in STEPS
                                      if s.name not in ("sentiment", "entities")]),
             WordCount()]
    check_needs(steps)
    docs = [Document(doc_id="a", source="a", raw_text="Shares rose. Bonds fell. Gold held."),
            Document(doc_id="b", source="b", raw_text="   ")]
    batch = process_batch(Batch(seq=0, docs=docs, n_items=2), settings, steps=steps)
    (doc,) = batch.docs
    assert doc.meta["summary_words"] == len(doc.summary.split()) > 0
    assert [r.reason for r in batch.rejects] == ["empty_after_cleaning"]
    assert "word_count" in batch.timings
    # a failure inside the new step becomes a reject of that step, not a lost batch
    doc.summary = "boom"
    again = run_step(WordCount(), Batch(seq=1, docs=[doc]), settings)
    assert not again.docs and again.rejects[0].reason == "word_count_failed"
    assert "word_count" in again.timings


@pytest.mark.parametrize("name", [s.name for s in STEPS if s.name in ("language", "minhash")])
def test_every_step_is_timed_and_guarded_by_the_one_wrapper(name, monkeypatch):
    """The steps that once timed themselves are guarded too: a document that breaks one
    becomes its `<step>_failed` reject, the others go on."""
    from tasks.steps import language, minhash

    real = {"language": language.detect_language, "minhash": minhash.signature}[name]

    def breaks_on_boom(text):
        if "boom" in text:
            raise RuntimeError("bad input")
        return real(text)

    monkeypatch.setattr({"language": language, "minhash": minhash}[name],
                        {"language": "detect_language", "minhash": "signature"}[name],
                        breaks_on_boom)
    step = next(s for s in STEPS if s.name == name)
    docs = [Document(doc_id=i, source=i, raw_text=t, text=t) for i, t in
            (("a", "Shares rose sharply on Monday in London."), ("b", "boom"),
             ("c", "Bonds fell as investors sold government debt."))]
    batch = run_step(step, Batch(seq=0, docs=docs, n_items=3), StepSettings())
    assert [d.doc_id for d in batch.docs] == ["a", "c"]
    assert [(r.doc_id, r.reason) for r in batch.rejects] == [("b", f"{name}_failed")]
    assert name in batch.timings


def test_scratch_is_declared_and_dropped_after_the_last_step():
    assert all(isinstance(step.scratch, tuple) for step in STEPS)
    scratch = {f for step in STEPS for f in step.scratch}
    assert scratch == {"embeddings", "sentence_logits"}
    doc = Document(doc_id="a", source="a", raw_text="x", text="x", embeddings=[1.0],
                   sentence_logits=[0.0], minhash=[1])
    run_step(STEPS[1], Batch(seq=0, docs=[doc]), StepSettings(), last=True)
    assert doc.embeddings is None and doc.sentence_logits is None
    assert doc.minhash is not None  # not scratch: the writer's near-duplicate index reads it


def test_disabled_steps_drop_out_by_settings():
    names = [s.name for s in active_steps(StepSettings(near_duplicates=False))]
    assert "minhash" not in names and names[0] == "clean"
    assert "minhash" in [s.name for s in active_steps(StepSettings())]


@pytest.mark.slow
def test_training_and_outputs_are_not_imported_by_a_run():
    """The run-time import graph: the flow pulls in no training code (and no cycles)."""
    code = ("import sys, flows.digest, flows.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('tasks.training')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"


def _import_graph() -> dict[str, set[str]]:
    """Every `from tasks…/flows… import` in tasks/ and flows/, wherever it sits (a cycle
    closed inside a function is still a cycle)."""
    import ast

    files = {}
    for path in [*REPO.glob("tasks/**/*.py"), *REPO.glob("flows/*.py")]:
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        files[name] = path
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for target in (node.module, *(f"{node.module}.{a.name}" for a in node.names)):
                    if target in files and target != name:
                        graph[name].add(target)
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    assert graph["tasks.pipeline"] and graph["flows.digest"]  # the graph was read
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*path, nxt])
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def _bench_imports(path) -> set[str]:
    """`module.name` for every `from tasks…/flows… import name` in a bench, wherever it sits."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_benches_that_run_the_steps_are_the_ones_architecture_names():
    """A bench runs the pipeline through the step list (`process_batch`, `active_steps`) or the
    flow, or ARCHITECTURE.md names it as one that chains steps by hand."""
    through_list = {"tasks.pipeline.process_batch", "tasks.pipeline.active_steps",
                    "flows.digest.digest", "flows.digest.digest_for"}
    by_hand = {"tasks.steps.clean.clean_document", "tasks.steps.embed.embed_sentences"}
    overview = ARCHITECTURE.split("## The record and the batch", 1)[0]
    for path in sorted((REPO / "bench").glob("*.py")):
        imports = _bench_imports(path)
        name = f"`bench/{path.name}`"
        if imports & through_list:
            assert name in overview, f"ARCHITECTURE.md does not name {name} as running the list"
        elif by_hand <= imports:
            assert name in overview and "by hand" in overview, \
                f"{name} chains steps by hand and ARCHITECTURE.md does not say so"
        elif name in overview:  # named: it must do what the overview says of it
            assert "by hand" in overview and by_hand & imports, name


def test_adding_a_step_names_what_a_new_column_a_model_and_scratch_need():
    import tasks.pipeline
    from tasks.pipeline import drop_scratch
    from tasks.steps import base

    recipe = ARCHITECTURE.split("## Adding a step", 1)[1]
    for name in ("Column(", "`model_roles`", "`provenance(settings)`", "`written`"):
        assert name in recipe, name
    assert hasattr(base, "Column") and hasattr(base.BaseStep, "written")
    for name in ("document_schema", "column_docs", "step_provenance"):
        assert name in recipe and hasattr(tasks.pipeline, name), name
    assert "`scratch`" in recipe and "`drop_scratch`" in recipe
    scratch = {f for step in STEPS for f in getattr(step, "scratch", ())}
    assert scratch and all(f in Document.__slots__ for f in scratch)
    doc = Document(doc_id="a", source="a", raw_text="x")
    for f in scratch:
        setattr(doc, f, object())
    drop_scratch(Batch(seq=0, docs=[doc]))
    assert all(getattr(doc, f) is None for f in scratch)


def test_the_step_table_in_architecture_is_the_codes():
    """ARCHITECTURE.md's table is made from the step declarations, so it cannot drift."""
    from tasks.pipeline import step_table

    assert step_table() in ARCHITECTURE, "regenerate it: python -m tasks.pipeline"


def test_a_step_that_writes_an_undeclared_field_fails():
    """The runner holds a step to what it declares: a field returned or changed outside
    `provides` (here a note in `meta`, as clean once wrote without declaring it) fails the
    run, naming both; declared, the returned value is what the row gets."""

    class Sneaky(BaseStep):
        name = "sneaky"
        needs = ("text",)
        provides = ("language",)
        returns_meta = False

        def process(self, docs: list[Document], settings: StepSettings) -> list[dict]:
            out = []
            for doc in docs:
                doc.meta["seen"] = True  # on the runner's copy
                out.append({"language": "en", **({"meta": doc.meta} if self.returns_meta
                                                 else {})})
            return out

    def run(step):
        doc = Document(doc_id="a", source="a", raw_text="x", text="x")
        return doc, run_step(step, Batch(seq=0, docs=[doc]), StepSettings())

    with pytest.raises(PipelineError, match="'sneaky' wrote meta, which it does not declare"):
        run(Sneaky())  # changed in place
    Sneaky.returns_meta = True
    with pytest.raises(PipelineError, match="'sneaky' wrote meta, which it does not declare"):
        run(Sneaky())  # returned
    Sneaky.provides = ("language", "meta")
    doc, batch = run(Sneaky())
    assert batch.docs == [doc] and (doc.language, doc.meta) == ("en", {"seen": True})
    Sneaky.returns_meta = False  # declared but not returned: the copy's change reaches no row
    doc, _ = run(Sneaky())
    assert (doc.language, doc.meta) == ("en", {})


def test_a_step_returns_one_mapping_per_document():
    class Forgetful(BaseStep):
        name = "forgetful"
        provides = ("language",)

        def process(self, docs: list[Document], settings: StepSettings) -> None:
            for doc in docs:
                doc.language = "en"

    doc = Document(doc_id="a", source="a", raw_text="x", text="x")
    with pytest.raises(PipelineError, match="'forgetful' must return one dict"):
        run_step(Forgetful(), Batch(seq=0, docs=[doc]), StepSettings())
    assert doc.language is None


class Tally(BaseStep):
    """A step as a user adds one: its module (here, this test's) and its `STEPS` entry,
    with a column and a model of its own."""

    name = "tally"
    needs = ("summary",)
    provides = ("summary_words",)
    columns = (Column(pa.field("summary_words", pa.int32()), "words in `summary`"),)
    model_roles = ("word_counter",)

    def provenance(self, settings: StepSettings) -> dict:
        return {"word_counter": {"name": "whitespace-split", "revision": "1",
                                 "params": json.dumps({"separator": None})}}

    def process(self, docs: list[Document], settings: StepSettings) -> list[dict]:
        return [{"summary_words": len(doc.summary.split())} for doc in docs]


def test_the_builtin_steps_write_the_records_schema():
    assert document_schema() is DOCUMENT_SCHEMA
    assert column_docs() == COLUMN_DOCS


def test_a_toy_step_reaches_the_rows_the_manifest_and_the_card(prefect_harness, tmp_path,
                                                              monkeypatch):
    """Nothing but the step and its entry: its column and its model's provenance reach the
    Parquet rows (pyarrow and DuckDB), the run manifest and the dataset card's columns."""
    import duckdb
    import pyarrow.parquet as pq

    import tasks.pipeline
    from flows.config import DigestConfig
    from flows.digest import digest
    from tasks.outputs.publish import build_card, local_shards

    from .conftest import SEEDS

    monkeypatch.setattr(tasks.pipeline, "STEPS", (*tasks.pipeline.STEPS, Tally()))
    out = tmp_path / "out"
    manifest = digest(DigestConfig(input=SEEDS, output=out, show_progress=False,
                                   entities=False))
    table = pq.read_table(out / "documents")
    assert table.schema.names[-1] == "summary_words"
    rows = table.to_pylist()
    assert rows and all(r["summary_words"] == len(r["summary"].split()) > 0 for r in rows)
    assert {r["provenance"]["word_counter"]["name"] for r in rows} == {"whitespace-split"}
    assert all(r["provenance"]["entity_model"] is None for r in rows)  # its step was off
    total, = duckdb.connect().execute(
        f"SELECT sum(summary_words) FROM read_parquet('{out}/documents/*.parquet')").fetchone()
    assert total == sum(r["summary_words"] for r in rows)
    written = json.loads((out / "runs" / f"{manifest['run_id']}.json").read_text())
    assert written["models"]["word_counter"]["revision"] == "1"
    assert written["models"]["summarizer"]["name"]
    card = str(build_card("someone/toy", local_shards(out)))
    assert "| `summary_words` |" in card and "words in `summary`" in card


def test_a_step_reports_only_the_models_it_declares():
    class Loud(Tally):
        model_roles = ()

    with pytest.raises(PipelineError, match="'tally' reports provenance for word_counter"):
        step_provenance([Loud()], StepSettings(), every=[Loud()])
