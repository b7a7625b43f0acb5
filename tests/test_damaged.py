"""A damaged output is named and repaired, and machine faults are one line, not a traceback.

A shard, a manifest and an index file are cut to half their size in turn: `textdigest run`
refuses in one line naming the file, `textdigest verify` names it, and after `verify
--repair` a rerun leaves every input document in the output exactly once and
`datasets.load_dataset` reads it. A run into a full file system (a small tmpfs where the test
may mount one, else a writer that raises ENOSPC) stops with one line and exit 4, leaves no
partial file, and a rerun with space completes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tasks.io.verify import QUARANTINE_DIR, REPAIRS, verify_output

from .corpus import articles, light_edit

EXE = Path(sys.executable).with_name("textdigest")
pytestmark = pytest.mark.slow  # Prefect flow runs and subprocesses


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=600,
                          env=env or {**os.environ, "HF_HUB_OFFLINE": "1"})


def _one_line(err: str, logged: bool = False) -> str:
    """The one error line; with `logged`, after the run's own Prefect log lines (no
    traceback, no "Crash detected", and nothing after the error line)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "Crash detected" not in err, err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert logged or len(lines) == 1, err
    return errors[0]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("damaged-in") / "articles.jsonl"
    rows = [{"id": r["id"], "title": r.get("title"), "text": r["text"][:1200]}
            for r in articles()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _digest(inp: Path, out: Path) -> dict:
    from flows.config import DigestConfig
    from flows.digest import digest

    return digest(DigestConfig(input=inp, output=out, batch_size=3, shard_rows=3,
                               show_progress=False))


def _ids(out: Path) -> list[str]:
    return pq.read_table(out / "documents", columns=["doc_id"]).column("doc_id").to_pylist()


@pytest.mark.parametrize("which", ["shard", "manifest", "index"])
def test_a_damaged_file_is_named_refused_and_repaired(which, inputs, tmp_path,
                                                      prefect_harness):
    out = tmp_path / "out"
    summary = _digest(inputs, out)
    n_docs = summary["counts"]["written"]
    assert n_docs >= 8 and verify_output(out) == []
    shard = sorted((out / "documents").glob("*.parquet"))[0]
    target = {"shard": shard, "manifest": next((out / "runs").glob("*.json")),
              "index": next((out / "index").glob("*.parquet"))}[which]
    rel = target.relative_to(out).as_posix()
    _truncate(target)

    run = _cli("run", "--input", str(inputs), "--output", str(out), "--no-progress")
    assert run.returncode == 3, run.stderr
    line = _one_line(run.stderr)
    assert rel in line and f"textdigest verify {out} --repair" in line

    check = _cli("verify", str(out))
    assert check.returncode == 1
    assert rel in check.stdout and summary["run_id"] in check.stdout
    if which == "shard":  # its run's manifest says how many documents it held
        assert "3 row(s)" in check.stdout

    fixed = _cli("verify", str(out), "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert not target.exists() and (out / QUARANTINE_DIR / rel).is_file()
    note = json.loads((out / QUARANTINE_DIR / (rel + ".note.json")).read_text())
    assert note["path"] == rel and note["run_id"] == summary["run_id"]
    history = (out / QUARANTINE_DIR / REPAIRS).read_text().splitlines()
    assert [json.loads(h)["path"] for h in history] == [rel]
    assert _cli("verify", str(out)).returncode == 0  # set aside is not missing

    again = _digest(inputs, out)  # the shard's documents come back, once
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == n_docs
    assert again["counts"]["written"] == (3 if which == "shard" else 0)
    from datasets import load_dataset

    files = sorted(str(p) for p in (out / "documents").glob("*.parquet"))
    ds = load_dataset("parquet", data_files=files, split="train")
    assert sorted(ds["doc_id"]) == sorted(ids)


def test_publish_refuses_a_damaged_output(inputs, tmp_path, prefect_harness):
    out = tmp_path / "out"
    _digest(inputs, out)
    _truncate(sorted((out / "documents").glob("*.parquet"))[-1])
    result = _cli("publish", str(out), "--repo-id", "textdigest/test", "--dry-run")
    assert result.returncode == 3
    assert "textdigest verify" in _one_line(result.stderr)


# ------------------------------------------------------------------------------ disk full


def _many(n: int) -> list[dict]:
    base = articles()
    return [{"id": f"{r['id']}-{k}", "title": r.get("title"),
             "text": light_edit(r["text"], 12, tag=str(k))}
            for k in range(n // len(base) + 1) for r in base][:n]


@pytest.fixture
def small_fs(tmp_path):
    """A 200 KB tmpfs, or None where this test may not mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _no_partial_files(out: Path) -> None:
    for path in out.rglob("*.parquet"):
        if not path.name.startswith("."):
            assert pq.read_metadata(path).num_rows > 0  # a cut file has no footer


def test_a_full_disk_is_one_line_and_the_rerun_completes(small_fs, tmp_path, prefect_harness,
                                                         monkeypatch):
    from prefect.settings import PREFECT_API_URL

    inp = tmp_path / "in.jsonl"
    rows = _many(96)
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if small_fs is not None:  # the real thing: a file system that fills up
        out = small_fs / "out"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_API_URL": PREFECT_API_URL.value(),
               "PREFECT_HOME": str(tmp_path / "prefect-home")}
        result = _cli("run", "--input", str(inp), "--output", str(out), "--no-progress",
                      "--shard-rows", "4", "--batch-size", "4", env=env)
        code, err = result.returncode, result.stderr
    else:  # no mount here: the writer itself runs out of space after three shards
        from typer.testing import CliRunner

        from flows.cli import app
        from tasks.io import write

        out = tmp_path / "out"
        sealed = write.ShardWriter._seal
        count = {"n": 0}

        def seal(self):
            count["n"] += 1
            if count["n"] > 3:
                self._writer.close()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._tmp))
            return sealed(self)

        monkeypatch.setattr(write.ShardWriter, "_seal", seal)
        result = CliRunner().invoke(app, ["run", "--input", str(inp), "--output", str(out),
                                          "--no-progress", "--shard-rows", "4",
                                          "--batch-size", "4"])
        code, err = result.exit_code, result.output
        monkeypatch.undo()
    assert code == 4, err
    line = _one_line(err, logged=True)
    assert "no space left" in line and "run again" in line
    _no_partial_files(out)
    written = set(_ids(out)) if (out / "documents").is_dir() else set()
    assert len(written) < len(rows)
    # space again: the rerun writes the rest, each document once
    roomy = tmp_path / "roomy"
    shutil.copytree(out, roomy)
    from flows.config import DigestConfig
    from flows.digest import digest

    digest(DigestConfig(input=inp, output=roomy, batch_size=4, shard_rows=4,
                        show_progress=False))
    ids = _ids(roomy)
    assert len(ids) == len(set(ids)) == len(rows)
    assert written <= set(ids)
