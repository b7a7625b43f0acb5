"""The scheduled deployment against a real `prefect server start` on loopback.

The server, the worker, `prefect deploy` and `textdigest serve` run as subprocesses with their
own PREFECT_HOME and PREFECT_API_URL (this process may hold the in-process test harness); the
test reads state back over the server's REST API. Every process started here is stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from flows.schedule import find_prefect_yaml, read_spec

from .conftest import REPO
from .corpus import short_articles, write_jsonl

BIN = Path(sys.executable).parent
POOL = "textdigest-pool"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started with its own session, and its children."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def _started(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        _stop(proc)


def _call(api: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """One API request, retried while the server answers 503 (its SQLite database busy), as
    Prefect's own client does."""
    deadline = time.monotonic() + 30
    while True:
        response = api.request(method, url, **kwargs)
        if response.status_code not in (502, 503) or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def _wait(what: str, check, timeout: float, logs: list[Path]) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[httpx.Client, dict[str, str], Path]]:
    """A real Prefect server on a free loopback port, with its own home and database."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", HF_HUB_OFFLINE="1",
               PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_RUNNER_POLL_FREQUENCY="1")
    log = home / "server.log"
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
           "--no-services", "--no-ui"]
    with _started(cmd, env, log) as proc, httpx.Client(base_url=env["PREFECT_API_URL"],
                                                     timeout=10) as api:
        _wait("the server's /api/health",
              lambda: proc.poll() is None and api.get("/health").status_code == 200, 90, [log])
        yield api, env, home


def test_deployment_registers_with_its_cron_and_a_run_completes_on_a_worker(server, tmp_path):
    api, env, home = server
    spec = read_spec(find_prefect_yaml(REPO))
    logs = [home / "worker.log", home / "serve.log"]
    worker_cmd = [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"]
    serve_cmd = [str(BIN / "textdigest"), "serve", "--name", "served",
                 "--prefect-yaml", str(REPO / "prefect.yaml")]
    # The worker creates the pool (and starts up) while `textdigest serve` registers its own.
    with _started(worker_cmd, env, logs[0]), _started(serve_cmd, env, logs[1]):
        _wait("the work pool", lambda: _call(api, "GET", f"/work_pools/{POOL}").is_success,
              60, logs)
        deploy = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--name",
                                 spec.name], env=env, cwd=REPO, capture_output=True, text=True,
                                timeout=120)
        assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]

        deployment = _call(api, "GET", f"/deployments/name/digest/{spec.name}").json()
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == [spec.cron]
        assert all(s["active"] for s in deployment["schedules"])
        assert deployment["work_pool_name"] == POOL
        assert deployment["entrypoint"] == "flows/digest.py:digest"
        assert deployment["parameters"]["config"]["output"] == "data"

        # one run of it, on the worker, into a temporary output
        inp = write_jsonl(tmp_path / "in.jsonl", short_articles(1))
        out = tmp_path / "out"
        config = {"input": str(inp), "output": str(out), "sentiment_model": "minilm-head",
                  "show_progress": False}
        run = _call(api, "POST", f"/deployments/{deployment['id']}/create_flow_run",
                    json={"parameters": {"config": config}})
        assert run.status_code == 201, run.text
        def finished() -> str | None:
            state = _call(api, "GET", f"/flow_runs/{run.json()['id']}").json()["state"]["type"]
            return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        state = _wait("the flow run to finish", finished, 240, logs)
        assert state == "COMPLETED", "\n".join(p.read_text()[-3000:] for p in logs)
        assert pq.read_table(out / "documents").num_rows == 1
        assert len(list((out / "runs").glob("*.json"))) == 1

        served = _wait("the served deployment", lambda: (
            r.json() if (r := _call(api, "GET", "/deployments/name/digest/served")).is_success
            else None), 60, logs)
        assert [s["schedule"]["cron"] for s in served["schedules"]] == [spec.cron]
        assert served["parameters"]["config"]["input"] == str(spec.config.input)


def test_serve_reads_the_cron_of_prefect_yaml_and_refuses_a_broken_one(tmp_path):
    spec = read_spec(REPO / "prefect.yaml")
    assert spec.name == "digest" and spec.cron == "0 * * * *"
    assert spec.config.input == Path("seeds") and spec.config.task_runner == "threads"
    broken = tmp_path / "prefect.yaml"
    broken.write_text("deployments:\n  - name: digest\n    schedules: []\n")
    done = subprocess.run([str(BIN / "textdigest"), "serve", "--prefect-yaml", str(broken)],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "exactly one cron schedule" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
