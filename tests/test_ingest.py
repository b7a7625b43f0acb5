"""Ingest of every supported format, ids, sources, rejects and bounded batches."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.io.ingest import (
    IngestOptions,
    UndecodableError,
    batched,
    count_items,
    decode_text,
    discover,
    iter_items,
    read_file,
    text_hash,
)
from tasks.record import Document, Reject


def _docs(items):
    return [i for i in items if isinstance(i, Document)]


def _rejects(items):
    return [i for i in items if isinstance(i, Reject)]


def test_txt_file_is_one_document_with_hash_id(tmp_path):
    (tmp_path / "a.txt").write_text("\ufeffHello   world.\n", encoding="utf-8")
    items = list(iter_items(tmp_path))
    assert len(items) == 1
    doc = items[0]
    assert isinstance(doc, Document)
    assert doc.source == "a.txt"
    assert doc.raw_text.startswith("Hello")  # BOM stripped
    # same text with other whitespace -> same id; other text -> other id
    assert doc.doc_id == text_hash("Hello world.")
    assert doc.doc_id != text_hash("Hello world!")


def test_folder_is_read_recursively_in_stable_order_and_skips_hidden(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("Zed.")
    (tmp_path / "a.txt").write_text("Ay.")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("hidden")
    root, files = discover(tmp_path)
    assert root == tmp_path
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.txt", "b/z.txt"]
    assert [i.source for i in iter_items(tmp_path)] == ["a.txt", "b/z.txt"]


def test_jsonl_keeps_id_title_and_other_fields_and_rejects_bad_lines(tmp_path):
    lines = [
        json.dumps({"id": 7, "title": "T", "text": "First text.", "url": "http://x"}),
        "{not json",
        json.dumps({"body": "no text field"}),
        "",
        json.dumps({"text": 12}),
        json.dumps(["a", "list"]),
        json.dumps({"text": "   "}),
        json.dumps({"text": "Second text."}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    items = list(iter_items(path))
    docs, rejects = _docs(items), _rejects(items)
    assert [d.doc_id for d in docs] == ["7", text_hash("Second text.")]
    assert docs[0].title == "T" and docs[0].meta == {"url": "http://x"}
    assert docs[0].source == "in.jsonl:1" and docs[1].source == "in.jsonl:8"
    assert [(r.source, r.reason) for r in rejects] == [
        ("in.jsonl:2", "malformed_json"),
        ("in.jsonl:3", "missing_text_field"),
        ("in.jsonl:5", "text_not_string"),
        ("in.jsonl:6", "not_an_object"),
        ("in.jsonl:7", "empty_text"),
    ]


def test_jsonl_custom_text_field(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"body": "Body text."}) + "\n")
    items = list(iter_items(path, IngestOptions(text_field="body")))
    assert _docs(items)[0].raw_text == "Body text."


@pytest.mark.parametrize("suffix,delim", [(".csv", ","), (".tsv", "\t")])
def test_csv_and_tsv_rows(tmp_path, suffix, delim):
    path = tmp_path / f"in{suffix}"
    path.write_text(f"id{delim}article{delim}lang\n1{delim}\"Multi\nline text.\"{delim}en\n"
                    f"2{delim}Other text.{delim}en\n")
    items = list(iter_items(path, IngestOptions(text_column="article")))
    docs = _docs(items)
    assert [d.doc_id for d in docs] == ["1", "2"]
    assert docs[0].raw_text == "Multi\nline text."
    assert docs[0].meta == {"lang": "en"}
    assert [d.source for d in docs] == [f"in{suffix}:1", f"in{suffix}:2"]


def test_csv_without_text_column_is_rejected_whole(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("a,b\n1,2\n")
    items = list(iter_items(path))
    assert len(items) == 1 and items[0].reason == "missing_text_column"
    assert "--text-column" in items[0].detail


def test_parquet_rows_and_missing_column(tmp_path):
    table = pa.table({"id": ["x", None], "text": ["Alpha text.", "Beta text."],
                      "score": [1.5, 2.5]})
    pq.write_table(table, tmp_path / "in.parquet")
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "other.parquet")
    items = list(iter_items(tmp_path))
    docs, rejects = _docs(items), _rejects(items)
    assert [d.doc_id for d in docs] == ["x", text_hash("Beta text.")]
    assert docs[1].meta == {"score": 2.5}
    assert docs[1].source == "in.parquet:2"
    assert [(r.source, r.reason) for r in rejects] == [("other.parquet", "missing_text_column")]


def test_unsupported_empty_binary_and_large_files_are_rejected(tmp_path):
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(300))
    (tmp_path / "huge.txt").write_text("word " * 300)
    items = list(iter_items(tmp_path, IngestOptions(max_doc_bytes=1000)))
    reasons = {r.source: r.reason for r in items}
    assert reasons == {"binary.txt": "binary_file", "empty.txt": "empty_text",
                       "huge.txt": "too_large", "image.png": "unsupported_format"}


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-8-sig"])
def test_legacy_encodings_are_decoded_and_recorded(tmp_path, encoding):
    text = "Caf\u00e9 cr\u00e8me: the d\u00e9j\u00e0 vu of \u201cna\u00efve\u201d markets."
    (tmp_path / "a.txt").write_bytes(text.encode(encoding))
    (doc,) = iter_items(tmp_path)
    assert isinstance(doc, Document)
    assert doc.raw_text == text
    assert doc.meta.get("encoding", "utf-8") == {"utf-8-sig": "utf-8"}.get(encoding, encoding)


def test_decode_text_refuses_binary():
    with pytest.raises(UndecodableError):
        decode_text(bytes(range(256)) * 8)


def test_symlinks_are_not_followed_out_of_the_input(tmp_path):
    inp, outside = tmp_path / "in", tmp_path / "outside"
    inp.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("Outside text.")
    (inp / "a.txt").write_text("Inside text.")
    (inp / "link.txt").symlink_to(outside / "secret.txt")
    (inp / "linkdir").symlink_to(outside, target_is_directory=True)
    (inp / "alias.txt").symlink_to(inp / "a.txt")
    items = {i.source: i for i in iter_items(inp)}
    assert items["link.txt"].reason == "symlink_outside_input"
    assert items["linkdir"].reason == "symlink_outside_input"
    assert isinstance(items["alias.txt"], Document)  # inside the input: read
    assert isinstance(items["a.txt"], Document)
    assert all("Outside" not in getattr(i, "raw_text", "") for i in items.values())


def test_batches_are_bounded_and_limit_stops(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": f"Doc {i}."}) + "\n" for i in range(25)))
    sizes = [len(b) for b in batched(iter_items(path), 10)]
    assert sizes == [10, 10, 5]
    assert sum(len(b) for b in batched(iter_items(path), 10, limit=12)) == 12
    assert count_items(path) == 25
    # a character budget closes a batch early: long texts travel in smaller batches
    mixed = tmp_path / "mixed.jsonl"
    texts = ["x " * 500] * 4 + ["Short one."] * 6
    mixed.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    sizes = [len(b) for b in batched(iter_items(mixed), 10, max_chars=2000)]
    assert sizes == [2, 2, 6]
    assert sum(sizes) == 10


def test_iter_items_is_lazy(tmp_path, monkeypatch):
    """Reading stops where the consumer stops, so the corpus is never loaded whole: after one
    item, one line of the first file has been read and no other file opened."""
    lines = [json.dumps({"text": f"Doc {i}."}).encode() + b"\n" for i in range(5)]
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines))
    (tmp_path / "b.jsonl").write_bytes(lines[0])
    served: dict[str, int] = {}  # input file -> lines handed to the reader
    real_open = Path.open

    class Lines:
        """An input file that counts what is read of it (whole-file reads count every line)."""

        def __init__(self, name: str, data: list[bytes]):
            self.name, self.data = name, data

        def __iter__(self):
            return self

        def __next__(self) -> bytes:
            if served[self.name] == len(self.data):
                raise StopIteration
            served[self.name] += 1
            return self.data[served[self.name] - 1]

        def readline(self, *_) -> bytes:
            return next(self, b"")

        def read(self, *_) -> bytes:
            return b"".join(self.readlines())

        def readlines(self, *_) -> list[bytes]:
            rest = self.data[served[self.name]:]
            served[self.name] = len(self.data)
            return rest

        def close(self) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

    def open_counted(self, mode="r", *args, **kwargs):
        if self.parent != tmp_path:
            return real_open(self, mode, *args, **kwargs)
        with real_open(self, "rb") as fh:
            data = fh.readlines()
        served[self.name] = 0
        return Lines(self.name, data)

    monkeypatch.setattr(Path, "open", open_counted)
    items = iter_items(tmp_path)
    first = next(items)
    assert isinstance(first, Document) and first.raw_text == "Doc 0."
    assert served == {"a.jsonl": 1}
    assert [i.raw_text for i in items] == [f"Doc {i}." for i in (1, 2, 3, 4, 0)]
    assert served == {"a.jsonl": 5, "b.jsonl": 1}  # the counting saw every read


def test_a_bad_csv_row_costs_that_row_not_the_rest_of_the_file(tmp_path):
    (tmp_path / "c.csv").write_bytes(
        b"id,text\n1,First row.\n2,Caf\xe9 in latin-1.\n3,Third row.\n4,Fourth row.\n")
    items = list(read_file(tmp_path / "c.csv", tmp_path, IngestOptions()))
    assert [(type(i).__name__, i.source) for i in items] == [
        ("Document", "c.csv:1"), ("Reject", "c.csv:2"), ("Document", "c.csv:3"),
        ("Document", "c.csv:4")]
    assert items[1].reason == "not_utf8" and "text" in items[1].detail


def test_a_corrupt_parquet_page_becomes_one_reject_counting_the_rows_left(tmp_path):
    rows = [f"Sentence number {i} about markets and rates." for i in range(40)]
    pq.write_table(pa.table({"text": rows}), tmp_path / "ok.parquet", row_group_size=10)
    data = bytearray((tmp_path / "ok.parquet").read_bytes())
    chunk = pq.ParquetFile(tmp_path / "ok.parquet").metadata.row_group(2).column(0)
    start = chunk.data_page_offset
    data[start + 30 : start + chunk.total_compressed_size - 5] = b"\xab" * (
        chunk.total_compressed_size - 35)
    (tmp_path / "bad.parquet").write_bytes(bytes(data))
    items = list(read_file(tmp_path / "bad.parquet", tmp_path, IngestOptions(), batch_rows=10))
    assert [i.raw_text if isinstance(i, Document) else None for i in items[:20]] == rows[:20]
    (reject,) = items[20:]
    assert (reject.source, reject.reason) == ("bad.parquet:21", "unreadable_rows")
    assert "rows 21-40 of 40" in reject.detail and str(tmp_path) not in reject.detail


def test_a_folder_that_cannot_be_listed_is_a_reject_not_a_silent_gap(tmp_path, monkeypatch):
    import os

    (tmp_path / "ok.txt").write_text("Readable article text.")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "hidden-by-permissions.txt").write_text("Never listed.")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):  # what chmod 000 does to a non-root user
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(iter_items(tmp_path))
    assert [(type(i).__name__, i.source) for i in items] == [
        ("Reject", "locked"), ("Document", "ok.txt")]
    assert items[0].reason == "unreadable_folder"
    assert count_items(tmp_path) == 2
