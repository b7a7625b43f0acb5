"""Runs that overlap on one output never write a document twice (tasks.io.output_lock).

The lock is checked on its own first (two holders, a waiter, a holder killed with SIGKILL),
then with real `textdigest run` processes started together on one output: the same input,
different inputs, a run killed while it holds the output, and a Dask run beside a thread run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tasks.io.output_lock import LOCK_NAME, OutputBusy, hold_output, is_locked, read_holder

from .corpus import articles

EXE = Path(sys.executable).with_name("textdigest")
BUSY = 75  # flows.cli.EXIT_BUSY


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    with hold_output(tmp_path, "run-a"):
        assert is_locked(tmp_path) and read_holder(tmp_path)["run_id"] == "run-a"
        with pytest.raises(OutputBusy) as busy, hold_output(tmp_path, "run-b"):
            pass
        message = str(busy.value)
        assert "run run-a" in message and "started" in message and "--wait" in message
        assert "\n" not in message
    assert not is_locked(tmp_path) and read_holder(tmp_path) is None


def test_a_waiting_holder_gets_the_output_when_the_first_lets_go(tmp_path):
    got = []
    with hold_output(tmp_path, "run-a"):
        def second():
            with hold_output(tmp_path, "run-b", wait_s=30, poll_s=0.05) as me:
                got.append(me["run_id"])
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert got == []  # still waiting while the first holds it
    thread.join(10)
    assert got == ["run-b"]
    with hold_output(tmp_path, "run-a"), pytest.raises(OutputBusy), \
            hold_output(tmp_path, "run-c", wait_s=0.2, poll_s=0.05):
        pass  # a wait that runs out refuses as at once would


def test_a_holder_killed_with_sigkill_blocks_no_one(tmp_path):
    code = ("import sys, time; from tasks.io.output_lock import hold_output\n"
            "with hold_output(sys.argv[1], 'doomed'):\n"
            "    print('held', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == "held"
        assert is_locked(tmp_path) and read_holder(tmp_path)["run_id"] == "doomed"
        with pytest.raises(OutputBusy, match="doomed"), hold_output(tmp_path, "next"):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not is_locked(tmp_path)  # the kernel dropped it with the process
    with hold_output(tmp_path, "next") as me:  # taken over at once, no stale-lock cleanup
        assert me["run_id"] == "next" and (tmp_path / LOCK_NAME).is_file()


# ------------------------------------------------------------------ real runs, overlapping


def _inputs(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "articles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    rows = [{"id": r["id"], "title": r.get("title"), "text": r["text"][:1500]}
            for r in articles()]
    assert len(rows) >= 8
    return rows


def _env(tmp_path: Path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_API_URL": PREFECT_API_URL.value()}


def _start(inp: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = [str(EXE), "run", "--input", str(inp), "--output", str(out), "--batch-size", "2",
           "--shard-rows", "3", "--no-progress", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[tuple[int, str]]:
    out = []
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        out.append((proc.returncode, err))
    return out


def _doc_ids(out: Path) -> list[str]:
    return pq.read_table(out / "documents", columns=["doc_id"]).column("doc_id").to_pylist()


def _manifests(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


def test_the_same_input_twice_at_once_writes_each_document_once(corpus, tmp_path,
                                                                prefect_harness):
    inp, env = _inputs(tmp_path / "in", corpus), _env(tmp_path)
    # refusing: the one that finds the output held exits 75 with one line, having read nothing
    out = tmp_path / "refuse"
    results = _finish([_start(inp, out, env), _start(inp, out, env)])
    codes = sorted(code for code, _ in results)
    ids = _doc_ids(out)
    assert sorted(ids) == sorted(set(ids)) and set(ids) == {r["id"] for r in corpus}
    assert codes in ([0, 0], [0, BUSY]), results
    for code, err in results:
        if code == BUSY:  # one error line (after the flow's own log lines when the two met
            # inside the flow rather than at the command's check), no traceback
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "is being written by run" in errors[0], err
            assert "Traceback" not in err and "Crash detected" not in err
    # waiting: both complete; the second skips what the first wrote, all accounted for
    out = tmp_path / "wait"
    results = _finish([_start(inp, out, env, "--wait", "300"),
                       _start(inp, out, env, "--wait", "300")])
    assert [code for code, _ in results] == [0, 0], results
    ids = _doc_ids(out)
    assert len(ids) == len(set(ids)) == len(corpus)
    runs = _manifests(out)
    assert len(runs) == 2
    assert sorted(r["counts"]["written"] for r in runs) == [0, len(corpus)]
    for r in runs:
        c = r["counts"]
        assert c["read"] == c["written"] + c["rejected"] + c["skipped_existing"] == len(corpus)


def test_different_inputs_at_once_give_their_union(corpus, tmp_path, prefect_harness):
    half = len(corpus) // 2
    a = _inputs(tmp_path / "a", corpus[:half])
    b = _inputs(tmp_path / "b", corpus[half:])
    out, env = tmp_path / "out", _env(tmp_path)
    results = _finish([_start(a, out, env, "--wait", "300"), _start(b, out, env, "--wait", "300")])
    assert [code for code, _ in results] == [0, 0], results
    ids = _doc_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) == {r["id"] for r in corpus}


def _state(out: Path) -> dict[str, tuple]:
    rows = pq.read_table(out / "documents").to_pylist()
    assert len(rows) == len({r["doc_id"] for r in rows}), "duplicate documents"
    return {r["doc_id"]: (r["summary"], r["sentiment"], round(r["sentiment_score"], 4))
            for r in rows}


def test_a_run_killed_holding_the_output_does_not_block_the_next(corpus, tmp_path,
                                                                 prefect_harness):
    from flows.config import DigestConfig
    from flows.digest import digest

    inp, env = _inputs(tmp_path / "in", corpus), _env(tmp_path)
    clean = tmp_path / "clean"
    digest(DigestConfig(input=inp, output=clean, batch_size=2, shard_rows=3,
                        show_progress=False))
    out = tmp_path / "killed"
    proc = _start(inp, out, env)
    deadline = time.monotonic() + 300
    while not (read_holder(out) and is_locked(out)) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert is_locked(out), "the run never took the output"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not is_locked(out)
    # the next run proceeds at once (no --wait) and leaves what a clean run leaves
    results = _finish([_start(inp, out, env)])
    assert results[0][0] == 0, results
    assert _state(out) == _state(clean)


def test_a_dask_run_and_a_thread_run_at_once(corpus, tmp_path, prefect_harness):
    inp, env = _inputs(tmp_path / "in", corpus), _env(tmp_path)
    out = tmp_path / "out"
    results = _finish([_start(inp, out, env, "--task-runner", "dask", "--dask-workers", "1",
                              "--wait", "300"),
                       _start(inp, out, env, "--wait", "300")])
    assert [code for code, _ in results] == [0, 0], results
    ids = _doc_ids(out)
    assert len(ids) == len(set(ids)) == len(corpus)


def test_a_reader_of_a_read_only_output_goes_ahead_unlocked(tmp_path, monkeypatch):
    """publish and verify read an output they may not write (a read-only mount) as before;
    a writer there fails as it would on any write. (The lock file cannot be opened: EROFS.)"""
    import errno

    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).endswith(LOCK_NAME) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with hold_output(tmp_path, "reader", reader=True) as me:
        assert me is None
    with pytest.raises(OSError, match="Read-only"), hold_output(tmp_path, "writer"):
        pass
