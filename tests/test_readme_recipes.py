"""The analysis recipes of docs/dataset.md, run as written against a real digest output.

A recipe is a fenced block right after a `<!-- recipe: NAME -->` line in docs/dataset.md; only
those run (other blocks are illustrations). SQL recipes go through DuckDB, Python recipes are
executed as they stand, from a folder holding `data/`, and their results are checked against
what pyarrow reads from the same files.
"""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest

from flows.config import DigestConfig

from .conftest import REPO
from .sample_input import build_input

RECIPE = re.compile(r"<!-- recipe: ([a-z0-9-]+) -->\n```(\w+)\n(.*?)\n```", re.S)
EXPECTED = {"duckdb-agency", "duckdb-daily", "duckdb-entities", "duckdb-rejects", "pandas",
            "polars", "datasets"}
RECIPES_PAGE = REPO / "docs" / "dataset.md"


def recipes() -> dict[str, tuple[str, str]]:
    found = RECIPE.findall(RECIPES_PAGE.read_text(encoding="utf-8"))
    names = [name for name, _, _ in found]
    assert len(names) == len(set(names)), "recipe names must be unique"
    return {name: (lang, code) for name, lang, code in found}


@pytest.fixture(scope="module")
def workdir(prefect_harness, tmp_path_factory):
    """A folder holding `data/`, written by the real flow, and what it holds (via pyarrow)."""
    from flows.digest import digest

    root = tmp_path_factory.mktemp("recipes")
    build_input(root / "in", articles=1)
    digest(DigestConfig(input=root / "in", output=root / "data", show_progress=False))
    docs = pq.read_table(root / "data" / "documents").to_pylist()
    rejects = pq.read_table(root / "data" / "rejects").to_pylist()
    assert docs and rejects
    return root, docs, rejects


@pytest.fixture
def in_workdir(workdir, monkeypatch, tmp_path):
    import datasets

    root, docs, rejects = workdir
    monkeypatch.chdir(root)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return docs, rejects


def _sql(name: str) -> list[dict]:
    import duckdb

    lang, code = recipes()[name]
    assert lang == "sql"
    con = duckdb.connect()
    cur = con.execute(code)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _python(name: str) -> dict:
    lang, code = recipes()[name]
    assert lang == "python"
    namespace: dict = {}
    exec(compile(code, f"docs/dataset.md:{name}", "exec"), namespace)  # noqa: S102 - our docs
    return namespace


def test_every_recipe_is_marked_and_found():
    assert set(recipes()) == EXPECTED


def test_duckdb_recipes(in_workdir):
    docs, rejects = in_workdir
    agencies = _sql("duckdb-agency")
    assert sum(r["documents"] for r in agencies) == len(docs)
    assert sum(r["negative"] for r in agencies) == sum(d["sentiment"] == "negative" for d in docs)
    tass = next(r for r in agencies if r["agency"] == "TASS")
    assert tass["documents"] == sum(d["agency"] == "TASS" for d in docs)
    daily = _sql("duckdb-daily")
    assert sum(r["documents"] for r in daily) == sum(d["published_date"] is not None
                                                     for d in docs)
    assert [r["day"] for r in daily] == sorted({d["published_date"] for d in docs
                                                if d["published_date"]})
    by_reason = {r["reason"]: r["rejects"] for r in _sql("duckdb-rejects")}
    assert by_reason == {reason: sum(r["reason"] == reason for r in rejects)
                         for reason in {r["reason"] for r in rejects}}


def test_duckdb_entities_recipe(in_workdir):
    """Per (day, entity): the documents naming it, their mean score towards it, how many
    were negative for it, as Python computes them from what pyarrow reads."""
    docs, _ = in_workdir
    expected: dict[tuple, list[dict]] = {}
    for doc in docs:
        if doc["published_date"] is None:
            continue
        for entity in doc["entities"] or []:
            expected.setdefault((doc["published_date"], entity["name"]), []).append(entity)
    assert expected, "the sample output names no entity on a dated document"
    rows = _sql("duckdb-entities")
    assert len(rows) == len(expected)
    for row in rows:
        found = expected[(row["day"], row["entity"])]
        assert row["documents"] == len(found)
        assert row["mean_score"] == pytest.approx(sum(e["score"] for e in found) / len(found),
                                                  abs=1e-3)
        assert row["negative"] == sum(e["sentiment"] == "negative" for e in found)
    order = [(r["day"], -r["documents"], r["entity"]) for r in rows]
    assert order == sorted(order)


def test_pandas_recipe(in_workdir):
    docs, _ = in_workdir
    ns = _python("pandas")
    assert len(ns["docs"]) == len(docs)
    assert len(ns["most_negative"]) == min(5, len(docs))
    assert ns["most_negative"]["sentiment_score"].iloc[0] == pytest.approx(
        min(d["sentiment_score"] for d in docs))
    assert ns["per_agency"]["count"].sum() == len(docs)


def test_polars_recipe(in_workdir):
    docs, _ = in_workdir
    per_day = _python("polars")["per_day"]
    assert per_day["documents"].sum() == sum(d["published_date"] is not None for d in docs)
    assert per_day["published_date"].to_list() == sorted({d["published_date"] for d in docs
                                                          if d["published_date"]})


def test_datasets_recipe(in_workdir):
    docs, _ = in_workdir
    ns = _python("datasets")
    assert len(ns["ds"]) == len(docs)
    assert len(ns["negative"]) == sum(d["sentiment"] == "negative" for d in docs)
    assert sorted(ns["ds"]["doc_id"]) == sorted(d["doc_id"] for d in docs)


def test_duckdb_recipes_read_an_output_that_two_versions_wrote(workdir, monkeypatch, tmp_path):
    """An older shard without today's columns beside new ones: recipes read both."""
    import shutil

    import pyarrow.dataset as pads

    from tasks.record import DOCUMENT_SCHEMA

    root, docs, _ = workdir
    shutil.copytree(root / "data", tmp_path / "data")
    newest = pq.read_table(sorted((tmp_path / "data" / "documents").glob("*.parquet"))[0])
    old = newest.slice(0, 1).drop_columns(["duplicate_of", "language", "language_score",
                                          "summary_method", "entities"])
    old = old.set_column(0, "doc_id", [["older-version-row"]])
    pq.write_table(old, tmp_path / "data" / "documents" / "part-20250101T000000Z-000000-00000"
                                                          ".parquet")  # sorts first
    monkeypatch.chdir(tmp_path)
    agencies = _sql("duckdb-agency")
    assert sum(r["documents"] for r in agencies) == len(docs) + 1
    entities = _sql("duckdb-entities")  # the older shard has no entities: it adds no row
    assert sum(r["documents"] for r in entities) == sum(
        len(d["entities"] or []) for d in docs if d["published_date"] is not None)
    table = pads.dataset("data/documents", schema=DOCUMENT_SCHEMA).to_table()
    assert table.num_rows == len(docs) + 1
    languages = dict(zip(table.column("doc_id").to_pylist(),
                         table.column("language").to_pylist(), strict=True))
    assert languages["older-version-row"] is None
    assert sum(v is not None for v in languages.values()) == len(docs)
