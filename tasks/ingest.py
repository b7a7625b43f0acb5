"""Read raw documents from files and folders, streaming, in bounded batches.

Formats: `.txt` (one document a file), `.jsonl` (one JSON object a line), `.csv`/`.tsv`
(one row a document, with a header), `.parquet`. Every input item comes out either as a
`Document` or as a `Reject` with its reason, so a run can account for all of them.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks.record import Document, Reject, excerpt

TEXT_SUFFIXES = frozenset({".txt", ".text"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
CSV_SUFFIXES = frozenset({".csv", ".tsv"})
PARQUET_SUFFIXES = frozenset({".parquet"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | JSONL_SUFFIXES | CSV_SUFFIXES | PARQUET_SUFFIXES

Item = Document | Reject

csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """Which fields hold the text, id and title in structured inputs, and size limits."""

    text_field: str = "text"  # JSONL
    text_column: str = "text"  # CSV, TSV, Parquet
    id_field: str = "id"
    title_field: str = "title"
    max_doc_bytes: int = 5_000_000  # a larger .txt file or record is rejected as too large


# Single-byte Latin code pages that detectors confuse on short texts; for English news the
# Windows-1252 reading is by far the most likely one when it decodes at all.
_LATIN_SINGLE_BYTE = frozenset({"cp1250", "cp1252", "latin_1", "iso8859_15", "iso8859_2",
                                "cp1257", "mac_roman", "iso8859_9", "cp1254"})
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class UndecodableError(ValueError):
    """Bytes that are not text in any encoding we can tell (binary files)."""


def decode_text(raw: bytes) -> tuple[str, str]:
    """Text and the encoding used: UTF-8 (BOM or not), UTF-16 with a BOM, else detected.

    Raises UndecodableError for binary content (NUL bytes, or no plausible encoding).
    """
    if raw.startswith(_UTF16_BOMS):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise UndecodableError(f"bad UTF-16: {exc}") from exc
    if b"\x00" in raw[:8192]:  # before UTF-8: NUL and other controls are valid UTF-8
        raise UndecodableError("NUL bytes: binary content")
    head = raw[:8192]
    if sum(b < 32 and b not in b"\t\n\r\f\x1b" for b in head) > 0.05 * len(head):
        raise UndecodableError("control bytes: binary content")
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        raise UndecodableError("no text encoding fits: binary content")
    encoding = best.encoding
    if encoding in _LATIN_SINGLE_BYTE:
        try:
            return raw.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass
    return str(best), encoding


def text_hash(text: str) -> str:
    """Stable id for a document without one: the hash of its NFC, whitespace-folded text."""
    norm = " ".join(unicodedata.normalize("NFC", text).split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


def discover(input_path: Path) -> tuple[Path, list[Path]]:
    """The root that sources are relative to, and the files under it in a stable order.

    Hidden files and folders (dot names) are skipped: they are tool state, not input.
    Symbolic links and special files (FIFOs, sockets) are listed, not followed or opened, so
    that `read_file` can account for them.
    """
    input_path = Path(input_path)
    if not input_path.exists():
        raise FileNotFoundError(f"input path does not exist: {input_path}")
    if input_path.is_file():
        return input_path.parent, [input_path]
    files: list[Path] = []

    def unlistable(exc: OSError) -> None:  # listed, so `read_file` rejects it with a reason
        if exc.filename is not None:
            files.append(Path(exc.filename))

    for dirpath, dirnames, filenames in os.walk(input_path, onerror=unlistable):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in [d for d in dirnames if (here / d).is_symlink()]:
            dirnames.remove(name)  # never followed
            files.append(here / name)
        files.extend(here / f for f in filenames if not f.startswith("."))
    return input_path, sorted(files, key=lambda p: p.relative_to(input_path).as_posix())


def _doc(
    text: Any, source: str, record: dict[str, Any], opts: IngestOptions, text_key: str
) -> Item:
    """A Document from one structured record, or a Reject saying what is wrong with it."""
    if text is None:
        return Reject(source, "missing_text_field", f"no {text_key!r} field in the record")
    if not isinstance(text, str):
        return Reject(
            source, "text_not_string", f"{text_key!r} is {type(text).__name__}", excerpt(str(text))
        )
    if not text.strip():
        return Reject(source, "empty_text", "the text is empty or whitespace only")
    raw_id = record.get(opts.id_field)
    # a blank id ("" or spaces in a CSV cell) is no id: the text's hash is, never ""
    doc_id = (str(raw_id).strip() if raw_id is not None else "") or text_hash(text)
    title = record.get(opts.title_field)
    meta = {
        k: v
        for k, v in record.items()
        if k not in (text_key, opts.id_field, opts.title_field) and v is not None
    }
    return Document(
        doc_id=doc_id,
        source=source,
        raw_text=text,
        title=str(title) if title not in (None, "") else None,
        meta=meta,
    )


# A busy or briefly unavailable file system is worth another try; bad data never is.
TRANSIENT_ERRNOS = frozenset({errno.EBUSY, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT})
READ_ATTEMPTS = 3
RETRY_DELAY_S = 0.2


def retry_transient(fn: Any, *args: Any, attempts: int = READ_ATTEMPTS) -> Any:
    """`fn(*args)`, retried with a growing pause while it raises a transient OSError."""
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args)
        except OSError as exc:
            if exc.errno not in TRANSIENT_ERRNOS or attempt == attempts:
                raise
            time.sleep(RETRY_DELAY_S * attempt)
    raise AssertionError("unreachable")


def os_reason(exc: BaseException) -> str:
    """An OS error without the absolute path it quotes (rows name files relative to the
    input root)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _read_text_file(path: Path, rel: str, opts: IngestOptions) -> Iterator[Item]:
    try:
        size = path.stat().st_size
        if size > opts.max_doc_bytes:
            yield Reject(rel, "too_large", f"{size} bytes > limit {opts.max_doc_bytes}")
            return
        raw = retry_transient(path.read_bytes)
    except OSError as exc:
        yield Reject(rel, "unreadable_file", os_reason(exc))
        return
    try:
        text, encoding = decode_text(raw)
    except UndecodableError as exc:
        yield Reject(rel, "binary_file", str(exc))
        return
    if not text.strip():
        yield Reject(rel, "empty_text", "the file is empty or whitespace only")
        return
    meta = {} if encoding == "utf-8" else {"encoding": encoding}
    yield Document(doc_id=text_hash(text), source=rel, raw_text=text, meta=meta)


def _read_jsonl(path: Path, rel: str, opts: IngestOptions) -> Iterator[Item]:
    try:
        fh = retry_transient(path.open, "rb")
    except OSError as exc:
        yield Reject(rel, "unreadable_file", os_reason(exc))
        return
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            source = f"{rel}:{lineno}"
            if len(raw) > opts.max_doc_bytes:
                yield Reject(source, "too_large", f"{len(raw)} bytes > limit {opts.max_doc_bytes}")
                continue
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield Reject(source, "not_utf8", f"JSON Lines must be UTF-8: {exc}",
                             excerpt(raw.decode("latin-1")))
                continue
            if not line.strip():
                continue  # blank lines separate nothing in JSONL: not a record
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Reject(source, "malformed_json", str(exc), excerpt(line))
                continue
            if not isinstance(record, dict):
                yield Reject(
                    source, "not_an_object", f"a JSON {type(record).__name__}", excerpt(line)
                )
                continue
            yield _doc(record.get(opts.text_field), source, record, opts, opts.text_field)


def _read_csv(path: Path, rel: str, opts: IngestOptions) -> Iterator[Item]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        # surrogateescape: an undecodable byte costs its row (a not_utf8 reject), not the
        # rest of the file
        fh = retry_transient(lambda: path.open(encoding="utf-8-sig", errors="surrogateescape",
                                               newline=""))
    except OSError as exc:
        yield Reject(rel, "unreadable_file", os_reason(exc))
        return
    with fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            header = reader.fieldnames or []
        except (UnicodeDecodeError, csv.Error) as exc:
            yield Reject(rel, "unreadable_file", str(exc))
            return
        if opts.text_column not in header:
            yield Reject(
                rel,
                "missing_text_column",
                f"no column {opts.text_column!r} (columns: {', '.join(header)}); "
                "choose one with --text-column",
            )
            return
        if any(_undecodable(name) for name in header):
            yield Reject(rel, "not_utf8", "the header row is not UTF-8; CSV/TSV must be UTF-8")
            return
        rowno = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # the reader resumes at the next line
                rowno += 1
                yield Reject(f"{rel}:{rowno}", "malformed_row", str(exc))
                continue
            rowno += 1
            source = f"{rel}:{rowno}"
            bad = [k for k, v in row.items() if isinstance(v, str) and _undecodable(v)]
            if bad:
                yield Reject(source, "not_utf8",
                             f"CSV/TSV must be UTF-8; undecodable bytes in {', '.join(bad)}")
                continue
            yield _doc(row.get(opts.text_column), source, row, opts, opts.text_column)


def _undecodable(value: str) -> bool:
    """Whether a surrogateescape-decoded string holds bytes that were not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _read_parquet(path: Path, rel: str, opts: IngestOptions, batch_rows: int) -> Iterator[Item]:
    try:
        pf = retry_transient(pq.ParquetFile, path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        yield Reject(rel, "unreadable_file", os_reason(exc).replace(str(path), rel))
        return
    names = pf.schema_arrow.names
    if opts.text_column not in names:
        yield Reject(
            rel,
            "missing_text_column",
            f"no column {opts.text_column!r} (columns: {', '.join(names)}); "
            "choose one with --text-column",
        )
        return
    rowno = 0
    total = pf.metadata.num_rows
    batches = pf.iter_batches(batch_size=batch_rows)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - a corrupt page: pyarrow raises several types
            # The reader cannot resume past a corrupt page: the rows left are one reject that
            # says how many they are, so the loss is counted, never silent.
            yield Reject(f"{rel}:{rowno + 1}", "unreadable_rows",
                         f"rows {rowno + 1}-{total} of {total} unreadable: "
                         f"{os_reason(exc).replace(str(path), rel)}")
            return
        for record in batch.to_pylist():
            rowno += 1
            yield _doc(record.get(opts.text_column), f"{rel}:{rowno}", record, opts,
                       opts.text_column)


def read_file(
    path: Path, root: Path, opts: IngestOptions, batch_rows: int = 1024
) -> Iterator[Item]:
    """Every item of one file, in file order."""
    rel = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root.resolve()):
            # the target's path is not written: rows name files relative to the input root
            yield Reject(rel, "symlink_outside_input", "a link to a file outside the input")
            return
        if target.is_dir():
            yield Reject(rel, "symlinked_folder", "links to folders are not followed")
            return
        if not target.exists():
            yield Reject(rel, "unreadable_file",
                         f"broken link to {target.relative_to(root.resolve()).as_posix()}")
            return
    if path.is_dir():  # only a folder that could not be listed reaches here
        yield Reject(rel, "unreadable_folder", "a folder that cannot be listed (permissions?)")
        return
    if not path.is_file():  # a FIFO or socket would block or fail the read: never opened
        yield Reject(rel, "not_a_regular_file", "a pipe, socket or device, not a file")
        return
    if suffix in TEXT_SUFFIXES:
        yield from _read_text_file(path, rel, opts)
    elif suffix in JSONL_SUFFIXES:
        yield from _read_jsonl(path, rel, opts)
    elif suffix in CSV_SUFFIXES:
        yield from _read_csv(path, rel, opts)
    elif suffix in PARQUET_SUFFIXES:
        yield from _read_parquet(path, rel, opts, batch_rows)
    else:
        yield Reject(
            rel,
            "unsupported_format",
            f"{suffix or 'no extension'}: supported are {', '.join(sorted(SUPPORTED_SUFFIXES))}",
        )


def iter_items(input_path: Path, opts: IngestOptions | None = None) -> Iterator[Item]:
    """All items under `input_path`, streaming file by file."""
    opts = opts or IngestOptions()
    root, files = discover(Path(input_path))
    for path in files:
        yield from read_file(path, root, opts)


def batched(items: Iterable[Item], size: int, limit: int | None = None,
            max_chars: int | None = None) -> Iterator[list[Item]]:
    """Group items into lists of at most `size`, closing a list early once its documents hold
    `max_chars` characters of raw text; stop after `limit` items when given.

    The character budget keeps each batch task to about the same work whatever the document
    length: hundreds of headlines, or a few dozen articles.
    """
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list[Item] = []
    chars = 0
    for n, item in enumerate(items, start=1):
        batch.append(item)
        chars += len(getattr(item, "raw_text", "") or "")
        if len(batch) >= size or (max_chars is not None and chars >= max_chars):
            yield batch
            batch, chars = [], 0
        if limit is not None and n >= limit:
            break
    if batch:
        yield batch


def count_items(input_path: Path, opts: IngestOptions | None = None) -> int:
    """A cheap estimate of how many items `iter_items` yields, for the progress bar."""
    opts = opts or IngestOptions()
    root, files = discover(Path(input_path))
    total = 0
    for path in files:
        suffix = path.suffix.lower()
        if path.is_symlink() or not path.is_file():  # never follow or open these here
            total += 1
            continue
        try:
            if suffix in JSONL_SUFFIXES:
                with path.open("rb") as fh:
                    total += sum(1 for line in fh if line.strip())
            elif suffix in CSV_SUFFIXES:
                with path.open("rb") as fh:
                    total += max(sum(1 for line in fh if line.strip()) - 1, 1)
            elif suffix in PARQUET_SUFFIXES:
                total += pq.ParquetFile(path).metadata.num_rows
            else:
                total += 1
        except Exception:  # noqa: BLE001 - a file that cannot be counted is read (and rejected) later
            total += 1
    return total
