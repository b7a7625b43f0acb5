"""Every kind of bad input through the real command line: the run completes (exit 0), every
input is written or rejected with its reason, nothing prints a traceback, and no token or
absolute path reaches the output. Plus the exit codes of runs that must not complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import REPO
from .corpus import articles

EXE = Path(sys.executable).with_name("textdigest")
SENTINEL = "hf_SENTINELtokenValue0123456789abcdefXYZ"


def _article(n: int = 0) -> str:
    return articles()[n]["text"]


def _bad_folder(root: Path) -> dict[str, str | None]:
    """Write one file per kind of bad input; returns file -> expected reject reason (None:
    the file must be written as a document)."""
    root.mkdir()
    expect: dict[str, str | None] = {}

    def put(name: str, data: bytes | str, reason: str | None) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        expect[name] = reason
        return path

    good = _article(0)
    put("good.txt", good, None)
    put("z/good-again.txt", good, "duplicate_doc_id")
    put("headline.txt", "Oil prices jump after the storm.", None)
    put("brief.txt", "Stocks fall.", None)
    put("french.txt", "Le président de la République a annoncé mardi une réforme importante "
                      "des retraites, qui sera présentée au Parlement le mois prochain.", None)
    put("cp1252.txt", ("The café in Zürich served crème brûlée — “quoted” text. " * 3)
        .encode("cp1252"), None)
    put("bom.txt", b"\xef\xbb\xbf" + _article(1).encode("utf-8"), None)
    put("utf16.txt", _article(2).encode("utf-16"), None)
    put("invisible.txt", "Zero\u200bwidth and \u202eoverride\u202c text in a sentence that "
                         "talks about markets.\x07 Another sentence follows it here.", None)
    put("long-sentence.txt", "The rally went on " + "and on " * 3000 + "until it ended.", None)
    put("binary.txt", bytes(range(256)) * 8, "binary_file")
    put("empty.txt", "", "empty_text")
    put("blank.txt", " \n\t \n", "empty_text")
    put("markup-only.txt", "<div><p> </p><br/></div>", "empty_after_cleaning")
    put("cookies.txt", "We use cookies to improve your experience. Accept all cookies. "
                       "Manage settings.", "boilerplate_only")
    put("rights.txt", "© 2024 Example Media. All rights reserved.", "boilerplate_only")
    put("notes.pdf", b"%PDF-1.4 not supported", "unsupported_format")
    huge = put("huge.txt", b"", "too_large")
    os.truncate(huge, 6_000_000)  # sparse: past the 5 MB limit without writing it
    lines = [
        json.dumps({"id": "j1", "text": _article(3)}),
        "{broken json",
        "[1, 2, 3]",
        json.dumps({"id": "j4", "text": 42}),
        json.dumps({"id": "j5", "body": "no text field"}),
        json.dumps({"id": "j6", "text": "   "}),
    ]
    put("records.jsonl", ("\n".join(lines) + "\n").encode() + b'{"text": "caf\xe9"}\n', None)
    expect.update({"records.jsonl:1": None, "records.jsonl:2": "malformed_json",
                   "records.jsonl:3": "not_an_object", "records.jsonl:4": "text_not_string",
                   "records.jsonl:5": "missing_text_field", "records.jsonl:6": "empty_text",
                   "records.jsonl:7": "not_utf8"})
    del expect["records.jsonl"]
    put("wrong-columns.csv", "headline,body\nA,B\n", "missing_text_column")
    pq.write_table(pa.table({"body": ["x"]}), root / "wrong-columns.parquet")
    expect["wrong-columns.parquet"] = "missing_text_column"
    outside = root.parent / "outside.txt"
    outside.write_text("A file outside the input folder must never be read.")
    (root / "link-out.txt").symlink_to(outside)
    expect["link-out.txt"] = "symlink_outside_input"
    (root / "link-dir").symlink_to(root / "z", target_is_directory=True)
    expect["link-dir"] = "symlinked_folder"
    (root / "broken-link.txt").symlink_to(root / "missing.txt")
    expect["broken-link.txt"] = "unreadable_file"
    os.mkfifo(root / "pipe.txt")
    expect["pipe.txt"] = "not_a_regular_file"
    if os.geteuid() != 0:  # root reads anything: the permission case needs another user
        put("locked.txt", "secret", "unreadable_file").chmod(0)
    return expect


def _env(tmp_path: Path, api_url: str | None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_HOME": str(tmp_path / "prefect-home"), "HF_TOKEN": SENTINEL,
           "COLUMNS": "120"}
    if api_url:  # the session's temporary API: no server start per command
        env["PREFECT_API_URL"] = api_url
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(EXE), *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def api_url(prefect_harness) -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, api_url):
    """The bad-input run and a run over its reject limit, side by side (start-up dominates)."""
    tmp = tmp_path_factory.mktemp("bad")
    expect = _bad_folder(tmp / "in")
    out = tmp / "out"
    bad = _start(["run", "--input", str(tmp / "in"), "--output", str(out), "--no-progress",
                  "--batch-size", "8"], _env(tmp, api_url))
    ratio_tmp = tmp_path_factory.mktemp("ratio")
    inp = ratio_tmp / "in"
    inp.mkdir()
    (inp / "ok.txt").write_text("Oil prices jump after the storm.")
    (inp / "binary.txt").write_bytes(bytes(range(256)))
    ratio = _start(["run", "--input", str(inp), "--output", str(ratio_tmp / "out"),
                    "--no-progress", "--max-reject-ratio", "0.2"], _env(ratio_tmp, api_url))
    return (tmp, expect, out, _finish(bad)), (ratio_tmp / "out", _finish(ratio))


@pytest.fixture(scope="module")
def bad_run(runs):
    return runs[0]


def _sources(table: pa.Table) -> dict[str, str | None]:
    rows = table.to_pylist()
    return {r["source"]: r.get("reason") for r in rows}


def test_bad_inputs_complete_with_exit_0_and_no_traceback(bad_run):
    _, _, _, proc = bad_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_every_input_is_written_or_rejected_with_its_reason(bad_run):
    _, expect, out, _ = bad_run
    (manifest,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    counts = manifest["counts"]
    assert manifest["status"] == "completed" and manifest["accounted"]
    assert counts["read"] == counts["written"] + counts["rejected"] == len(expect)
    docs = pq.read_table(out / "documents")
    rejects = pq.read_table(out / "rejects")
    written = _sources(docs)
    rejected = _sources(rejects)
    assert set(written) | set(rejected) == set(expect)
    for source, reason in expect.items():
        if reason is None:
            assert source in written, (source, rejected.get(source))
        else:
            assert rejected.get(source) == reason, (source, rejected.get(source))
    assert manifest["rejects_by_reason"] == {
        r: sum(1 for v in expect.values() if v == r) for r in set(expect.values()) if r}


def test_bad_input_rows_say_what_happened(bad_run):
    _, _, out, _ = bad_run
    rows = {r["source"]: r for r in pq.read_table(out / "documents").to_pylist()}
    assert json.loads(rows["cp1252.txt"]["meta"])["encoding"] == "cp1252"
    assert "café" in rows["cp1252.txt"]["text"]
    assert not rows["bom.txt"]["text"].startswith("\ufeff")
    assert rows["utf16.txt"]["text"] == rows["utf16.txt"]["text"].strip() != ""
    text = rows["invisible.txt"]["text"]
    assert not {"\u200b", "\u202e", "\u202c", "\x07"} & set(text)
    assert rows["french.txt"]["language"] == "fr"  # kept (default) and flagged
    assert rows["good.txt"]["language"] == "en" and rows["good.txt"]["language_score"] > 0.9
    assert rows["brief.txt"]["language"] == "und"  # too few letters to tell
    assert rows["brief.txt"]["language_score"] is None
    assert rows["headline.txt"]["language"] in ("en", "und")
    assert rows["headline.txt"]["summary_method"] == "whole_text"
    assert rows["headline.txt"]["summary"] == rows["headline.txt"]["text"]
    assert rows["good.txt"]["summary_method"] == "extractive"
    long = rows["long-sentence.txt"]
    assert long["n_sentences"] > 1 and "cut" in json.loads(long["meta"])["textdigest_note"]


def test_no_token_and_no_absolute_path_in_any_output(bad_run):
    tmp, _, out, proc = bad_run
    assert SENTINEL not in proc.stdout + proc.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path
    for sub in ("documents", "rejects"):
        table = pq.read_table(out / sub)
        for name in table.column_names:
            if pa.types.is_string(table.schema.field(name).type):
                for value in table.column(name).to_pylist():
                    assert value is None or str(tmp) not in value, (sub, name, value)


def test_a_reject_ratio_over_the_limit_exits_1_with_one_line(runs):
    out, proc = runs[1]
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "max-reject-ratio" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    (manifest,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert manifest["status"] == "failed" and manifest["counts"]["rejected"] == 1


@pytest.mark.slow
def test_an_unwritable_output_exits_2_before_any_work(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    proc = _run(["run", "--input", str(REPO / "seeds"), "--output", str(a_file / "out"),
                 "--no-progress"], _env(tmp_path, None))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: output folder not writable"), proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert a_file.read_text() == "not a folder"
