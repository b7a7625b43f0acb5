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
import re
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow.parquet as pq

from tasks.io.title_line import split_title_line
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
    title_line: bool = True  # .txt: a first line that reads as a headline is the title
    max_doc_bytes: int = 5_000_000  # a larger .txt file or record is rejected as too large


# Single-byte Latin code pages that detectors confuse on short texts; for English news the
# Windows-1252 reading is by far the most likely one when it decodes at all.
_LATIN_SINGLE_BYTE = frozenset({"cp1250", "cp1252", "latin_1", "iso8859_15", "iso8859_2",
                                "cp1257", "mac_roman", "iso8859_9", "cp1254"})
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")  # before UTF-16: FF FE starts both
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_HIGH_BYTES = bytes(range(0x80, 0x100))
_HIGH_RUN = re.compile(rb"[\x80-\xff]{3}")
_SNIFF_BYTES = 65536  # how much of a file the byte-pattern tests look at


class UndecodableError(ValueError):
    """Bytes that are not text in any encoding we can tell (binary files)."""


class DecodedText(NamedTuple):
    text: str
    encoding: str  # a Python codec name; "utf-8" also for UTF-8 with a BOM
    confidence: float  # 0..1: 1.0 for UTF-8 and BOMs, else how clean the chosen reading is


def _utf16_without_bom(raw: bytes) -> DecodedText | None:
    """UTF-16 text without a BOM, when the bytes clearly say so: at least 40% of the bytes
    at one parity are NUL (the high byte of Latin characters), almost none at the other,
    and the whole decodes cleanly to at least 95% printable characters."""
    head = raw[:_SNIFF_BYTES]
    if len(raw) % 2 or len(head) < 4:
        return None
    half = len(head) // 2
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if odd >= 0.4 * half and even <= 0.1 * odd:
        codec = "utf-16-le"
    elif even >= 0.4 * half and odd <= 0.1 * even:
        codec = "utf-16-be"
    else:
        return None
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        return None
    sample = text[: _SNIFF_BYTES // 2]
    printable = sum(c.isprintable() or c in "\t\n\r\f" for c in sample) / len(sample)
    if printable < 0.95 or not any(c.isalpha() for c in sample):
        return None
    return DecodedText(text, codec, round(printable, 2))


def _looks_western(raw: bytes) -> bool:
    """Whether the non-ASCII bytes sit the way Western single-byte text has them.

    In cp1252 text a high byte is an accented letter, a currency sign or typographic
    punctuation inside a mostly-ASCII word ("caf\xe9", "\xa315.8m", "\x93record\x94") or a
    one-byte word (the dash in "striker \x96 a", French "\xe0"). Multi-byte CJK encodings
    (Shift-JIS, EUC-JP, GBK/GB18030, Big5, EUC-KR) and Cyrillic, Greek or Hebrew code pages
    put them in runs: words, or whole space-less sentences, made mostly of high bytes that
    cp1252 reads as accented letters. So: Western when under half of the high bytes lie in
    "foreign" words (split on ASCII whitespace), words with a byte of at least 0xC0 (a letter
    in cp1252; rules such as "\x97\x97\x97" or "\x85\x94" are punctuation) and either over two
    thirds high bytes or three high bytes in a row (French "\xe9t\xe9" and Finnish
    "H\xe4\xe4y\xf6" are neither; "Apple\x82\xcd\x90V..." is the second).
    """
    high = in_foreign_words = 0
    for word in raw[:_SNIFF_BYTES].split():
        n = len(word) - len(word.translate(None, _HIGH_BYTES))
        high += n
        if n >= 2 and max(word) >= 0xC0 and (3 * n > 2 * len(word) or _HIGH_RUN.search(word)):
            in_foreign_words += n
    return 2 * in_foreign_words < high


# The characters each CJK language's text is made of, beside CJK punctuation (U+3000-303F)
# and fullwidth ASCII (U+FF01-FF5E): kana and kanji; hanzi; Hangul syllables.
_CJK_NATIVE = {
    "ja": ((0x3040, 0x30FF), (0x4E00, 0x9FFF)),
    "zh": ((0x4E00, 0x9FFF),),
    "ko": ((0xAC00, 0xD7A3),),
}
_CJK_CODECS = {
    "ja": ("cp932", "shift_jis", "euc_j"),  # euc_jp, euc_jis_2004, euc_jisx0213
    "zh": ("gb", "big5", "cp950", "hz"),
    "ko": ("cp949", "euc_kr", "johab"),
}


def _cjk_language(encoding: str) -> str | None:
    return next((lang for lang, prefixes in _CJK_CODECS.items()
                 if encoding.startswith(prefixes)), None)


def _native_share(text: str, lang: str) -> float:
    """Share of the non-ASCII characters of `text` that belong to `lang`'s script. Wrong
    CJK readings yield Hangul jamo, halfwidth katakana, rare supplementary ideographs, or
    kana in a "Chinese" reading, which lower it."""
    ranges = (*_CJK_NATIVE[lang], (0x3000, 0x303F), (0xFF01, 0xFF5E))
    wide = [ord(c) for c in text[:_SNIFF_BYTES] if ord(c) >= 0x80]
    if not wide:
        return 0.0
    return sum(any(lo <= c <= hi for lo, hi in ranges) for c in wide) / len(wide)


def _detector_confidence(results: Any, encoding: str, text: str) -> float:
    """charset_normalizer's confidence in one reading: 1 - chaos (as its chardet-style
    `detect` reports it), from its own match for that code page, else measured on the text."""
    for match in results:
        if encoding in match.could_be_from_charset:
            return round(1.0 - match.chaos, 2)
    from charset_normalizer.md import mess_ratio

    return round(1.0 - mess_ratio(text[:_SNIFF_BYTES], maximum_threshold=1.0), 2)


def decode_text(raw: bytes) -> DecodedText:
    """Text, encoding and confidence (see `DecodedText`). The order of the tests:

    1. A BOM settles it: UTF-8, UTF-32, UTF-16 (confidence 1.0).
    2. UTF-16 without a BOM, when NUL bytes at alternating positions say so (before the
       binary test, which would take those NULs for binary).
    3. Binary content (NUL or many control bytes) raises UndecodableError.
    4. Valid UTF-8 is UTF-8 (confidence 1.0).
    5. Legacy bytes: cp1252 when it decodes them and they look Western (`_looks_western`:
       high bytes alone in mostly-ASCII words). Detectors read short Western texts as CJK
       (a Latin-1 "\xa315.8m" as cp932 "\uff6315.8m"), so cp1252 wins unless its reading
       puts the high bytes in runs that no Western text has.
    6. Otherwise charset_normalizer's best guess (a Latin single-byte guess still reads as
       cp1252 when that decodes); no guess at all is binary content. When it guesses a CJK
       code page, the CJK readings it finds equally clean are ranked by `_native_share`
       (it reads EUC-JP Japanese as cp949 "Korean" full of stray jamo at the same score).

    The confidence of a legacy reading is the detector's 1 - chaos for that code page; it
    says how clean the reading is, not how sure the choice between readings is.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        try:
            return DecodedText(raw[3:].decode("utf-8"), "utf-8", 1.0)
        except UnicodeDecodeError:
            pass  # a stray BOM-like prefix: left to the tests below
    for boms, codec in ((_UTF32_BOMS, "utf-32"), (_UTF16_BOMS, "utf-16")):
        if raw.startswith(boms):
            try:
                return DecodedText(raw.decode(codec), codec, 1.0)
            except UnicodeDecodeError as exc:
                if codec == "utf-16":
                    raise UndecodableError(f"bad UTF-16: {exc}") from exc
    if (utf16 := _utf16_without_bom(raw)) is not None:
        return utf16
    head = raw[:8192]
    if b"\x00" in head:  # before UTF-8: NUL and other controls are valid UTF-8
        raise UndecodableError("NUL bytes: binary content")
    if sum(b < 32 and b not in b"\t\n\r\f\x1b" for b in head) > 0.05 * len(head):
        raise UndecodableError("control bytes: binary content")
    try:
        return DecodedText(raw.decode("utf-8-sig"), "utf-8", 1.0)
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    results = from_bytes(raw)
    try:
        western = raw.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and _looks_western(raw):
        return DecodedText(western, "cp1252", _detector_confidence(results, "cp1252", western))
    best = results.best()
    if best is None:
        raise UndecodableError("no text encoding fits: binary content")
    if best.encoding in _LATIN_SINGLE_BYTE and western is not None:
        return DecodedText(western, "cp1252", _detector_confidence(results, "cp1252", western))
    if _cjk_language(best.encoding):  # the detector often ties CJK readings: break the tie
        tied = [m for m in results if m.chaos <= best.chaos + 0.01 and _cjk_language(m.encoding)]
        best = max(tied, key=lambda m: _native_share(str(m), _cjk_language(m.encoding)))
    return DecodedText(str(best), best.encoding, round(1.0 - best.chaos, 2))


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
        text, encoding, confidence = decode_text(raw)
    except UndecodableError as exc:
        yield Reject(rel, "binary_file", str(exc))
        return
    if not text.strip():
        yield Reject(rel, "empty_text", "the file is empty or whitespace only")
        return
    meta = {} if encoding == "utf-8" else {"encoding": encoding, "encoding_confidence": confidence}
    title, body = split_title_line(text) if opts.title_line else (None, text)
    # The id hashes the whole file, title included: the same file keeps its id either way.
    yield Document(doc_id=text_hash(text), source=rel, raw_text=body, title=title, meta=meta)


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
