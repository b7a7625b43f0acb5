"""Check an output folder file by file, and set damaged files aside so a run can redo them.

A shard cut short by a bad copy, a full disk elsewhere or bit rot makes every later reader
fail deep inside Arrow. `verify_output` names each problem instead: the file, what is wrong,
which run wrote it and how many documents it held (from that run's manifest).
`repair_output` moves damaged files to `OUTPUT/quarantine/`, with a note beside each and a
line in `quarantine/repairs.jsonl` (the output's repair history): their documents are then
no longer in the output, so the next run digests them again, once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.io.atomic import atomic_write_json
from tasks.io.near_duplicates import INDEX_DIR
from tasks.io.write import DOCUMENTS_DIR, REJECTS_DIR, RUNS_DIR
from tasks.record import DOCUMENT_SCHEMA, REJECT_SCHEMA

QUARANTINE_DIR = "quarantine"
REPAIRS = "repairs.jsonl"
RUN_OF_FILE = re.compile(r"^(?:part|minhash)-(.+?)(?:-\d{5})?\.parquet$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One damaged or inconsistent file of an output."""

    path: str  # relative to the output folder
    what: str
    run_id: str | None
    rows: int | None  # documents (or rejects) it held, from its run's manifest
    repairable: bool = True  # set aside by --repair (a missing file is only reported)

    def line(self) -> str:
        held = f", {self.rows} row(s)" if self.rows is not None else ""
        run = f"run {self.run_id}" if self.run_id else "run unknown"
        return f"{self.path}: {self.what} ({run}{held})"


def _run_of(path: Path) -> str | None:
    m = RUN_OF_FILE.match(path.name)
    return m.group(1) if m else None


def _manifests(output: Path) -> tuple[dict[str, dict], list[Problem]]:
    """Readable manifests by run id, and a problem for each unreadable one."""
    manifests, problems = {}, []
    for path in sorted((output / RUNS_DIR).glob("*.json")):
        if path.name.startswith("."):
            continue
        rel = path.relative_to(output).as_posix()
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or "run_id" not in manifest:
                raise ValueError("not a run manifest")
        except (OSError, ValueError) as exc:
            problems.append(Problem(rel, f"unreadable manifest ({_short(exc)})",
                                    path.stem, None))
            continue
        manifests[manifest["run_id"]] = manifest
    return manifests, problems


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def _listed_rows(manifests: dict[str, dict]) -> dict[str, int]:
    """Rows of every shard a manifest lists, by its path."""
    out = {}
    for manifest in manifests.values():
        for shards in (manifest.get("outputs") or {}).values():
            for shard in shards:
                out[shard["path"]] = int(shard["rows"])
    return out


def _check_parquet(path: Path, schema: pa.Schema | None) -> tuple[str | None, int | None]:
    """What is wrong with one Parquet file (or None), and its row count when readable."""
    try:
        meta = pq.read_metadata(path)
        file_schema = meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        return f"not a complete Parquet file ({_short(exc)})", None
    if schema is not None:
        wrong = [f.name for f in file_schema if f.name in schema.names
                 and not f.type.equals(schema.field(f.name).type)]
        no_id = schema is DOCUMENT_SCHEMA and "doc_id" not in file_schema.names
        if wrong or no_id:
            return f"schema differs from textdigest's ({', '.join(wrong) or 'no doc_id'})", None
    return None, meta.num_rows


def verify_output(output: Path) -> list[Problem]:
    """Every problem of the output: damaged shards, index files and manifests, and shards
    that a manifest lists but that are missing or hold another number of rows."""
    output = Path(output)
    manifests, problems = _manifests(output)
    listed = _listed_rows(manifests)
    for sub, schema in ((DOCUMENTS_DIR, DOCUMENT_SCHEMA), (REJECTS_DIR, REJECT_SCHEMA),
                        (INDEX_DIR, None)):
        for path in sorted((output / sub).glob("*.parquet")):
            if path.name.startswith("."):
                continue  # a temporary: never visible as data
            rel = path.relative_to(output).as_posix()
            what, rows = _check_parquet(path, schema)
            if what is None and rel in listed and rows != listed[rel]:
                what = f"holds {rows} rows, its manifest says {listed[rel]}"
            if what:
                problems.append(Problem(rel, what, _run_of(path), listed.get(rel)))
    set_aside = _set_aside(output)
    for rel, rows in sorted(listed.items()):
        if not (output / rel).is_file() and rel not in set_aside:
            run = _run_of(Path(rel))
            problems.append(Problem(rel, "listed by its run's manifest but missing", run, rows,
                                    repairable=False))
    return problems


def _set_aside(output: Path) -> set[str]:
    """Paths that `repair_output` moved to quarantine (not missing: set aside, on record)."""
    path = output / QUARANTINE_DIR / REPAIRS
    if not path.is_file():
        return set()
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.add(json.loads(line)["path"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: the file it names was moved or not
    return out


class DamagedOutput(RuntimeError):
    """The output holds a damaged file: no run or publish starts on it (one line)."""

    def __init__(self, output: Path, problem: Problem):
        self.problem = problem
        super().__init__(f"output {output} is damaged: {problem.line()}; run `textdigest "
                         f"verify {output} --repair` to set it aside, then run again")


def check_undamaged(output: Path) -> None:
    """Raise `DamagedOutput` naming the first damaged file, if any."""
    problem = first_damage(output)
    if problem is not None:
        raise DamagedOutput(Path(output), problem)


def first_damage(output: Path) -> Problem | None:
    """The first damaged file (what a run must not start on), or None. Missing shards are
    not damage a run trips on: their documents are simply digested again."""
    return next((p for p in verify_output(output) if p.repairable), None)


def repair_output(output: Path, problems: list[Problem]) -> list[Problem]:
    """Move each repairable problem's file to `OUTPUT/quarantine/` (same sub-folder), with a
    note beside it and a line in `quarantine/repairs.jsonl`; the problems moved."""
    output = Path(output)
    moved = []
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for problem in problems:
        source = output / problem.path
        if not problem.repairable or not source.is_file():
            continue
        target = output / QUARANTINE_DIR / problem.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # the same name set aside before: keep both
            target = target.with_name(f"{target.stem}.{at.replace(':', '')}{target.suffix}")
        os.replace(source, target)
        record = {**asdict(problem), "moved_to": target.relative_to(output).as_posix(),
                  "repaired_at": at}
        atomic_write_json(target.with_name(target.name + ".note.json"), record)
        with (output / QUARANTINE_DIR / REPAIRS).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        moved.append(problem)
    return moved
