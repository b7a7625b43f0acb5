"""Publish a digest output as a Hugging Face dataset: stage, describe, validate, plan, push.

Each step is a plain function (the `publish` flow in `flows.publish` wraps them):

- `stage`: an upload folder mirroring the Hub repo: `data/documents/*.parquet`,
  `data/rejects/*.parquet` (hard links to the output's shards, copies across filesystems)
  and `README.md`. It lives outside the output, so a `data/**/*.parquet` glob over the output
  never sees a staged copy twice.
- `build_card`: the dataset card (YAML `configs` and `dataset_info` derived from the shards'
  Arrow schemas, statistics, models and revisions from the rows' provenance; what a built-in
  sentiment model learned from, its licences and label rule from that model's own metadata),
  its text rendered from the Markdown template tasks/outputs/templates/dataset_card.md.j2.
- `validate_staged`: `datasets.load_dataset` on the staged folder must give back exactly the
  local rows and features before anything leaves the machine.
- `plan_commit` / `push`: one commit with the shards the repo lacks and the refreshed card.
  Shard names are deterministic per run, so "already published" is a file-name check.

The Hub token is read by the Hub client (`HF_TOKEN` or the saved login) and handed only to
it: nothing here prints, logs or writes it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
from jinja2 import Environment

from tasks.io.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from tasks.io.write import DOCUMENTS_DIR, REJECTS_DIR
from tasks.models.registry import HUB_ID
from tasks.models.sentiment import (
    BUILTIN_DIRS,
    REVISION_FILES,
    builtin_metadata,
    entity_head_metadata,
)
from tasks.outputs import templating
from tasks.pipeline import column_docs

SUBSETS = (DOCUMENTS_DIR, REJECTS_DIR)  # Hub configs, named like the output's folders
SHARD_RE = re.compile(r"^part-(?P<run_id>.+)-(?P<n>\d{5})\.parquet$")
CARD = "README.md"
STAGING_MARKER = ".textdigest-staging"
RECORD_DIR = "published"  # inside the output: what was pushed where (no Parquet, never scanned)
HUB_TIMEOUT_S = 5.0

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                   (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                   (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))

DEFAULT_LICENSE = "other"  # why: the Licence section of tasks/outputs/templates/dataset_card.md.j2


class PublishError(RuntimeError):
    """An expected reason not to publish (bad input, a failed check, no Hub): one line."""


class HubUnreachable(PublishError):
    """Offline mode or no route to the Hub: fail at once, never retried."""


@dataclass(frozen=True, slots=True)
class Shard:
    subset: str  # "documents" | "rejects"
    local: Path
    run_id: str

    @property
    def path_in_repo(self) -> str:
        return f"data/{self.subset}/{self.local.name}"


@dataclass(slots=True)
class Staged:
    folder: Path
    shards: list[Shard]
    linked: int = 0
    copied: int = 0
    kept: int = 0
    removed: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        """Every path of the staged folder in the repo: shards, then the card."""
        return [s.path_in_repo for s in self.shards] + [CARD]


# ---------------------------------------------------------------- shards and staging


def local_shards(data_dir: Path) -> list[Shard]:
    """Complete shards of the output, in name order (temporaries are hidden and skipped)."""
    data_dir = Path(data_dir)
    if not (data_dir / DOCUMENTS_DIR).is_dir():
        raise PublishError(f"{data_dir} is not a digest output: no {DOCUMENTS_DIR}/ folder")
    shards = []
    for subset in SUBSETS:
        for path in sorted((data_dir / subset).glob("part-*.parquet")):
            m = SHARD_RE.match(path.name)
            if m is None:
                raise PublishError(f"unexpected shard name {path} (expected part-<run>-<n>)")
            shards.append(Shard(subset, path, m["run_id"]))
    if not any(s.subset == DOCUMENTS_DIR for s in shards):
        raise PublishError(f"nothing to publish: no document shards in {data_dir}")
    return shards


def default_staging_dir(data_dir: Path) -> Path:
    """Beside the output (same filesystem, so shards can be hard-linked), never inside it."""
    data_dir = Path(data_dir).resolve()
    return data_dir.parent / f"{data_dir.name}.hf-staging"


def check_staging_dir(staging: Path, data_dir: Path) -> None:
    """Refuse a staging folder that would double the output's rows or hold others' files."""
    staging, data_dir = Path(staging).resolve(), Path(data_dir).resolve()
    if staging == data_dir or data_dir in staging.parents:
        raise PublishError(f"staging folder {staging} is inside the output {data_dir}: "
                           "readers globbing it would see every row twice")
    if staging in data_dir.parents:
        raise PublishError(f"staging folder {staging} contains the output {data_dir}")
    if staging.exists() and not staging.is_dir():
        raise PublishError(f"staging folder {staging} is a file")
    if (staging.is_dir() and any(staging.iterdir())
            and not (staging / STAGING_MARKER).is_file()):
        raise PublishError(f"staging folder {staging} is not empty and was not made by "
                           "textdigest publish; pick another --staging-dir")


def _same_file(src: Path, dst: Path) -> bool:
    try:
        a, b = src.stat(), dst.stat()
    except FileNotFoundError:
        return False
    same_inode = (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)
    return same_inode or (a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime))


def _link_or_copy(src: Path, dst: Path) -> str:
    """Place `src` at `dst` atomically: a hard link when possible, else a copy."""
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
            how = "linked"
        except OSError:  # another filesystem, or links not allowed
            shutil.copy2(src, tmp)
            how = "copied"
    return how


def stage(data_dir: Path, staging: Path, shards: list[Shard]) -> Staged:
    """Mirror the output's shards under `staging/data/` (the card is written separately).

    Staged files that are no longer in the output are removed, so the folder always equals
    what the repo should hold.
    """
    check_staging_dir(staging, data_dir)
    staging.mkdir(parents=True, exist_ok=True)
    (staging / STAGING_MARKER).touch()
    result = Staged(Path(staging), list(shards))
    wanted = {s.path_in_repo for s in shards}
    for subset in SUBSETS:
        folder = staging / "data" / subset
        if folder.is_dir():
            for old in folder.iterdir():
                if f"data/{subset}/{old.name}" not in wanted:
                    old.unlink()
                    result.removed.append(f"data/{subset}/{old.name}")
    for shard in shards:
        dst = staging / shard.path_in_repo
        dst.parent.mkdir(parents=True, exist_ok=True)
        if _same_file(shard.local, dst):
            result.kept += 1
        elif _link_or_copy(shard.local, dst) == "linked":
            result.linked += 1
        else:
            result.copied += 1
    return result


# ---------------------------------------------------------------- schema and statistics


def subset_schema(shards: list[Shard], subset: str) -> pa.Schema | None:
    """One schema for a subset's shards (older runs may lack newer nullable columns)."""
    schemas = [pq.read_schema(s.local) for s in shards if s.subset == subset]
    if not schemas:
        return None
    try:
        # permissive: a struct that gained a field (provenance.entity_model) still unifies
        return pa.unify_schemas(schemas, promote_options="permissive").remove_metadata()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise PublishError(f"the {subset} shards disagree on column types: {exc}") from None


def features_of(schema: pa.Schema) -> Any:
    from datasets import Features

    return Features.from_arrow_schema(schema)


def _read(shards: list[Shard], subset: str, columns: list[str]) -> pa.Table:
    files = [str(s.local) for s in shards if s.subset == subset]
    schema = subset_schema(shards, subset)
    return pds.dataset(files, format="parquet", schema=schema).to_table(columns=columns)


def _counts(column: pa.ChunkedArray) -> list[tuple[Any, int]]:
    pairs = [(v["values"].as_py(), v["counts"].as_py()) for v in pc.value_counts(column)]
    return sorted(pairs, key=lambda p: (-p[1], str(p[0])))


def _split_bytes(shards: list[Shard], subset: str) -> tuple[int, int, int]:
    """(rows, uncompressed bytes, file bytes) from the Parquet footers, without reading data."""
    rows = raw = disk = 0
    for s in shards:
        if s.subset == subset:
            meta = pq.read_metadata(s.local)
            rows += meta.num_rows
            raw += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            disk += s.local.stat().st_size
    return rows, raw, disk


def dataset_stats(shards: list[Shard], top: int = 10) -> dict[str, Any]:
    """What the card reports: rows, labels, dates, agencies, rejects, and each run's models."""
    columns = ["sentiment", "published_date", "agency", "provenance"]
    has_language = "language" in (subset_schema(shards, DOCUMENTS_DIR) or pa.schema([])).names
    docs = _read(shards, DOCUMENTS_DIR, columns + ["language"] * has_language)
    n = docs.num_rows
    dates = pc.drop_null(docs.column("published_date"))
    prov = pa.table({"p": docs.column("provenance")}).flatten().flatten()
    keys = [c for c in prov.column_names
            if c != "p.processed_at" and not c.startswith("p.cleaner")]
    # every model role the rows' provenance holds (the steps' `model_roles`)
    roles = [f.name for f in docs.schema.field("provenance").type if pa.types.is_struct(f.type)]
    runs = []
    for row in prov.group_by(keys).aggregate([("p.run_id", "count")]).to_pylist():
        models = {m: {k: row.get(f"p.{m}.{k}") for k in ("name", "revision", "params")}
                  for m in roles}
        # a step that was off (no embed step, entities off) or shards older than a role
        models = {m: v for m, v in models.items() if v["name"] is not None}
        runs.append({"run_id": row["p.run_id"], "rows": row["p.run_id_count"],
                     "textdigest_version": row["p.textdigest_version"], "models": models})
    runs.sort(key=lambda r: r["run_id"])
    stats: dict[str, Any] = {
        "documents": n,
        "sentiment": _counts(docs.column("sentiment")),
        "dated": len(dates),
        "date_min": pc.min(dates).as_py() if len(dates) else None,
        "date_max": pc.max(dates).as_py() if len(dates) else None,
        "with_agency": n - docs.column("agency").null_count,
        "agencies": [(a, c) for a, c in _counts(docs.column("agency")) if a is not None][:top],
        "runs": runs,
        "languages": _counts(docs.column("language")) if has_language else [],
        "rejects": 0,
        "reject_reasons": [],
    }
    if any(s.subset == REJECTS_DIR for s in shards):
        rejects = _read(shards, REJECTS_DIR, ["reason"])
        stats["rejects"] = rejects.num_rows
        stats["reject_reasons"] = _counts(rejects.column("reason"))
    return stats


# ---------------------------------------------------------------- the card


def size_category(rows: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if rows < limit:
            return name
    return "n>1B"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def _type_name(t: pa.DataType) -> str:
    """Short type names for the card's column table (the YAML has the full features)."""
    if pa.types.is_struct(t):
        return "struct"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_type_name(t.value_type)}>"
    return {"float": "float32", "double": "float64", "date32[day]": "date32"}.get(str(t),
                                                                                str(t))


def _md(value: Any) -> str:
    """A value for a Markdown table cell: on one line, its pipes not column separators."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _count(value: int) -> str:
    return f"{value:,}"


@functools.cache
def _templates() -> Environment:
    return templating.environment(md=_md, count=_count, pct=_pct)


def _card_yaml(repo_id: str, license: str, shards: list[Shard], schemas: dict[str, pa.Schema],
               rows: int, languages: list[str]) -> Any:
    from huggingface_hub import DatasetCardData

    configs, infos = [], []
    for subset, schema in schemas.items():
        config: dict[str, Any] = {"config_name": subset}
        if subset == DOCUMENTS_DIR:
            config["default"] = True
        config["data_files"] = [{"split": "train", "path": f"data/{subset}/*.parquet"}]
        configs.append(config)
        n, raw, disk = _split_bytes(shards, subset)
        infos.append({"config_name": subset,
                      "features": features_of(schema)._to_yaml_list(),
                      "splits": [{"name": "train", "num_bytes": raw, "num_examples": n}],
                      "download_size": disk, "dataset_size": raw})
    return DatasetCardData(
        language=languages, license=license, pretty_name=pretty_name(repo_id),
        size_categories=[size_category(rows)],
        task_categories=["summarization", "text-classification"],
        task_ids=["news-articles-summarization", "sentiment-classification"],
        tags=["news", "textdigest"], configs=configs, dataset_info=infos)


def pretty_name(repo_id: str) -> str:
    name = repo_id.split("/")[-1]
    return re.sub(r"[-_]+", " ", name).strip().capitalize() or name


def build_card(repo_id: str, shards: list[Shard], *, license: str = DEFAULT_LICENSE,
               branch: str = "main") -> Any:
    """The dataset card (`huggingface_hub.DatasetCard`), deterministic for a given output.

    No timestamps: an unchanged output gives a byte-identical card. The text is
    tasks/outputs/templates/dataset_card.md.j2; the YAML header is `DatasetCardData.to_yaml()`.
    """
    from huggingface_hub import DatasetCard

    schemas = {s: sch for s in SUBSETS if (sch := subset_schema(shards, s)) is not None}
    st = dataset_stats(shards)
    # detected ISO 639-1 codes, most rows first ("und" = undetermined is not a language)
    languages = [c for c, _ in st["languages"] if c and c != "und"] or ["en"]
    data = _card_yaml(repo_id, license, shards, schemas, st["documents"], languages)
    text = _templates().get_template("dataset_card.md.j2").render(
        card_data=data.to_yaml(),
        pretty_name=pretty_name(repo_id),
        license=license,
        default_license=DEFAULT_LICENSE,
        stats=st,
        **_loading_context(repo_id, branch),
        **_layout_context(shards, schemas),
        **_provenance_context(st["runs"]),
    )
    return DatasetCard(text)


def _loading_context(repo_id: str, branch: str) -> dict[str, str]:
    """How the code snippets name the dataset: `rev` argument and DuckDB's `repo@branch`."""
    return {"repo_id": repo_id,
            "rev": "" if branch == "main" else f", revision={branch!r}",
            "at": repo_id if branch == "main" else f"{repo_id}@{branch}"}


def _layout_context(shards: list[Shard], schemas: dict[str, pa.Schema]) -> dict[str, Any]:
    """Configurations (rows, shards, size on disk) and the columns of each."""
    configurations = []
    for subset in schemas:
        rows, _, disk = _split_bytes(shards, subset)
        configurations.append({"subset": subset, "rows": rows, "bytes": disk,
                               "shards": sum(s.subset == subset for s in shards)})
    docs = column_docs()
    return {
        "configurations": configurations,
        "has_rejects": REJECTS_DIR in schemas,
        "document_columns": [(f.name, _type_name(f.type), docs.get(f.name, ""))
                             for f in schemas[DOCUMENTS_DIR]],
        "reject_columns": [f.name for f in schemas[REJECTS_DIR]] if REJECTS_DIR in schemas
        else [],
    }


def _provenance_context(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs, the distinct models they used, and what the card must say about those models."""
    models: dict[tuple[str, str, str | None, str | None], dict[str, Any]] = {}
    for r in runs:
        for role, m in r["models"].items():
            models.setdefault((role, m["name"], m["revision"], m["params"]), m)
    summarizers = {r["models"]["summarizer"]["name"] for r in runs}
    sentiment_models = _sentiment_models(runs)
    return {
        "runs": runs,
        "versions": sorted({r["textdigest_version"] for r in runs}),
        "models": [(role, m) for (role, *_), m in models.items()],
        "extractive_summaries": "extractive" in summarizers,
        "abstractive_summaries": bool(summarizers - {"extractive"}),
        "sentiment_models": sentiment_models,
        "data_licences": list(dict.fromkeys(d["licence"] for s in sentiment_models
                                            for d in s["data"])),
    }


def _sentiment_models(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sentiment model the rows name (the document model, and the entity model of the
    `entities` column), with what is known of it, so the card states facts from their one
    home: the model's metadata, or the rows' provenance.

    kind "builtin" (a built-in whose recorded revision is the installed one): training sets
    with their licences, label rule and neutral band from its config.json. "other-release"
    (a built-in name, other weights), "hub", "local": name and revision; its own model card
    describes its data. A band recorded in the run's params wins: it labelled the rows. An
    entity model named as a built-in sentiment model is the entity head its pass serves
    (`entity_head_metadata`).
    """
    from tasks.models import entity_sentiment

    families = {"sentiment_model": (BUILTIN_DIRS, REVISION_FILES, "sentiment"),
                "entity_model": (entity_sentiment.BUILTIN_DIRS, entity_sentiment.REVISION_FILES,
                                 "entities")}
    found: dict[tuple[str, str, float | None, str], dict[str, Any]] = {}
    metadata: dict[tuple[str, str, str], dict[str, Any] | None] = {}  # digests once each
    for r in runs:
        for role, (dirs, files, column) in families.items():
            m = r["models"].get(role)
            if not m:
                continue  # the entities step was off, or a run older than the column
            name, revision = m["name"], m["revision"] or ""
            served = role == "entity_model" and name in BUILTIN_DIRS  # a pass's entity head
            if (name, revision, role) not in metadata:
                metadata[name, revision, role] = (
                    entity_head_metadata(name, revision) if served
                    else builtin_metadata(name, revision, dirs, files))
            meta = metadata[name, revision, role]
            known = BUILTIN_DIRS if served else dirs
            params = _params(m["params"])
            kind = ("builtin" if meta is not None else "other-release" if name in known
                    else "hub" if HUB_ID.fullmatch(name) else "local")
            # band None: `set_sentiment` takes the arg-max (the head and Hugging Face models)
            band = params.get("neutral_band", (meta or {}).get("neutral_band"))
            data = [{"key": key, "licence": entry["licence"]}
                    for key, entry in (meta or {}).get("data", {}).items()
                    if isinstance(entry, dict) and "licence" in entry]
            found.setdefault((name, revision, band, column), {
                "name": name, "revision": revision, "kind": kind, "band": band, "data": data,
                "column": column, "rule": (meta or {}).get("label_rule"),
                # an older built-in that did not record its band: its rule is not known here
                "rule_known": kind != "other-release" or "neutral_band" in params})
    return list(found.values())


def _params(text: str | None) -> dict[str, Any]:
    try:
        params = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return params if isinstance(params, dict) else {}


def write_card(staging: Path, card: Any) -> Path:
    path = Path(staging) / CARD
    atomic_write_bytes(path, str(card).encode("utf-8"))
    return path


# ---------------------------------------------------------------- validation


def _identity(subset: str, table: pa.Table) -> Counter:
    if subset == DOCUMENTS_DIR:
        return Counter(table.column("doc_id").to_pylist())
    cols = [table.column(c).to_pylist() for c in ("run_id", "source", "doc_id")]
    return Counter(zip(*cols, strict=True))


def _feature_diff(local: Any, loaded: Any) -> list[str]:
    diffs = []
    for name in dict.fromkeys([*local, *loaded]):
        if name not in loaded:
            diffs.append(f"column {name!r} missing after loading")
        elif name not in local:
            diffs.append(f"column {name!r} appears only after loading")
        elif local[name] != loaded[name]:
            diffs.append(f"column {name!r}: local {local[name]} != loaded {loaded[name]}")
    if not diffs and list(local) != list(loaded):
        diffs.append(f"column order differs: {list(local)} != {list(loaded)}")
    return diffs


def _examples(counter: Counter, limit: int = 3) -> str:
    return ", ".join(repr(k) for k in list(counter)[:limit])


def _load_failure(subset: str, exc: Exception, local_rows: int) -> str:
    counts = re.findall(r"num_examples=(\d+)", str(exc))  # "expected" first, then "recorded"
    if type(exc).__name__ == "NonMatchingSplitsSizesError" and len(counts) == 2:
        return (f"staged {subset} differ from the output: the card declares {counts[0]} rows, "
                f"load_dataset read {counts[1]}, the output has {local_rows}")
    return f"load_dataset could not read the staged {subset}: {type(exc).__name__}: {exc}"


def validate_staged(staging: Path, shards: list[Shard]) -> dict[str, dict[str, int]]:
    """Load the staged folder as the Hub will (`load_dataset`, card configs and features
    included) and compare rows and features with the local shards; raise with the difference.
    """
    from datasets import load_dataset
    from datasets.utils.logging import (
        disable_progress_bar,
        enable_progress_bar,
        is_progress_bar_enabled,
    )

    checked: dict[str, dict[str, int]] = {}
    bars = is_progress_bar_enabled()
    disable_progress_bar()
    try:
        with tempfile.TemporaryDirectory(prefix="textdigest-validate-") as cache:
            for subset in SUBSETS:
                schema = subset_schema(shards, subset)
                if schema is None:
                    continue
                keys = ["doc_id"] if subset == DOCUMENTS_DIR else ["run_id", "source", "doc_id"]
                local = _read(shards, subset, keys)  # identities only: the text stays on disk
                try:
                    loaded = load_dataset(str(staging), subset, split="train", cache_dir=cache)
                except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
                    raise PublishError(_load_failure(subset, exc, local.num_rows)) from None
                problems = _feature_diff(features_of(schema), loaded.features)
                if loaded.num_rows != local.num_rows:
                    problems.append(f"{loaded.num_rows} rows loaded, {local.num_rows} local")
                want = _identity(subset, local)
                got = _identity(subset, loaded.data.table)
                if want != got:
                    problems.append(f"missing after loading: {_examples(want - got)}; "
                                    f"extra: {_examples(got - want)}")
                if problems:
                    raise PublishError(f"staged {subset} differ from the output: "
                                       + "; ".join(problems))
                checked[subset] = {"rows": loaded.num_rows, "columns": len(loaded.features)}
    finally:
        if bars:
            enable_progress_bar()
    return checked


# ---------------------------------------------------------------- record of what was pushed


def record_path(data_dir: Path, repo_id: str, branch: str) -> Path:
    name = f"{repo_id}@{branch}".replace("/", "--")  # branches may hold slashes too
    return Path(data_dir) / RECORD_DIR / f"{name}.json"


def read_record(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"files": []}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PublishError(f"cannot read the publish record {path}: {exc}") from None


def write_record(path: Path, repo_id: str, branch: str, files: list[str],
                 commit: dict[str, Any]) -> None:
    old = read_record(path)
    history = list(old.get("commits", []))
    # An unchanged output makes no new commit (the Hub returns the head's oid): the history
    # gains an entry only when the repo moved.
    if not history or history[-1].get("oid") != commit.get("oid"):
        history.append(commit)
    atomic_write_json(path, {"repo_id": repo_id, "branch": branch,
                             "files": sorted(set(old["files"]) | set(files)),
                             "commits": history})


# ---------------------------------------------------------------- plan and push


@dataclass(frozen=True, slots=True)
class CommitPlan:
    """The shards the repo lacks (plus the card, always refreshed), and the message."""

    new_shards: tuple[str, ...]
    run_ids: tuple[str, ...]
    already: int
    message: str

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.new_shards, CARD)


def plan_commit(staged: Staged, published: set[str] | list[str]) -> CommitPlan:
    published = set(published)
    new = [s for s in staged.shards if s.path_in_repo not in published]
    run_ids = tuple(dict.fromkeys(sorted(s.run_id for s in new)))
    if run_ids:
        message = f"textdigest: add run{'s' if len(run_ids) > 1 else ''} {', '.join(run_ids)}"
    else:
        latest = max((s.run_id for s in staged.shards), default="none")
        message = f"textdigest: refresh the dataset card (no new shards; latest run {latest})"
    return CommitPlan(tuple(s.path_in_repo for s in new), run_ids,
                      len(staged.shards) - len(new), message)


def commit_operations(staging: Path, plan: CommitPlan) -> list[Any]:
    from huggingface_hub import CommitOperationAdd

    return [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(Path(staging) / p))
            for p in plan.files]


class HubApi(Protocol):
    """The part of `huggingface_hub.HfApi` that publishing uses."""

    def create_repo(self, repo_id: str, *, private: bool | None = None,
                    repo_type: str | None = None, exist_ok: bool = False) -> Any: ...

    def create_branch(self, repo_id: str, *, branch: str, repo_type: str | None = None,
                      exist_ok: bool = False) -> Any: ...

    def list_repo_files(self, repo_id: str, *, revision: str | None = None,
                        repo_type: str | None = None) -> list[str]: ...

    def create_commit(self, repo_id: str, operations: Any, *, commit_message: str,
                      repo_type: str | None = None, revision: str | None = None) -> Any: ...


def hub_token() -> str:
    """The Hub token from `HF_TOKEN` or the saved login; never shown to anyone."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return token


def check_hub_reachable(timeout: float = HUB_TIMEOUT_S) -> None:
    """Fail at once, before any upload, when the Hub cannot be reached."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise HubUnreachable("HF_HUB_OFFLINE is set: cannot push to the Hugging Face Hub "
                             "(unset it, or use --dry-run); nothing was uploaded")
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise HubUnreachable(f"cannot reach {constants.ENDPOINT} ({exc}); nothing was "
                             "uploaded") from None


def preflight(check_network: bool = True) -> None:
    """What a real push needs, checked before any work: the Hub in reach, then a token."""
    if check_network:
        check_hub_reachable()
    hub_token()


def push(api: HubApi, repo_id: str, staging: Path, staged: Staged, *, branch: str = "main",
         private: bool = False) -> dict[str, Any]:
    """Create the repo (and branch) if needed, then one commit: new shards and the card."""
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if branch != "main":
        api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    remote = set(api.list_repo_files(repo_id, repo_type="dataset", revision=branch))
    plan = plan_commit(staged, remote)
    ours = {s.path_in_repo for s in staged.shards}
    foreign = sorted(p for p in remote if p.startswith("data/") and p not in ours)
    info = api.create_commit(repo_id, commit_operations(staging, plan),
                             commit_message=plan.message, repo_type="dataset",
                             revision=branch)
    return {"uploaded": list(plan.files), "run_ids": list(plan.run_ids),
            "already": plan.already, "message": plan.message,
            "commit_url": getattr(info, "commit_url", None), "oid": getattr(info, "oid", None),
            "remote_only": foreign}


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: dropped connections, timeouts, 429 and 5xx answers. Not auth, not 4xx."""
    if isinstance(exc, HubUnreachable):
        return False
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return status == 429 or status >= 500
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"TransportError", "TimeoutException", "TimeoutError"})
