"""Publishing a real digest output as a Hugging Face dataset.

Everything is real (a digest flow run with the built-in models, staging, the card,
`datasets.load_dataset`, Prefect flow runs) except the Hub itself, which is out of reach:
the push goes to `RecordingHub`, which has `HfApi`'s method signatures and records what it
is sent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import CommitOperationAdd, DatasetCard

from flows.config import DigestConfig
from flows.publish import PublishConfig
from tasks.outputs import publish as steps

from .conftest import REPO, SEEDS
from .corpus import articles as fixture_articles

EXE = Path(sys.executable).with_name("textdigest")
SENTINEL = "hf_SENTINELtokenNEVERshown0123456789"


class RecordingHub:
    """Stands in for `HfApi` (same signatures): remembers repos, files and commits."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.repos: list[tuple[str, bool | None]] = []
        self.files: dict[tuple[str, str], set[str]] = {}  # (repo, branch) -> paths
        self.branches: list[str] = []
        self.commits: list[dict] = []

    def __call__(self, token: str) -> RecordingHub:  # the flow's `make_api`
        self.tokens.append(token)
        return self

    def create_repo(self, repo_id, *, private=None, repo_type=None, exist_ok=False):
        assert repo_type == "dataset" and exist_ok
        self.repos.append((repo_id, private))
        self.files.setdefault((repo_id, "main"), {".gitattributes"})
        return SimpleNamespace(repo_id=repo_id)

    def create_branch(self, repo_id, *, branch, repo_type=None, exist_ok=False):
        assert repo_type == "dataset" and exist_ok
        self.branches.append(branch)
        self.files.setdefault((repo_id, branch), set(self.files[repo_id, "main"]))

    def list_repo_files(self, repo_id, *, revision=None, repo_type=None):
        assert repo_type == "dataset" and revision is not None
        return sorted(self.files[repo_id, revision])

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None,
                      revision=None):
        ops = list(operations)
        assert all(isinstance(op, CommitOperationAdd) for op in ops)
        sizes = {op.path_in_repo: Path(op.path_or_fileobj).stat().st_size for op in ops}
        self.commits.append({"paths": [op.path_in_repo for op in ops], "branch": revision,
                             "message": commit_message, "sizes": sizes})
        self.files[repo_id, revision] |= set(sizes)
        n = len(self.commits)
        return SimpleNamespace(commit_url=f"https://hub.invalid/{repo_id}/commit/{n}",
                               oid=f"{n:040d}")


def _digest_input(folder: Path, articles: int) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(next(SEEDS.glob("*.txt")), folder / "seed.txt")
    rows = fixture_articles()[:articles]
    assert len(rows) == articles
    (folder / "news.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    (folder / "empty.txt").write_text("  \n")  # becomes a reject row
    return folder


@pytest.fixture(scope="session")
def digest_output(prefect_harness, tmp_path_factory):
    """One real digest output: the seed article, 3 fixture news articles, one reject."""
    from flows.digest import digest

    root = tmp_path_factory.mktemp("publish")
    inp = _digest_input(root / "in", 3)
    out = root / "data"
    summary = digest(DigestConfig(input=inp, output=out, show_progress=False))
    assert summary["counts"]["written"] == 4 and summary["counts"]["rejected"] == 1
    return out, summary


@pytest.fixture
def output_copy(digest_output, tmp_path):
    """A private copy of the output, for tests that publish or add runs."""
    out = tmp_path / "data"
    shutil.copytree(digest_output[0], out)
    return out


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every data file's size and time; the output's lock file (which publish takes while
    it stages, `tasks.io.output_lock`) is coordination, not data."""
    from tasks.io.output_lock import LOCK_NAME

    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def test_dry_run_stages_a_card_that_load_dataset_reads_back_row_for_row(digest_output):
    from datasets import Features, load_dataset

    from flows.publish import publish

    out, summary = digest_output
    before = _snapshot(out)
    result = publish(PublishConfig(data_dir=out, repo_id="acme/news-digest", dry_run=True))
    staging = Path(result["staging"])
    assert staging == steps.default_staging_dir(out)
    assert out.resolve() not in staging.resolve().parents  # never inside the output
    assert _snapshot(out) == before  # a dry run writes nothing into the output

    local = {sub: pq.read_table(out / sub) for sub in ("documents", "rejects")}
    for sub in local:
        for src in (out / sub).glob("part-*.parquet"):
            staged = staging / "data" / sub / src.name
            assert staged.stat().st_ino == src.stat().st_ino  # hard-linked, not copied
    assert result["validated"] == {sub: {"rows": t.num_rows, "columns": t.num_columns}
                                   for sub, t in local.items()}
    assert sorted(result["new_shards"]) == sorted(
        f"data/{sub}/{p.name}" for sub in local for p in (out / sub).glob("*.parquet"))
    assert result["would_upload"][-1] == "README.md"
    assert summary["run_id"] in result["message"]

    card = DatasetCard.load(staging / "README.md")
    front = yaml.safe_load((staging / "README.md").read_text().split("---")[1])
    configs = {c["config_name"]: c for c in front["configs"]}
    assert configs["documents"]["default"] is True
    assert configs["documents"]["data_files"] == [
        {"split": "train", "path": "data/documents/*.parquet"}]
    assert configs["rejects"]["data_files"][0]["path"] == "data/rejects/*.parquet"
    infos = {i["config_name"]: i for i in front["dataset_info"]}
    for sub, table in local.items():
        declared = Features._from_yaml_list(infos[sub]["features"])
        assert declared == Features.from_arrow_schema(table.schema)
        assert infos[sub]["splits"][0]["num_examples"] == table.num_rows
    assert card.data.license == "other" and card.data.size_categories == ["n<1K"]
    assert card.data.language == ["en"]  # English wire and news copy
    assert set(card.data.task_categories) == {"summarization", "text-classification"}
    # the body names each model with the revision the manifest recorded
    for model in summary["models"].values():
        if isinstance(model, dict):
            assert model["name"] in card.text and model["revision"] in card.text
    assert f"| `{summary['run_id']}` | 4 |" in card.text
    assert "| `empty_text` | 1 |" in card.text

    # what a user of the published repo gets: the same rows, the nested provenance intact
    loaded = load_dataset(str(staging), split="train", cache_dir=str(staging.parent / "c"))
    assert sorted(loaded["doc_id"]) == sorted(local["documents"].column("doc_id").to_pylist())
    assert loaded[0]["provenance"]["run_id"] == summary["run_id"]
    rejects = load_dataset(str(staging), "rejects", split="train",
                           cache_dir=str(staging.parent / "c"))
    assert rejects["reason"] == ["empty_text"]

    written = (staging / "README.md").read_bytes()
    again = publish(PublishConfig(data_dir=out, repo_id="acme/news-digest", dry_run=True))
    assert (staging / "README.md").read_bytes() == written  # no timestamps: same output, same card
    assert again["new_shards"] == result["new_shards"]  # nothing was published yet


def test_validation_stops_on_missing_rows_and_on_wrong_features(output_copy, tmp_path):
    shards = steps.local_shards(output_copy)
    staging = tmp_path / "stage"
    staging_result = steps.stage(output_copy, staging, shards)
    steps.write_card(staging, steps.build_card("acme/x", shards))
    assert steps.validate_staged(staging, shards)["documents"]["rows"] == 4

    # staged shards that lost a row, or changed an id (written beside, then swapped in)
    doc = next(s for s in staging_result.shards if s.subset == "documents")
    table = pq.read_table(doc.local)
    first_id = table.column("doc_id")[0].as_py()
    ids = ["tampered", *table.column("doc_id").to_pylist()[1:]]
    for bad, pattern in (
            (table.slice(1), "card declares 4 rows, load_dataset read 3, the output has 4"),
            (table.set_column(0, table.schema.field(0), [ids]),
             rf"missing after loading: '{first_id}'; extra: 'tampered'")):
        pq.write_table(bad, staging / "bad.parquet")
        os.replace(staging / "bad.parquet", staging / doc.path_in_repo)
        with pytest.raises(steps.PublishError, match=pattern):
            steps.validate_staged(staging, shards)
    assert pq.read_table(doc.local).column("doc_id")[0].as_py() == first_id  # output intact

    # the card declaring a feature the shards do not have
    steps.stage(output_copy, staging, shards)  # restores the shard
    card = (staging / "README.md").read_text()
    assert "name: n_chars\n    dtype: int32" in card
    (staging / "README.md").write_text(card.replace("name: n_chars\n    dtype: int32",
                                                    "name: n_chars\n    dtype: int64"))
    with pytest.raises(steps.PublishError, match="n_chars"):
        steps.validate_staged(staging, shards)


def test_push_sends_new_shards_then_only_the_card(prefect_harness, output_copy, tmp_path,
                                                  monkeypatch):
    from flows.digest import digest
    from flows.publish import publish

    monkeypatch.setenv("HF_TOKEN", "hf_test_token_for_push")
    hub = RecordingHub()
    cfg = PublishConfig(data_dir=output_copy, repo_id="acme/news", private=True)
    first = publish(cfg, make_api=hub)
    shards = sorted(f"data/{sub}/{p.name}" for sub in ("documents", "rejects")
                    for p in (output_copy / sub).glob("part-*.parquet"))
    assert hub.repos == [("acme/news", True)]
    assert hub.tokens == ["hf_test_token_for_push"]
    (commit,) = hub.commits
    assert sorted(commit["paths"]) == sorted([*shards, "README.md"])
    for path in shards:  # the staged file sent is the output's shard
        assert commit["sizes"][path] == (output_copy / path.removeprefix("data/")).stat().st_size
    run_ids = {p.split("part-")[1][:-14] for p in shards}
    assert all(run_id in commit["message"] for run_id in run_ids)
    assert first["commit_url"].endswith("/1")
    record = json.loads(steps.record_path(output_copy, "acme/news", "main").read_text())
    assert set(shards) <= set(record["files"])

    # unchanged output: a dry run knows from the record, a push sends the card alone
    dry = publish(cfg.model_copy(update={"dry_run": True}))
    assert dry["new_shards"] == [] and dry["would_upload"] == ["README.md"]
    publish(cfg, make_api=hub)
    assert hub.commits[1]["paths"] == ["README.md"]
    assert "no new shards" in hub.commits[1]["message"]
    assert max(run_ids) in hub.commits[1]["message"]

    # a new run adds its own shard(s) and nothing else
    more = tmp_path / "more"
    more.mkdir()
    (more / "one.jsonl").write_text(json.dumps(
        {"id": "new-1", "text": "Shares rose sharply on Monday. Investors cheered the news."})
        + "\n")
    run = digest(DigestConfig(input=more, output=output_copy, show_progress=False))
    publish(cfg, make_api=hub)
    new = [f"data/documents/part-{run['run_id']}-00000.parquet"]
    assert hub.commits[2]["paths"] == [*new, "README.md"]
    assert run["run_id"] in hub.commits[2]["message"]
    assert len(hub.commits) == 3

    # another branch starts from what main holds, and keeps its own record
    weekly = publish(cfg.model_copy(update={"branch": "weekly"}), make_api=hub)
    assert hub.branches == ["weekly"] and hub.commits[3]["branch"] == "weekly"
    assert hub.commits[3]["paths"] == ["README.md"] and weekly["already"] == len(shards) + 1
    assert steps.record_path(output_copy, "acme/news", "weekly").is_file()


def test_a_digest_run_can_chain_a_publish(prefect_harness, tmp_path):
    from flows.digest import digest

    with pytest.raises(ValueError, match=r"publish\.repo_id"):
        DigestConfig(publish_repo_id="not a repo")
    out = tmp_path / "data"
    run = digest(DigestConfig(input=SEEDS, output=out, show_progress=False,
                              publish_repo_id="acme/chained", publish_dry_run=True,
                              publish_branch="weekly", publish_license="cc-by-4.0"))
    published = run["published"]
    assert published["new_shards"] == [f"data/documents/part-{run['run_id']}-00000.parquet"]
    assert published["validated"]["documents"]["rows"] == 1
    assert published["branch"] == "weekly"
    card = (Path(published["staging"]) / "README.md").read_text()
    assert "license: cc-by-4.0" in card
    assert not (out / steps.RECORD_DIR).exists()  # a dry run records nothing


@pytest.mark.slow
def test_the_token_never_leaves_the_hub_client(prefect_harness, output_copy, tmp_path, capfd,
                                               caplog, monkeypatch):
    from prefect.client.orchestration import get_client
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.publish import publish

    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    staging = tmp_path / "stage"
    cli = CliRunner().invoke(app, ["publish", str(output_copy), "--repo-id", "acme/news",
                                   "--dry-run", "--staging-dir", str(staging)])
    assert cli.exit_code == 0, cli.output
    assert f"staged: {staging}" in cli.output and "new shard(s)" in cli.output
    hub = RecordingHub()
    result = publish(PublishConfig(data_dir=output_copy, repo_id="acme/news",
                                   staging_dir=staging), make_api=hub)
    assert hub.tokens == [SENTINEL]  # the client got it ...
    captured = capfd.readouterr()
    with get_client(sync_client=True) as client:  # what Prefect stored about the runs
        runs = client.read_flow_runs()
    stored = json.dumps([r.model_dump(mode="json") for r in runs])
    assert "acme/news" in stored
    seen = [cli.output, captured.out, captured.err, caplog.text, json.dumps(result), stored]
    seen += [p.read_bytes().decode("utf-8", "replace")
             for p in tmp_path.rglob("*") if p.is_file()]
    assert len(seen) > 10
    assert not [s for s in seen if SENTINEL in s]  # ... and nothing else did


@pytest.mark.slow
def test_offline_push_fails_fast_and_touches_nothing(output_copy, tmp_path):
    before = _snapshot(output_copy)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": SENTINEL,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "200"}
    proc = subprocess.run([str(EXE), "publish", str(output_copy), "--repo-id", "acme/news"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "HF_HUB_OFFLINE" in proc.stderr and "nothing was uploaded" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert SENTINEL not in proc.stdout + proc.stderr
    assert _snapshot(output_copy) == before
    assert not steps.default_staging_dir(output_copy).exists()



@pytest.mark.slow
def test_no_route_to_the_hub_fails_at_once(output_copy, monkeypatch):
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from flows.cli import app

    before = _snapshot(output_copy)
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online, but nothing listens
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["publish", str(output_copy), "--repo-id", "acme/news"])
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:9" in result.output
    assert "nothing was uploaded" in result.output and SENTINEL not in result.output
    assert _snapshot(output_copy) == before
    assert not steps.default_staging_dir(output_copy).exists()


@pytest.mark.slow
def test_cli_refuses_bad_arguments_in_one_line(output_copy, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    for args, expected in ((["--repo-id", "no-slash"], "ORG/NAME"),
                           (["--repo-id", "a/b", "--license", "Not A Licence"], "--license"),
                           (["--repo-id", "a/b", "--staging-dir", str(output_copy / "s")],
                            "inside the output")):
        result = runner.invoke(app, ["publish", str(output_copy), *args, "--dry-run"])
        assert result.exit_code == 2, args
        assert expected in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["publish", str(tmp_path / "nope"), "--repo-id", "a/b"])
    assert missing.exit_code == 2 and "not found" in missing.output
    (tmp_path / "other").mkdir()
    not_output = runner.invoke(app, ["publish", str(tmp_path / "other"), "--repo-id", "a/b"])
    assert not_output.exit_code == 2 and "not a digest output" in not_output.output


def test_staging_never_doubles_the_output_or_takes_over_a_folder(output_copy, tmp_path):
    shards = steps.local_shards(output_copy)
    before = _snapshot(output_copy)
    for inside in (output_copy, output_copy / "documents" / "stage", output_copy / "x"):
        with pytest.raises(steps.PublishError, match="inside the output"):
            steps.stage(output_copy, inside, shards)
    with pytest.raises(steps.PublishError, match="contains the output"):
        steps.stage(output_copy, output_copy.parent, shards)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(steps.PublishError, match="not made by textdigest"):
        steps.stage(output_copy, foreign, shards)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert _snapshot(output_copy) == before  # nothing staged inside the output
    with pytest.raises(steps.PublishError, match="not a digest output"):
        steps.local_shards(tmp_path / "empty")


def test_staging_copies_when_it_cannot_link_and_resyncs(output_copy, tmp_path, monkeypatch):
    import errno

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    shards = steps.local_shards(output_copy)
    staging = tmp_path / "stage"
    monkeypatch.setattr(steps.os, "link", cross_device)  # as if staging were on another disk
    first = steps.stage(output_copy, staging, shards)
    assert (first.copied, first.linked) == (len(shards), 0)
    for shard in shards:
        staged = staging / shard.path_in_repo
        assert staged.read_bytes() == shard.local.read_bytes()
        assert staged.stat().st_ino != shard.local.stat().st_ino
    monkeypatch.undo()
    again = steps.stage(output_copy, staging, shards[1:])  # a shard left the output
    assert again.kept == len(shards) - 1 and again.removed == [shards[0].path_in_repo]
    assert not (staging / shards[0].path_in_repo).exists()


def _http_error(status: int) -> Exception:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://huggingface.co/api/datasets/a/b/commit/main")
    return HfHubHTTPError(f"{status} from the Hub",
                          response=httpx2.Response(status, request=request))


class FlakyHub(RecordingHub):
    """Answers the first commits with the given errors, then behaves."""

    def __init__(self, *errors: Exception) -> None:
        super().__init__()
        self.errors = list(errors)
        self.attempts = 0

    def create_commit(self, repo_id, operations, **kwargs):
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return super().create_commit(repo_id, operations, **kwargs)


def test_the_push_alone_is_retried_and_only_on_transient_errors(prefect_harness, output_copy,
                                                                 monkeypatch):
    import flows.publish as publish_module

    monkeypatch.setenv("HF_TOKEN", "hf_test_token_for_retries")
    monkeypatch.setattr(publish_module, "push_task",
                        publish_module.push_task.with_options(retry_delay_seconds=0))
    cfg = PublishConfig(data_dir=output_copy, repo_id="acme/news")
    record = steps.record_path(output_copy, "acme/news", "main")

    denied = FlakyHub(_http_error(401))
    with pytest.raises(Exception, match="401"):
        publish_module.publish(cfg, make_api=denied)
    assert denied.attempts == 1 and not denied.commits and not record.exists()

    flaky = FlakyHub(_http_error(503))
    result = publish_module.publish(cfg, make_api=flaky)
    assert flaky.attempts == 2 and len(flaky.commits) == 1
    assert result["uploaded"] == flaky.commits[0]["paths"] and record.is_file()


def test_only_transient_hub_errors_are_retried():
    import httpx2

    http = _http_error
    assert steps.is_transient(http(503)) and steps.is_transient(http(429))
    assert steps.is_transient(httpx2.ConnectError("connection reset"))
    assert not steps.is_transient(http(401)) and not steps.is_transient(http(404))
    assert not steps.is_transient(steps.HubUnreachable("offline"))
    assert not steps.is_transient(steps.PublishError("validation"))


def test_shards_of_an_older_schema_publish_with_nulls_for_newer_columns(output_copy, tmp_path):
    from datasets import load_dataset

    shard = next((output_copy / "documents").glob("part-*.parquet"))
    older = pq.read_table(shard).drop_columns(["summary_chunks"])
    older = older.set_column(0, "doc_id", [[f"old-{i}" for i in range(older.num_rows)]])
    pq.write_table(older, output_copy / "documents" / "part-19990101T000000Z-aaaaaa-00000.parquet")
    shards = steps.local_shards(output_copy)
    staging = tmp_path / "stage"
    steps.stage(output_copy, staging, shards)
    card = steps.build_card("acme/x", shards)
    steps.write_card(staging, card)
    checked = steps.validate_staged(staging, shards)
    assert checked["documents"]["rows"] == 4 + older.num_rows
    assert "name: summary_chunks" in card.content
    loaded = load_dataset(str(staging), split="train", cache_dir=str(tmp_path / "c"))
    chunks = dict(zip(loaded["doc_id"], loaded["summary_chunks"], strict=True))
    assert all(chunks[f"old-{i}"] is None for i in range(older.num_rows))


def test_the_recording_hub_keeps_hfapi_signatures():
    """The stand-in must accept exactly what the real client would be called with."""
    import inspect

    from huggingface_hub import HfApi

    for name in ("create_repo", "create_branch", "list_repo_files", "create_commit"):
        real = inspect.signature(getattr(HfApi, name)).parameters
        fake = inspect.signature(getattr(RecordingHub, name)).parameters
        for param in fake.values():
            assert param.name in real, (name, param.name)
            assert param.kind == real[param.name].kind, (name, param.name)
