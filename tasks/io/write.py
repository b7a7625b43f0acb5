"""Write the dataset: Parquet shards of documents and rejects, and the run manifest.

Layout under the output folder:

    documents/part-<run_id>-<n>.parquet   one row per document (schema: tasks.record)
    rejects/part-<run_id>-<n>.parquet     one row per input that could not be processed
    runs/<run_id>.json                    the run manifest, written last

Every file is written under a hidden temporary name in its final folder, fsynced, then
renamed, so a reader (or a crashed run) never leaves or sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tasks.io.atomic import atomic_write_json, publish_temporary
from tasks.record import DOCUMENT_SCHEMA, REJECT_SCHEMA

DOCUMENTS_DIR = "documents"
REJECTS_DIR = "rejects"
RUNS_DIR = "runs"
COMPRESSION = "zstd"


@dataclass(frozen=True, slots=True)
class ShardInfo:
    path: str  # relative to the output folder
    rows: int
    bytes: int


class ShardWriter:
    """Appends tables to Parquet shards of at most `max_rows` rows, each renamed when complete."""

    def __init__(self, folder: Path, schema: pa.Schema, run_id: str, max_rows: int,
                 row_group_rows: int = 2048):
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.folder = folder
        self.schema = schema
        self.run_id = run_id
        self.max_rows = max_rows
        self.row_group_rows = row_group_rows
        self.shards: list[ShardInfo] = []
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._final: Path | None = None
        self._rows = 0

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        n = len(self.shards)
        self._final = self.folder / f"part-{self.run_id}-{n:05d}.parquet"
        self._tmp = self.folder / f".{self._final.name}.tmp"
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=COMPRESSION)
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._open()
            take = min(self.max_rows - self._rows, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take), row_group_size=self.row_group_rows)
            self._rows += take
            offset += take
            if self._rows >= self.max_rows:
                self._seal()

    def _seal(self) -> None:
        assert self._writer is not None and self._tmp is not None and self._final is not None
        self._writer.close()
        publish_temporary(self._tmp, self._final)
        self.shards.append(ShardInfo(self._final.relative_to(self.folder.parent).as_posix(),
                                     self._rows, self._final.stat().st_size))
        self._writer = self._tmp = self._final = None
        self._rows = 0

    def close(self) -> list[ShardInfo]:
        """Seal the open shard (if it has rows) and return every shard written."""
        if self._writer is not None:
            if self._rows:
                self._seal()
            else:
                self.abort()
        return list(self.shards)

    def abort(self) -> None:
        """Drop the open shard: it never becomes visible under its final name."""
        if self._writer is not None:
            self._writer.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._writer = self._tmp = self._final = None


class DatasetWriter:
    """Documents and rejects of one run, written as shards under one output folder."""

    def __init__(self, output: Path, run_id: str, shard_rows: int = 10_000,
                 schema: pa.Schema = DOCUMENT_SCHEMA):
        self.output = Path(output)
        self.run_id = run_id
        # the steps' schema (`tasks.pipeline.document_schema`): the record's columns and theirs
        self.documents = ShardWriter(self.output / DOCUMENTS_DIR, schema, run_id, shard_rows)
        self.rejects = ShardWriter(self.output / REJECTS_DIR, REJECT_SCHEMA, run_id, shard_rows)

    def close(self) -> dict[str, list[ShardInfo]]:
        return {"documents": self.documents.close(), "rejects": self.rejects.close()}

    def abort(self) -> None:
        self.documents.abort()
        self.rejects.abort()

    def write_manifest(self, manifest: dict[str, Any]) -> Path:
        path = self.output / RUNS_DIR / f"{self.run_id}.json"
        atomic_write_json(path, manifest)
        return path


def existing_doc_ids(output: Path) -> set[str]:
    """Document ids already written by earlier runs: a repeated run skips them."""
    files = sorted((Path(output) / DOCUMENTS_DIR).glob("*.parquet"))
    if not files:
        return set()
    table = ds.dataset([str(f) for f in files], format="parquet").to_table(columns=["doc_id"])
    return set(table.column("doc_id").to_pylist())


def existing_reject_keys(output: Path) -> set[tuple[str, str | None]]:
    """(source, doc_id) of earlier rejects: a repeated run does not reject them twice.

    The doc_id is part of the key so that a file fixed in place is read again.
    """
    files = sorted((Path(output) / REJECTS_DIR).glob("*.parquet"))
    if not files:
        return set()
    table = ds.dataset([str(f) for f in files], format="parquet").to_table(
        columns=["source", "doc_id"])
    return set(zip(table.column("source").to_pylist(), table.column("doc_id").to_pylist(),
                   strict=True))


def remove_stale_temporaries(output: Path) -> list[Path]:
    """Delete temporary files a killed run left behind; they were never visible as data."""
    removed = []
    for sub in (DOCUMENTS_DIR, REJECTS_DIR, RUNS_DIR):
        folder = Path(output) / sub
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def unwritable_reason(output: Path) -> str | None:
    """Why files cannot be created in `output`, or None. Checked before a run, so that a bad
    output folder fails at once rather than after the documents are processed; nothing is
    created (a hidden probe file in the nearest existing folder is removed at once)."""
    folder = Path(output).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder.name} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None
