"""The scheduled deployment against a real `prefect server start` on loopback.

The server, the worker, `prefect deploy` and `textdigest serve` run as subprocesses with their
own PREFECT_HOME and PREFECT_API_URL (this process may hold the in-process test harness); the
test reads state back over the server's REST API. Every process started here is stopped.
"""

from __future__ import annotations

import json
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

pytestmark = pytest.mark.slow  # subprocesses, servers or clusters

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


def _flow_processes(session: int) -> list[int]:
    """Live flow-run processes in the session of `session` (a runner's spawned
    `multiprocessing` children), read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z" and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


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


def _bare_env(home: Path) -> dict[str, str]:
    """This environment without any PREFECT_ setting, with its own (empty) PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               HF_HUB_OFFLINE="1")
    return env


@contextmanager
def _prefect_server(home: Path, services: bool
                    ) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """`prefect server start` on a free loopback port, with its own home and database; the
    API client and the environment its clients run with. `services`: the scheduler and the
    other loop services too (what fires a cron), else the API alone."""
    port = _free_port()
    env = _bare_env(home)
    env.update(PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_RUNNER_POLL_FREQUENCY="1")
    log = home / "server.log"
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
           "--no-ui", *([] if services else ["--no-services"])]
    with _started(cmd, env, log) as proc, httpx.Client(base_url=env["PREFECT_API_URL"],
                                                     timeout=10) as api:
        _wait("the server's /api/health",
              lambda: proc.poll() is None and api.get("/health").status_code == 200, 90, [log])
        yield api, env


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[httpx.Client, dict[str, str], Path]]:
    """A real Prefect server (API only) on a free loopback port, own home and database."""
    home = tmp_path_factory.mktemp("prefect-home")
    with _prefect_server(home, services=False) as (api, env):
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
        assert deployment["parameters"]["config"]["output"]["path"] == "data"

        # one run of it, on the worker, into a temporary output
        inp = write_jsonl(tmp_path / "in.jsonl", short_articles(1))
        out = tmp_path / "out"
        # the deployment's parameter schema is the nested config (flat names are for the CLI)
        config = {"input": {"path": str(inp)}, "output": {"path": str(out)},
                  "models": {"sentiment_model": "minilm-head"},
                  "runtime": {"show_progress": False}}
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
        assert served["parameters"]["config"]["input"]["path"] == str(spec.config.input.path)


def test_serve_reads_the_cron_of_prefect_yaml_and_refuses_a_broken_one(tmp_path):
    spec = read_spec(REPO / "prefect.yaml")
    assert spec.name == "digest" and spec.cron == "0 * * * *"
    assert spec.config.input.path == Path("seeds") and spec.config.runtime.task_runner == "threads"
    broken = tmp_path / "prefect.yaml"
    broken.write_text("deployments:\n  - name: digest\n    schedules: []\n")
    done = subprocess.run([str(BIN / "textdigest"), "serve", "--prefect-yaml", str(broken)],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "exactly one cron schedule" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# Three short wire stories of our own, one .txt file each.
STORIES = {
    "harbour.txt": "Harbour reopens after storm repairs\n\nLISBON (Reuters) - The city's main "
                   "harbour reopened to cargo ships on Tuesday after three weeks of repairs to a "
                   "breakwater damaged in last month's storm. Port officials said traffic should "
                   "return to normal levels by the end of the week, and that no goods had been "
                   "lost while the terminals were closed.\n",
    "library.txt": "Village library wins national award\n\nA volunteer-run library in a small "
                   "village was named the country's best community library on Friday. The "
                   "judges praised its weekend reading clubs for children and a lending scheme "
                   "for tools, and the award brings a grant that will pay for a new roof and "
                   "longer opening hours next year.\n",
    "factory.txt": "Factory closure puts 400 jobs at risk\n\nPARIS (AFP) - A car parts maker "
                   "said on Monday it would close its plant in the north of the country by "
                   "spring, putting about 400 jobs at risk. Unions called the decision a heavy "
                   "blow to the region and said they would ask the government to look for a "
                   "buyer before the plant shuts down.\n",
}


@pytest.mark.slow
def test_serve_refuses_to_start_without_a_prefect_server(tmp_path):
    # No PREFECT_API_URL in the environment, none in the (new, empty) profile of PREFECT_HOME.
    done = subprocess.run([str(BIN / "textdigest"), "serve"], env=_bare_env(tmp_path / "home"),
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "needs a Prefect server" in lines[0] and "`prefect server start`" in lines[0]
    assert "PREFECT_API_URL=http://127.0.0.1:4200/api" in lines[0]
    assert "Traceback" not in done.stderr and "serving" not in done.stdout


@pytest.mark.slow
def test_serve_runs_its_cron_schedule_against_a_real_server(tmp_path):
    """`textdigest serve` on an every-minute cron, against `prefect server start` with its
    scheduler: the first scheduled flow run of the served deployment digests a small inbox."""
    inbox, out, home = tmp_path / "inbox", tmp_path / "out", tmp_path / "home"
    inbox.mkdir()
    home.mkdir()
    for name, text in STORIES.items():
        (inbox / name).write_text(text)
    # Cheap models for the test; the cron, input and output come from the command line.
    yaml_path = tmp_path / "prefect.yaml"
    yaml_path.write_text(
        "deployments:\n  - name: digest\n    entrypoint: flows/digest.py:digest\n"
        "    parameters:\n      config: {input: seeds, output: data, summarizer: extractive,"
        " sentiment_model: minilm-head, show_progress: false}\n"
        "    schedules:\n      - cron: '0 * * * *'\n")
    logs = [home / "server.log", home / "serve.log"]
    with _prefect_server(home, services=True) as (api, env):
        serve_cmd = [str(BIN / "textdigest"), "serve", "--prefect-yaml", str(yaml_path),
                     "--name", "every-minute", "--cron", "* * * * *",
                     "--input", str(inbox), "--output", str(out)]
        with _started(serve_cmd, env, logs[1]) as serve:
            served = _wait("the served deployment", lambda: serve.poll() is None and (
                r.json() if (r := _call(api, "GET", "/deployments/name/digest/every-minute")
                             ).is_success else None), 60, logs)
            assert [s["schedule"]["cron"] for s in served["schedules"]] == ["* * * * *"]
            assert served["parameters"]["config"]["input"]["path"] == str(inbox)

            def finished_run() -> dict | None:
                assert serve.poll() is None, logs[1].read_text()[-3000:]
                runs = _call(api, "POST", "/flow_runs/filter", json={
                    "deployments": {"id": {"any_": [served["id"]]}},
                    "sort": "EXPECTED_START_TIME_ASC"}).json()
                return next((r for r in runs if r["state"]["type"] in (
                    "COMPLETED", "FAILED", "CRASHED", "CANCELLED")), None)

            # The next minute's scheduled run, started by serve: within ~60 s plus the run.
            run = _wait("a scheduled flow run to finish", finished_run, 150, logs)
            assert run["state"]["type"] == "COMPLETED", "\n".join(
                p.read_text()[-3000:] for p in logs)
            assert run["auto_scheduled"], run  # fired by the cron, not created by hand
            assert run["parameters"]["config"]["output"]["path"] == str(out)

            # Stop serve between runs, as Ctrl-C would: a runner that stops cancels the runs
            # it still holds, and the finished run's process can outlive its COMPLETED state.
            _wait("the flow run's process to exit", lambda: not _flow_processes(serve.pid),
                  60, logs)
            time.sleep(1)  # the runner lets go of the run once its process is reaped
            _stop(serve)
            assert serve.returncode == 0, logs[1].read_text()[-3000:]
        final = _call(api, "GET", f"/flow_runs/{run['id']}").json()["state"]["type"]
        assert final == "COMPLETED", logs[1].read_text()[-3000:]

    documents = pq.read_table(out / "documents")
    assert documents.num_rows == len(STORIES)
    assert sorted(documents.column("source").to_pylist()) == sorted(STORIES)
    manifests = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert run["id"] in {m["flow_run_id"] for m in manifests}, manifests
